//! Import jobs in SQLite: one process owns the store, so claiming lines needs no lease.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{collection_id, SqlRow, SqliteStore};
use crate::store::jobs::{JobLine, JobProgress, JobRecord, JobStatus, JobStore, LineError};
use crate::store::rows::{job_record, JOB_COLUMNS};
use crate::store::{now_ms, Result, StoreError};

impl JobStore for SqliteStore {
    fn claim_lines(&self, id: &str, limit: usize, _lease_ms: i64) -> Result<Vec<JobLine>> {
        // The lock on the data directory: no other process claims lines here.
        self.pending_lines(id, limit)
    }

    fn lines_left(&self, id: &str) -> Result<usize> {
        let left: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM job_lines WHERE job_id = ?1 AND state = 'pending'",
            [id],
            |row| row.get(0),
        )?;
        Ok(left as usize)
    }

    /// Records a new job over `collection` with its lines; lines refused on arrival count as
    /// failed from the start.
    fn create_job(&self, id: &str, collection: &str, lines: &[JobLine]) -> Result<JobRecord> {
        self.writing(|writer| {
            let transaction = writer.transaction()?;
            collection_id(&transaction, collection)?;
            let failed = lines.iter().filter(|l| l.refused.is_some()).count();
            transaction.execute(
                "INSERT INTO jobs (id, collection, status, created_at, documents, failed)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
                params![id, collection, now_ms(), lines.len() as i64, failed as i64],
            )?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO job_lines (job_id, seq, file, line, body, state, error_code, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for line in lines {
                    let (state, code, message) = match &line.refused {
                        Some((code, message)) => ("failed", Some(code), Some(message)),
                        None => ("pending", None, None),
                    };
                    insert.execute(params![
                        id,
                        line.seq as i64,
                        line.file,
                        line.line as i64,
                        line.body,
                        state,
                        code,
                        message
                    ])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })?;
        self.job(id)?
            .ok_or_else(|| StoreError::Unavailable("the job vanished after it was written".into()))
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.reader()?
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                |row| Ok(job_record(&SqlRow(row))),
            )
            .optional()?
            .transpose()
    }

    /// Jobs not finished (queued or interrupted while running), oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        let reader = self.reader()?;
        let mut statement = reader.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running')
             ORDER BY created_at, id"
        ))?;
        let records = statement
            .query_map([], |row| Ok(job_record(&SqlRow(row))))?
            .map(|record| record?)
            .collect();
        records
    }

    /// Up to `limit` refused lines of job `id`, in order.
    fn job_errors(&self, id: &str, limit: usize) -> Result<Vec<LineError>> {
        let reader = self.reader()?;
        let mut statement = reader.prepare_cached(
            "SELECT file, line, error_code, error FROM job_lines
             WHERE job_id = ?1 AND state = 'failed' ORDER BY seq LIMIT ?2",
        )?;
        let errors = statement
            .query_map(params![id, limit as i64], |row| {
                Ok(LineError {
                    file: row.get(0)?,
                    line: row.get::<_, i64>(1)? as usize,
                    code: row.get(2)?,
                    message: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(errors)
    }

    /// Moves job `id` to `status`, stamping when it started or finished.
    fn set_job_status(&self, id: &str, status: JobStatus, error: Option<&str>) -> Result<()> {
        let now = now_ms();
        self.writing(|writer| {
            writer.execute(
                "UPDATE jobs SET status = ?2, error = ?3,
                     started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?4) ELSE started_at END,
                     finished_at = CASE WHEN ?2 IN ('completed', 'failed') THEN ?4 ELSE finished_at END
                 WHERE id = ?1",
                params![id, status.as_str(), error, now],
            )?;
            Ok(())
        })
    }
}

impl SqliteStore {
    /// Up to `limit` lines of job `id` still to do, in order.
    fn pending_lines(&self, id: &str, limit: usize) -> Result<Vec<JobLine>> {
        let reader = self.reader()?;
        let mut statement = reader.prepare_cached(
            "SELECT seq, file, line, body FROM job_lines
             WHERE job_id = ?1 AND state = 'pending' ORDER BY seq LIMIT ?2",
        )?;
        let lines = statement
            .query_map(params![id, limit as i64], |row| {
                Ok(JobLine {
                    seq: row.get::<_, i64>(0)? as usize,
                    file: row.get(1)?,
                    line: row.get::<_, i64>(2)? as usize,
                    body: row.get(3)?,
                    refused: None,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(lines)
    }
}

/// Records a batch's progress in the transaction that writes its documents.
pub(super) fn record_progress(transaction: &Transaction<'_>, progress: &JobProgress) -> Result<()> {
    {
        let mut done = transaction
            .prepare_cached("UPDATE job_lines SET state = 'done' WHERE job_id = ?1 AND seq = ?2")?;
        for seq in &progress.done {
            done.execute(params![progress.job, *seq as i64])?;
        }
        let mut failed = transaction.prepare_cached(
            "UPDATE job_lines SET state = 'failed', error_code = ?3, error = ?4
             WHERE job_id = ?1 AND seq = ?2",
        )?;
        for (seq, code, message) in &progress.failed {
            failed.execute(params![progress.job, *seq as i64, code, message])?;
        }
    }
    transaction.execute(
        "UPDATE jobs SET done = done + ?2, failed = failed + ?3, passages = passages + ?4,
             embedded = embedded + ?5, tokens = tokens + ?6, reused = reused + ?7,
             working_ms = working_ms + ?8
         WHERE id = ?1",
        params![
            progress.job,
            progress.done.len() as i64,
            progress.failed.len() as i64,
            progress.passages as i64,
            progress.embedded as i64,
            progress.tokens as i64,
            progress.reused as i64,
            progress.working_ms as i64
        ],
    )?;
    Ok(())
}
