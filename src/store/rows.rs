//! Rows to records, once for both backends: each backend reads its rows through [`Row`] by
//! column name, and the column lists and the mapping to [`DocumentRecord`] and [`JobRecord`]
//! live here, so a column added to one backend cannot be read by position in the other.

use serde_json::Value;

use super::jobs::{JobRecord, JobStatus};
use super::{DocumentRecord, Origin, Result, StoreError};
use crate::embedding::TextKey;

/// The columns of a document record, in any order both backends' tables have.
pub(crate) const DOCUMENT_COLUMNS: &str = "doc_id, layout, title, date, source, url, metadata, \
     text, origin, content_hash, created_at, updated_at, passages";
/// The same with the text left out (listing documents does not need it).
pub(crate) const DOCUMENT_SUMMARY_COLUMNS: &str = "doc_id, layout, title, date, source, url, \
     metadata, '' AS text, origin, content_hash, created_at, updated_at, passages";
/// The columns of a job record.
pub(crate) const JOB_COLUMNS: &str = "id, collection, status, created_at, started_at, \
     finished_at, documents, done, failed, passages, embedded, tokens, reused, working_ms, error";

/// A row of a query, read by column name. NULL reads as `None`; integers of any width read as
/// `i64`; a column missing from the query, or of another type, is a bug in the query
/// ([`StoreError::Internal`]).
pub(crate) trait Row {
    fn text(&self, column: &str) -> Result<Option<String>>;
    fn integer(&self, column: &str) -> Result<Option<i64>>;
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
    /// A JSON object, stored as text (SQLite) or `jsonb` (PostgreSQL).
    fn json(&self, column: &str) -> Result<Option<Value>>;
}

/// The value of a column that may not be NULL.
fn required<T>(value: Option<T>, column: &str) -> Result<T> {
    value.ok_or_else(|| corrupt(column, "NULL"))
}

/// A value the store holds that cannot be what was written: the database was damaged or
/// changed by hand.
pub(crate) fn corrupt(what: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: "the store".into(),
        problem: format!("unreadable {what}: {problem}"),
    }
}

fn count(row: &impl Row, column: &str) -> Result<usize> {
    let value = required(row.integer(column)?, column)?;
    usize::try_from(value).map_err(|_| corrupt(column, value))
}

/// A document record from a row of [`DOCUMENT_COLUMNS`] or [`DOCUMENT_SUMMARY_COLUMNS`].
pub(crate) fn document_record(row: &impl Row) -> Result<DocumentRecord> {
    let layout = required(row.text("layout")?, "layout")?;
    let metadata = match required(row.json("metadata")?, "metadata")? {
        Value::Object(map) => map,
        other => return Err(corrupt("metadata", format!("{other} is not an object"))),
    };
    let hash = required(row.bytes("content_hash")?, "content_hash")?;
    Ok(DocumentRecord {
        id: required(row.text("doc_id")?, "doc_id")?,
        layout: layout.parse().map_err(|e| corrupt("document layout", e))?,
        title: row.text("title")?,
        date: row.text("date")?,
        source: row.text("source")?,
        url: row.text("url")?,
        metadata,
        text: required(row.text("text")?, "text")?,
        origin: Origin::parse(&required(row.text("origin")?, "origin")?),
        content_hash: hash
            .try_into()
            .map_err(|_| corrupt("content hash", "not 32 bytes"))?,
        created_at: required(row.integer("created_at")?, "created_at")?,
        updated_at: required(row.integer("updated_at")?, "updated_at")?,
        passages: count(row, "passages")?,
    })
}

/// A job record from a row of [`JOB_COLUMNS`].
pub(crate) fn job_record(row: &impl Row) -> Result<JobRecord> {
    Ok(JobRecord {
        id: required(row.text("id")?, "id")?,
        collection: required(row.text("collection")?, "collection")?,
        status: JobStatus::parse(&required(row.text("status")?, "status")?)?,
        created_at: required(row.integer("created_at")?, "created_at")?,
        started_at: row.integer("started_at")?,
        finished_at: row.integer("finished_at")?,
        documents: count(row, "documents")?,
        done: count(row, "done")?,
        failed: count(row, "failed")?,
        passages: count(row, "passages")?,
        embedded: count(row, "embedded")?,
        tokens: count(row, "tokens")? as u64,
        reused: count(row, "reused")?,
        working_ms: count(row, "working_ms")? as u64,
        error: row.text("error")?,
    })
}

/// A text key as stored (32 bytes).
pub(crate) fn text_key(bytes: &[u8]) -> Result<TextKey> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("text key", "not 32 bytes"))?;
    Ok(TextKey::from_bytes(bytes))
}
