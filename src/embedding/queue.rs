//! Embeds the texts of many concurrent requests in shared forward passes, questions first.
//!
//! One worker thread owns the forward passes. Requests wait in two bounded lanes: questions (one
//! text in [`Role::Query`], what a search waits for) and bulk work (documents being written,
//! `/v1/embeddings` requests). Whenever it is free, the worker takes every waiting question (up to
//! `max_batch`) and embeds them together: a pass over sixteen short questions costs far less than
//! sixteen passes, because the weights are streamed from memory once for all of them. Only when
//! no question waits does it take bulk work, one slice at a time: bulk requests are cut into
//! slices of at most [`BULK_SLICE_TOKENS`] tokens, so a question that arrives during a large
//! import (or a maximal embeddings request) waits for one slice, not for the whole of it. As in text-embeddings-inference there is no timer: a batch is
//! whatever arrived while the previous pass ran, so a lone request never waits for company. Work
//! whose requester has gone away (a client that disconnected) is dropped, not embedded. A
//! full lane refuses new work at once ([`QueueError::Full`]), so overload shows up as an error
//! the caller can report rather than as an ever-growing wait.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::{Embedder, Embedding, Role};

/// Most tokens one slice of bulk work holds (a few tenths of a second of the worker's time on
/// two cores): about the longest a question waits behind bulk work.
pub const BULK_SLICE_TOKENS: usize = 1_024;

/// Why a queued text got no embedding.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("too many texts are waiting to be embedded")]
    Full,
    #[error("the embedding worker has stopped")]
    Stopped,
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// Texts embedded in one pass with whatever else is waiting in their lane.
struct Job {
    role: Role,
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Embedding>, QueueError>>,
}

#[derive(Default)]
struct Lanes {
    /// Single questions, all in [`Role::Query`].
    questions: VecDeque<Job>,
    /// Slices of larger requests, in either role.
    bulk: VecDeque<Job>,
    stopped: bool,
}

struct Shared {
    lanes: Mutex<Lanes>,
    work: Condvar,
    capacity: usize,
}

impl Lanes {
    /// Publishes how much work waits, per lane.
    fn record_depth(&self) {
        metrics::gauge!("wenda_embed_queue_depth", "lane" => "questions")
            .set(self.questions.len() as f64);
        metrics::gauge!("wenda_embed_queue_depth", "lane" => "bulk").set(self.bulk.len() as f64);
    }
}

impl Shared {
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the embedding worker; cheap to share behind an `Arc`. The worker stops when the
/// handle is dropped.
pub struct EmbedQueue {
    shared: Arc<Shared>,
    embedder: Arc<Embedder>,
}

impl EmbedQueue {
    /// Starts the worker. A lane holding `capacity` jobs refuses more; a pass takes waiting
    /// questions until they hold `max_batch` texts.
    pub fn start(embedder: Arc<Embedder>, capacity: usize, max_batch: usize) -> Self {
        let shared = Arc::new(Shared {
            lanes: Mutex::default(),
            work: Condvar::new(),
            capacity: capacity.max(1),
        });
        let worker = Arc::clone(&shared);
        let model = Arc::clone(&embedder);
        std::thread::Builder::new()
            .name("wenda-embed".into())
            .spawn(move || work(&model, &worker, max_batch.max(1)))
            .expect("spawning the embedding worker thread");
        Self { shared, embedder }
    }

    /// Embeds `text` in `role`, sharing a forward pass with whatever else is waiting.
    pub async fn embed(&self, role: Role, text: String) -> Result<Embedding, QueueError> {
        let mut embeddings = self.embed_all(role, vec![text]).await?;
        Ok(embeddings.remove(0))
    }

