//! Import jobs, as `GET /v1/jobs/{id}` shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::JobReport;

/// An import job: where it is and what it did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Give it to `GET /v1/jobs/{id}`.
    pub id: String,
    /// The collection the documents go to.
    pub collection: String,
    /// `queued`, `running`, `completed` or `failed` (stopped early; see `error`).
    pub status: String,
    pub documents: JobDocuments,
    /// Passages written so far.
    pub passages: usize,
    /// Passages the model embedded.
    pub embedded: usize,
    /// Passages whose vector was reused (their text was embedded before).
    pub reused: usize,
    /// Tokens the model read for the embedded passages.
    pub tokens: u64,
    /// Tokens embedded per second of the job's working time.
    pub tokens_per_second: f64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why a failed job stopped.
    pub error: Option<String>,
    /// The first 100 refused lines, in order.
    pub errors: Vec<JobLineError>,
}

/// Documents (lines) of an import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobDocuments {
    pub total: usize,
    /// Written and searchable.
    pub done: usize,
    /// Refused; see `errors`.
    pub failed: usize,
}

/// A line of an import that was not written.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobLineError {
    /// The uploaded file, for multipart uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line number in the body or file.
    pub line: usize,
    /// As in API errors: `invalid_request`, `invalid_name`, `no_passages`, …
    pub code: String,
    pub message: String,
}

impl From<JobReport> for JobView {
    fn from(report: JobReport) -> Self {
        let record = report.record;
        Self {
            id: record.id,
            collection: record.collection,
            status: record.status.as_str().into(),
            documents: JobDocuments {
                total: record.documents,
                done: record.done,
                failed: record.failed,
            },
            passages: record.passages,
            embedded: record.embedded,
            reused: record.reused,
            tokens: record.tokens,
            tokens_per_second: if record.working_ms == 0 {
                0.0
            } else {
                (record.tokens as f64 * 1000.0 / record.working_ms as f64).round()
            },
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            error: record.error,
            errors: report
                .errors
                .into_iter()
                .map(|error| JobLineError {
                    file: error.file,
                    line: error.line,
                    code: error.code,
                    message: error.message,
                })
                .collect(),
        }
    }
}
