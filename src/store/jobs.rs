//! Import jobs: the lines of an import, kept until each is written or refused, so an import
//! interrupted by a crash or a restart resumes where it stopped.

use super::rows::corrupt;
use super::Result;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    /// Stopped before its end (its collection was deleted); `error` says why.
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            other => Err(corrupt("job status", other)),
        }
    }
}

/// A job and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub collection: String,
    pub status: JobStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Lines (documents) in the import.
    pub documents: usize,
    /// Lines written.
    pub done: usize,
    /// Lines refused, each with its error.
    pub failed: usize,
    pub passages: usize,
    /// Passages the model embedded, and the tokens it read for them.
    pub embedded: usize,
    pub tokens: u64,
    /// Passages whose vectors were already stored.
    pub reused: usize,
    /// Time spent working on the job (not waiting in line), in milliseconds.
    pub working_ms: u64,
    pub error: Option<String>,
}

/// One line of an import as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLine {
    /// Position in the whole import, from 0.
    pub seq: usize,
    /// The uploaded file it came from, if any.
    pub file: Option<String>,
    /// Its 1-based line number (in its file, or in the body).
    pub line: usize,
    pub body: String,
    /// Set when the line was refused on arrival (code, message).
    pub refused: Option<(String, String)>,
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub file: Option<String>,
    pub line: usize,
    pub code: String,
    pub message: String,
}

/// What one batch of a job did, committed with its documents.
#[derive(Debug, Clone, Default)]
pub struct JobProgress {
    pub job: String,
    /// `seq` of lines written.
    pub done: Vec<usize>,
    /// `seq` of lines refused, with code and message.
    pub failed: Vec<(usize, String, String)>,
    pub passages: usize,
    pub embedded: usize,
    pub tokens: u64,
    pub reused: usize,
    pub working_ms: u64,
}

/// Import jobs and their lines.
pub trait JobStore: Send + Sync {
    /// Records a new job over `collection` with its lines; lines refused on arrival count as
    /// failed from the start.
    fn create_job(&self, id: &str, collection: &str, lines: &[JobLine]) -> Result<JobRecord>;
    fn job(&self, id: &str) -> Result<Option<JobRecord>>;
    /// Jobs not finished (queued or interrupted while running), oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<JobRecord>>;
    /// Claims up to `limit` lines of job `id` still to do, in order, for `lease_ms`: lines no
    /// other process holds an unexpired claim on. Replicas of a shared store each claim their
    /// own lines, so an import is shared among them and no line is done twice; a replica that
    /// dies leaves its lines to the others when the lease runs out.
    fn claim_lines(&self, id: &str, limit: usize, lease_ms: i64) -> Result<Vec<JobLine>>;
    /// Lines of job `id` not yet done or refused, claimed or not.
    fn lines_left(&self, id: &str) -> Result<usize>;
    /// Up to `limit` refused lines of job `id`, in order.
    fn job_errors(&self, id: &str, limit: usize) -> Result<Vec<LineError>>;
    /// Moves job `id` to `status`, stamping when it started or finished.
    fn set_job_status(&self, id: &str, status: JobStatus, error: Option<&str>) -> Result<()>;
}
