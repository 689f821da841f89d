//! Bulk imports as jobs. An import's lines (one document each, as [`DocumentLine`]) are stored
//! with the job when it is submitted; a worker thread then writes them a batch at a time, each
//! batch's documents and its progress committed in one transaction. A crash or a restart loses
//! only the batch in progress: the job resumes from its first line not yet written, and vectors
//! are stored as soon as they are made, so nothing embedded is embedded again.
//!
//! Passage embedding goes through the queue's passage lane, behind any waiting question, so an
//! import never starves searches.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::documents::new_record;
use super::{blocking, NewDocument, Prepared, Service, ServiceError};
use crate::corpus::Layout;
use crate::store::{JobLine, JobProgress, JobRecord, JobStatus, LineError, Origin, WriteBatch};

/// Documents written per batch (and transaction).
const BATCH_DOCUMENTS: usize = 32;
/// The same when replicas share the work: smaller, so that the replicas finish together (the
/// last batch of one replica is all the others may wait for at the end).
const SHARED_BATCH_DOCUMENTS: usize = 8;
/// Refused lines a job report lists.
pub const REPORTED_ERRORS: usize = 100;
/// How long a job waits before retrying when the store is unavailable (disk full, …).
const STORAGE_RETRY: Duration = Duration::from_secs(5);
/// How long a replica's claim on a batch of lines lasts: a replica killed in the middle of a
/// batch leaves its lines to another after this.
const LINE_LEASE_MS: i64 = 30_000;
/// How often a replica of a shared store looks for jobs to help with or take over.
const TAKEOVER_CHECK: Duration = Duration::from_millis(500);

/// One document as a line of JSON: the format of import jobs (and of `wenda export`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentLine {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// `plain` (default), `markdown`, `news` or `jsonl` (the text is JSON lines of ready
    /// passages, each with its own id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl DocumentLine {
    /// The line that writes `record` again.
    pub fn of(record: &crate::store::DocumentRecord) -> Self {
        Self {
            id: record.id.clone(),
            text: record.text.clone(),
            title: record.title.clone(),
            date: record.date.clone(),
            source: record.source.clone(),
            url: record.url.clone(),
            metadata: record.metadata.clone(),
            format: Some(record.layout.as_str().to_owned()),
        }
    }

    /// Reads one line, or says why it cannot be a document.
    pub fn parse(line: &str) -> Result<Self, ServiceError> {
        let value: Value = serde_json::from_str(line)
            .map_err(|error| ServiceError::Invalid(format!("malformed JSON: {error}")))?;
        if !value.is_object() {
            return Err(ServiceError::Invalid("a line must be a JSON object".into()));
        }
        serde_json::from_value(value).map_err(|error| ServiceError::Invalid(error.to_string()))
    }

    /// The document id and the document.
    pub fn into_document(self) -> Result<(String, NewDocument), ServiceError> {
        let layout = match self.format.as_deref() {
            None => Layout::Plain,
            Some(name) => name.parse::<Layout>().map_err(|_| {
                ServiceError::Invalid(format!(
                    "format {name:?} is not plain, markdown, news or jsonl"
                ))
            })?,
        };
        Ok((
            self.id,
            NewDocument {
                text: self.text,
                layout,
                title: self.title,
                date: self.date,
                source: self.source,
                url: self.url,
                metadata: self.metadata,
            },
        ))
    }
}

/// A line of an import as a transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// The uploaded file it is in, if any.
    pub file: Option<String>,
    /// 1-based, in its file or body.
    pub line: usize,
    /// A [`DocumentLine`] as JSON, or why the transport could not make one of what it
    /// received (an uploaded file that is not of its format): the line is refused with that
    /// error, and the rest of the import goes on.
    pub body: Result<String, ServiceError>,
}

/// A job with the first of its refused lines.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub record: JobRecord,
    /// Up to [`REPORTED_ERRORS`] refused lines, in order.
    pub errors: Vec<LineError>,
}

/// Wakes the job worker.
#[derive(Default)]
pub(super) struct JobSignal {
    pending: Mutex<bool>,
    wake: Condvar,
}

impl JobSignal {
    pub(super) fn notify(&self) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_one();
    }
}

/// Starts the thread that runs import jobs, oldest first, for as long as `service` lives. It holds
/// the service only while a job runs, so dropping the last handle elsewhere closes the store.
pub(super) fn start_worker(service: &Arc<Service>) {
    let weak: Weak<Service> = Arc::downgrade(service);
    let signal = Arc::clone(&service.jobs);
    // Over a shared store, another replica's job may need taking over: look now and then.
    let takeover = service.store.shared().then_some(TAKEOVER_CHECK);
    std::thread::Builder::new()
        .name("wenda-jobs".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for import jobs");
            let mut last_look = std::time::Instant::now();
            loop {
                {
                    let mut pending = signal
                        .pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    while !*pending {
                        if weak.strong_count() == 0 {
                            return;
                        }
                        if takeover.is_some_and(|every| last_look.elapsed() >= every) {
                            break;
                        }
                        pending = signal
                            .wake
                            .wait_timeout(pending, Duration::from_millis(500))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    *pending = false;
                }
                last_look = std::time::Instant::now();
                let Some(service) = weak.upgrade() else {
                    return;
                };
                runtime.block_on(service.run_jobs());
            }
        })
        .expect("spawning the import job thread");
}