    /// Embeds `texts` in `role`; the result follows their order. A single question goes ahead of
    /// bulk work; anything else is cut into slices that queue one after another, each behind any
    /// question that arrives meanwhile.
    pub async fn embed_all(
        &self,
        role: Role,
        texts: Vec<String>,
    ) -> Result<Vec<Embedding>, QueueError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let question = role == Role::Query && texts.len() == 1;
        let slices = if question {
            vec![texts]
        } else {
            self.slices(texts)
        };
        let answers = {
            let mut lanes = self.shared.lanes();
            if lanes.stopped {
                return Err(QueueError::Stopped);
            }
            let lane = if question {
                &mut lanes.questions
            } else {
                &mut lanes.bulk
            };
            // A lane at capacity refuses; one admitted takes all the request's slices, so a
            // request is never half queued.
            if lane.len() >= self.shared.capacity {
                return Err(QueueError::Full);
            }
            let mut answers = Vec::with_capacity(slices.len());
            for texts in slices {
                let (reply, answer) = oneshot::channel();
                lane.push_back(Job { role, texts, reply });
                answers.push(answer);
            }
            lanes.record_depth();
            answers
        };
        self.shared.work.notify_one();
        let mut embeddings = Vec::new();
        for answer in answers {
            embeddings.extend(answer.await.map_err(|_| QueueError::Stopped)??);
        }
        Ok(embeddings)
    }

    /// Cuts texts into slices of about [`BULK_SLICE_TOKENS`] tokens (a longer text is a slice
    /// alone). A text's characters stand for its tokens: never fewer for Chinese, and counting
    /// them costs nothing, where tokenizing every text twice would hold up the caller.
    fn slices(&self, texts: Vec<String>) -> Vec<Vec<String>> {
        let window = self.embedder.config().max_tokens;
        let mut slices: Vec<Vec<String>> = Vec::new();
        let mut size = 0;
        for text in texts {
            let estimate = text.chars().count().min(window);
            match slices.last_mut() {
                Some(slice) if size + estimate <= BULK_SLICE_TOKENS => {
                    slice.push(text);
                    size += estimate;
                }
                _ => {
                    slices.push(vec![text]);
                    size = estimate;
                }
            }
        }
        slices
    }
}

impl Drop for EmbedQueue {
    fn drop(&mut self) {
        self.shared.lanes().stopped = true;
        self.shared.work.notify_all();
    }
}

fn work(embedder: &Embedder, shared: &Shared, max_batch: usize) {
    loop {
        let (role, jobs) = {
            let mut lanes = shared.lanes();
            loop {
                if !lanes.questions.is_empty() {
                    let mut jobs = Vec::new();
                    while jobs.len() < max_batch {
                        let Some(job) = lanes.questions.pop_front() else {
                            break;
                        };
                        jobs.push(job);
                    }
                    lanes.record_depth();
                    break (Role::Query, jobs);
                }
                if let Some(job) = lanes.bulk.pop_front() {
                    lanes.record_depth();
                    break (job.role, vec![job]);
                }
                if lanes.stopped {
                    return;
                }
                lanes = shared
                    .work
                    .wait(lanes)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        answer(embedder, role, jobs);
    }
}

fn answer(embedder: &Embedder, role: Role, jobs: Vec<Job>) {
    // A requester that went away (a client that disconnected, a write that failed in another
    // slice) no longer wants its texts: skip them rather than spend the model on nobody.
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|job| !job.reply.is_closed())
        .collect();
    if jobs.is_empty() {
        return;
    }
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().map(String::as_str))
        .collect();
    metrics::histogram!("wenda_embed_batch_texts").record(texts.len() as f64);
    match embedder.embed(role, &texts) {
        Ok(embeddings) => {
            let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
            metrics::counter!("wenda_embed_tokens_total", "role" => role.as_str())
                .increment(tokens as u64);
            let mut embeddings = embeddings.into_iter();
            for job in jobs {
                let own: Vec<Embedding> = embeddings.by_ref().take(job.texts.len()).collect();
                // The requester may have gone away (client disconnected); nothing to do then.
                let _ = job.reply.send(Ok(own));
            }
        }
        Err(error) => {
            tracing::error!(%error, texts = texts.len(), "embedding a batch failed");
            for job in jobs {
                let _ = job.reply.send(Err(QueueError::Failed(error.to_string())));
            }
        }
    }
}
