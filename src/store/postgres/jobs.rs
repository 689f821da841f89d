//! Import jobs in PostgreSQL: replicas claim lines under a lease, so an import is shared among
//! them and a replica that dies leaves its lines to the others.

use postgres::Transaction;

use super::{collection_id, PgRow, PostgresStore};
use crate::store::jobs::{JobLine, JobProgress, JobRecord, JobStatus, JobStore, LineError};
use crate::store::rows::{job_record, JOB_COLUMNS};
use crate::store::{now_ms, Result, StoreError};

impl JobStore for PostgresStore {
    fn claim_lines(&self, id: &str, limit: usize, lease_ms: i64) -> Result<Vec<JobLine>> {
        let now = now_ms();
        let mut lines: Vec<JobLine> = self
            .client()?
            .query(
                "UPDATE job_lines SET claimed_by = $3, lease_until = $4
                 WHERE (job_id, seq) IN (
                     SELECT job_id, seq FROM job_lines
                     WHERE job_id = $1 AND state = 'pending'
                       AND (claimed_by IS NULL OR claimed_by = $3 OR lease_until < $5)
                     ORDER BY seq LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 RETURNING seq, file, line, body",
                &[&id, &(limit as i64), &self.replica, &(now + lease_ms), &now],
            )?
            .iter()
            .map(|row| JobLine {
                seq: row.get::<_, i64>(0) as usize,
                file: row.get(1),
                line: row.get::<_, i64>(2) as usize,
                body: row.get(3),
                refused: None,
            })
            .collect();
        lines.sort_by_key(|line| line.seq);
        Ok(lines)
    }

    fn lines_left(&self, id: &str) -> Result<usize> {
        let left: i64 = self
            .client()?
            .query_one(
                "SELECT COUNT(*) FROM job_lines WHERE job_id = $1 AND state = 'pending'",
                &[&id],
            )?
            .get(0);
        Ok(left as usize)
    }

    fn create_job(&self, id: &str, collection: &str, lines: &[JobLine]) -> Result<JobRecord> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        collection_id(&mut transaction, collection)?;
        let failed = lines.iter().filter(|l| l.refused.is_some()).count() as i64;
        transaction.execute(
            "INSERT INTO jobs (id, collection, status, created_at, documents, failed)
             VALUES ($1, $2, 'queued', $3, $4, $5)",
            &[&id, &collection, &now_ms(), &(lines.len() as i64), &failed],
        )?;
        let insert = transaction.prepare(
            "INSERT INTO job_lines (job_id, seq, file, line, body, state, error_code, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for line in lines {
            let (state, code, message) = match &line.refused {
                Some((code, message)) => ("failed", Some(code), Some(message)),
                None => ("pending", None, None),
            };
            transaction.execute(
                &insert,
                &[
                    &id,
                    &(line.seq as i64),
                    &line.file,
                    &(line.line as i64),
                    &line.body,
                    &state,
                    &code,
                    &message,
                ],
            )?;
        }
        transaction.commit()?;
        drop(client);
        self.job(id)?
            .ok_or_else(|| StoreError::Unavailable("the job vanished after it was written".into()))
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.client()?
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                &[&id],
            )?
            .map(|row| job_record(&PgRow(&row)))
            .transpose()
    }

    fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        self.client()?
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running')
                     ORDER BY created_at, id"
                ),
                &[],
            )?
            .iter()
            .map(|row| job_record(&PgRow(row)))
            .collect()
    }

    fn job_errors(&self, id: &str, limit: usize) -> Result<Vec<LineError>> {
        Ok(self
            .client()?
            .query(
                "SELECT file, line, error_code, error FROM job_lines
                 WHERE job_id = $1 AND state = 'failed' ORDER BY seq LIMIT $2",
                &[&id, &(limit as i64)],
            )?
            .iter()
            .map(|row| LineError {
                file: row.get(0),
                line: row.get::<_, i64>(1) as usize,
                code: row.get(2),
                message: row.get(3),
            })
            .collect())
    }

    fn set_job_status(&self, id: &str, status: JobStatus, error: Option<&str>) -> Result<()> {
        self.client()?.execute(
            "UPDATE jobs SET status = $2, error = $3,
                 started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, $4) ELSE started_at END,
                 finished_at = CASE WHEN $2 IN ('completed', 'failed') THEN $4 ELSE finished_at END
             WHERE id = $1",
            &[&id, &status.as_str(), &error, &now_ms()],
        )?;
        Ok(())
    }
}

/// Records a batch's progress in the transaction that writes its documents.
pub(super) fn record_progress(
    transaction: &mut Transaction<'_>,
    progress: &JobProgress,
) -> Result<()> {
    let done: Vec<i64> = progress.done.iter().map(|&seq| seq as i64).collect();
    transaction.execute(
        "UPDATE job_lines SET state = 'done' WHERE job_id = $1 AND seq = ANY($2)",
        &[&progress.job, &done],
    )?;
    let failed = transaction.prepare(
        "UPDATE job_lines SET state = 'failed', error_code = $3, error = $4
         WHERE job_id = $1 AND seq = $2",
    )?;
    for (seq, code, message) in &progress.failed {
        transaction.execute(&failed, &[&progress.job, &(*seq as i64), code, message])?;
    }
    transaction.execute(
        "UPDATE jobs SET done = done + $2, failed = failed + $3, passages = passages + $4,
             embedded = embedded + $5, tokens = tokens + $6, reused = reused + $7,
             working_ms = working_ms + $8
         WHERE id = $1",
        &[
            &progress.job,
            &(progress.done.len() as i64),
            &(progress.failed.len() as i64),
            &(progress.passages as i64),
            &(progress.embedded as i64),
            &(progress.tokens as i64),
            &(progress.reused as i64),
            &(progress.working_ms as i64),
        ],
    )?;
    Ok(())
}