impl Service {
    /// Records an import of `lines` into `collection` and queues it. Lines that cannot be
    /// documents are refused now, each with its line number; the rest are written by the job.
    pub async fn submit_import(
        &self,
        collection: &str,
        lines: Vec<ImportLine>,
    ) -> Result<JobRecord, ServiceError> {
        self.collection(collection)?;
        if lines.is_empty() {
            return Err(ServiceError::Invalid("the import has no lines".into()));
        }
        let job_lines: Vec<JobLine> = lines
            .into_iter()
            .enumerate()
            .map(|(seq, line)| {
                let (body, refused) = match line.body {
                    Ok(body) => {
                        let refused = DocumentLine::parse(&body).err();
                        (body, refused)
                    }
                    Err(error) => (String::new(), Some(error)),
                };
                JobLine {
                    seq,
                    refused: refused
                        .map(|error| (error.code().as_str().to_owned(), error.to_string())),
                    file: line.file,
                    line: line.line,
                    body,
                }
            })
            .collect();
        let store = Arc::clone(&self.store);
        let (id, name) = (job_id(), collection.to_owned());
        let record = blocking(move || store.create_job(&id, &name, &job_lines)).await??;
        self.jobs.notify();
        Ok(record)
    }

    /// Job `id` with its first refused lines.
    pub async fn job(&self, id: &str) -> Result<JobReport, ServiceError> {
        let store = Arc::clone(&self.store);
        let id = id.to_owned();
        blocking(move || {
            let record = store
                .job(&id)?
                .ok_or_else(|| ServiceError::UnknownJob(id.clone()))?;
            let errors = store.job_errors(&id, REPORTED_ERRORS)?;
            Ok(JobReport { record, errors })
        })
        .await?
    }

