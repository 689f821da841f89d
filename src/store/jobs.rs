//! Import jobs: the lines of an import, kept until each is written or refused, so an import
//! interrupted by a crash or a restart resumes where it stopped.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{now_ms, Result, SqliteStore, StoreError};

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

    pub(super) fn parse(text: &str) -> Result<Self> {
        match text {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            other => Err(super::corrupt("job status", other)),
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

const JOB_COLUMNS: &str =
    "id, collection, status, created_at, started_at, finished_at, documents, \
     done, failed, passages, embedded, tokens, reused, working_ms, error";

fn job_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRecord, String)> {
    Ok((
        JobRecord {
            id: row.get(0)?,
            collection: row.get(1)?,
            status: JobStatus::Queued,
            created_at: row.get(3)?,
            started_at: row.get(4)?,
            finished_at: row.get(5)?,
            documents: row.get::<_, i64>(6)? as usize,
            done: row.get::<_, i64>(7)? as usize,
            failed: row.get::<_, i64>(8)? as usize,
            passages: row.get::<_, i64>(9)? as usize,
            embedded: row.get::<_, i64>(10)? as usize,
            tokens: row.get::<_, i64>(11)? as u64,
            reused: row.get::<_, i64>(12)? as usize,
            working_ms: row.get::<_, i64>(13)? as u64,
            error: row.get(14)?,
        },
        row.get(2)?,
    ))
}

fn with_status((mut record, status): (JobRecord, String)) -> Result<JobRecord> {
    record.status = JobStatus::parse(&status)?;
    Ok(record)
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

impl JobStore for SqliteStore {
    fn claim_lines(&self, id: &str, limit: usize, _lease_ms: i64) -> Result<Vec<JobLine>> {
        // The lock on the data directory: no other process claims lines here.
        self.pending_lines(id, limit)
    }

    fn lines_left(&self, id: &str) -> Result<usize> {
        let left: i64 = self.reader().query_row(
            "SELECT COUNT(*) FROM job_lines WHERE job_id = ?1 AND state = 'pending'",
            [id],
            |row| row.get(0),
        )?;
        Ok(left as usize)
    }

    /// Records a new job over `collection` with its lines; lines refused on arrival count as
    /// failed from the start.
    fn create_job(&self, id: &str, collection: &str, lines: &[JobLine]) -> Result<JobRecord> {
        let mut writer = self.writer();
        let transaction = writer.transaction()?;
        super::collection_id(&transaction, collection)?;
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
        self.job(id)?
            .ok_or_else(|| StoreError::Unavailable("the job vanished after it was written".into()))
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.reader()
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_record,
            )
            .optional()?
            .map(with_status)
            .transpose()
    }

    /// Jobs not finished (queued or interrupted while running), oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        let reader = self.reader();
        let mut statement = reader.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running')
             ORDER BY created_at, id"
        ))?;
        let records = statement
            .query_map([], job_record)?
            .map(|record| with_status(record?))
            .collect();
        records
    }

    /// Up to `limit` refused lines of job `id`, in order.
    fn job_errors(&self, id: &str, limit: usize) -> Result<Vec<LineError>> {
        let reader = self.reader();
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
        self.writer().execute(
            "UPDATE jobs SET status = ?2, error = ?3,
                 started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?4) ELSE started_at END,
                 finished_at = CASE WHEN ?2 IN ('completed', 'failed') THEN ?4 ELSE finished_at END
             WHERE id = ?1",
            params![id, status.as_str(), error, now],
        )?;
        Ok(())
    }
}

impl SqliteStore {
    /// Up to `limit` lines of job `id` still to do, in order.
    fn pending_lines(&self, id: &str, limit: usize) -> Result<Vec<JobLine>> {
        let reader = self.reader();
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