    /// Runs every unfinished job, oldest first.
    async fn run_jobs(&self) {
        let store = Arc::clone(&self.store);
        let jobs = match blocking(move || store.unfinished_jobs()).await {
            Ok(Ok(jobs)) => jobs,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read import jobs");
                return;
            }
            Err(_) => return,
        };
        for job in jobs {
            let id = job.id.clone();
            match self.run_job(job).await {
                Ok(()) => tracing::info!(job = id, "import job finished"),
                Err(error) => tracing::error!(job = id, %error, "import job stopped"),
            }
        }
    }

    async fn run_job(&self, job: JobRecord) -> Result<(), ServiceError> {
        let store = Arc::clone(&self.store);
        let id = job.id.clone();
        let status = |status: JobStatus, error: Option<String>| {
            let (store, id) = (Arc::clone(&store), id.clone());
            blocking(move || store.set_job_status(&id, status, error.as_deref()))
        };
        status(JobStatus::Running, None).await??;
        let Ok(target) = self.collection(&job.collection) else {
            let error = format!("collection {:?} was deleted", job.collection);
            status(JobStatus::Failed, Some(error)).await??;
            return Ok(());
        };
        let batch = if store.shared() {
            SHARED_BATCH_DOCUMENTS
        } else {
            BATCH_DOCUMENTS
        };
        loop {
            let (claims, job_id) = (Arc::clone(&store), id.clone());
            let lines =
                blocking(move || claims.claim_lines(&job_id, batch, LINE_LEASE_MS)).await??;
            if lines.is_empty() {
                // Done, unless other replicas still hold lines: the last one to finish says so.
                let (left, job_id) = (Arc::clone(&store), id.clone());
                if blocking(move || left.lines_left(&job_id)).await?? > 0 {
                    return Ok(());
                }
                break;
            }
            match self.import_batch(&job, &target, lines).await {
                Ok(()) => {}
                Err(ServiceError::StorageUnavailable(problem)) => {
                    tracing::warn!(job = id, problem, "storage unavailable; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
                Err(ServiceError::UnknownCollection(name)) => {
                    let error = format!("collection {name:?} was deleted");
                    status(JobStatus::Failed, Some(error)).await??;
                    return Ok(());
                }
                Err(error) => {
                    status(JobStatus::Failed, Some(error.to_string())).await??;
                    return Err(error);
                }
            }
        }
        status(JobStatus::Completed, None).await??;
        Ok(())
    }

    /// Writes one batch of a job's lines (stopping before a document id seen earlier in the
    /// batch, which the next batch then writes over it, in line order).
    async fn import_batch(
        &self,
        job: &JobRecord,
        target: &Arc<super::Collection>,
        lines: Vec<JobLine>,
    ) -> Result<(), ServiceError> {
        let started = Instant::now();
        let mut progress = JobProgress {
            job: job.id.clone(),
            ..JobProgress::default()
        };
        let mut records = Vec::new();
        let mut seqs = Vec::new();
        let mut ids = HashSet::new();
        for line in lines {
            let record = DocumentLine::parse(&line.body)
                .and_then(DocumentLine::into_document)
                .and_then(|(id, document)| {
                    new_record(&id, document, Origin::Api, self.max_metadata_bytes)
                });
            match record {
                Ok(record) => {
                    if !ids.insert(record.id.clone()) {
                        break;
                    }
                    records.push(record);
                    seqs.push(line.seq);
                }
                Err(error) => refuse(&mut progress, line.seq, &error),
            }
        }
        let mut documents = Vec::new();
        let mut passages = Vec::new();
        for ((record, cut), seq) in self.cut_all(records).await?.into_iter().zip(seqs) {
            match cut {
                Ok(cut) => {
                    documents.push((record, cut.len(), seq));
                    passages.extend(cut);
                }
                Err(error) => refuse(&mut progress, seq, &error),
            }
        }
        let mut prepared = self.prepare(passages).await?;
        // Stored at once, so a crash before the batch commits does not cost this work again.
        progress.embedded = prepared.new_vectors.len();
        self.store_new_vectors(&job.collection, &mut prepared)
            .await?;
        progress.reused = prepared.reused;
        progress.tokens = prepared.tokens;
        progress.passages = prepared.passages.len();
        progress.done = documents.iter().map(|(_, _, seq)| *seq).collect();
        progress.working_ms = started.elapsed().as_millis() as u64;
        let records: Vec<_> = documents
            .into_iter()
            .map(|(record, count, _)| (record, count))
            .collect();
        match self
            .write_documents(
                &job.collection,
                target,
                records.clone(),
                prepared,
                Some(progress.clone()),
            )
            .await
        {
            Err(ServiceError::PassageConflict { .. }) => {
                self.import_one_by_one(job, target, records, progress).await
            }
            other => other.map(drop),
        }
    }

    /// Stores the vectors a batch's embedding made (and takes them out of `prepared`) before
    /// its documents, so a crash before the documents commit does not cost this work again.
    async fn store_new_vectors(
        &self,
        collection: &str,
        prepared: &mut Prepared,
    ) -> Result<(), ServiceError> {
        let vectors = std::mem::take(&mut prepared.new_vectors);
        let sentence_vectors = std::mem::take(&mut prepared.new_sentence_vectors);
        if vectors.is_empty() && sentence_vectors.is_empty() {
            return Ok(());
        }
        self.write_vectors(collection, vectors, sentence_vectors)
            .await
    }

    /// After a passage id conflict in a batch: writes its documents one at a time, refusing
    /// only those whose ids conflict.
    async fn import_one_by_one(
        &self,
        job: &JobRecord,
        target: &Arc<super::Collection>,
        records: Vec<(crate::store::DocumentRecord, usize)>,
        batch: JobProgress,
    ) -> Result<(), ServiceError> {
        let mut refused = JobProgress {
            job: job.id.clone(),
            failed: batch.failed,
            ..JobProgress::default()
        };
        for ((record, _), seq) in records.into_iter().zip(batch.done) {
            let started = Instant::now();
            let mut cut = self.cut_all(vec![record]).await?;
            let (record, passages) = cut.pop().expect("one record in, one out");
            let passages = passages?;
            let count = passages.len();
            let prepared = self.prepare(passages).await?;
            let progress = JobProgress {
                job: job.id.clone(),
                done: vec![seq],
                passages: count,
                embedded: prepared.new_vectors.len(),
                reused: prepared.reused,
                tokens: prepared.tokens,
                working_ms: started.elapsed().as_millis() as u64,
                ..JobProgress::default()
            };
            match self
                .write_documents(
                    &job.collection,
                    target,
                    vec![(record, count)],
                    prepared,
                    Some(progress),
                )
                .await
            {
                Err(error @ ServiceError::PassageConflict { .. }) => {
                    refuse(&mut refused, seq, &error)
                }
                other => {
                    other?;
                }
            }
        }
        let store = Arc::clone(&self.store);
        let collection = job.collection.clone();
        blocking(move || {
            store.write(
                &collection,
                &WriteBatch {
                    job: Some(&refused),
                    ..WriteBatch::default()
                },
            )
        })
        .await??;
        Ok(())
    }
}

fn refuse(progress: &mut JobProgress, seq: usize, error: &ServiceError) {
    progress
        .failed
        .push((seq, error.code().as_str().to_owned(), error.to_string()));
}

/// A new job id: time-ordered and unique within the data directory's one process.
fn job_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let noise = RandomState::new().hash_one(count) as u16;
    format!("job-{:011x}-{count:x}{noise:04x}", crate::store::now_ms())
}
