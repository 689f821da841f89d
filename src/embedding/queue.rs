//! Embeds the texts of many concurrent requests in shared forward passes, questions first.
//!
//! One worker thread owns the forward passes. Requests wait in two bounded lanes: questions (one
//! text in [`Role::Query`], what a search waits for) and bulk work (documents being written,
//! `/v1/embeddings` requests). Whenever it is free, the worker takes every waiting question (up to
//! `max_batch`) and embeds them together: a pass over sixteen short questions costs far less than
//! sixteen passes, because the weights are streamed from memory once for all of them. Bulk work
//! is taken one slice at a time, when no question waits or right after a pass of questions (so
//! a steady stream of questions cannot starve it): bulk requests are cut into slices of at most
//! [`BULK_SLICE_TOKENS`] tokens, so a question that arrives during a large import (or a maximal
//! embeddings request) waits for one slice, not for the whole of it. As in text-embeddings-inference there is no timer: a batch is
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

/// Where a pass's work came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Questions,
    Bulk,
}

impl Lanes {
    /// The work of the next pass: every waiting question (up to `max_batch`), or one bulk
    /// slice when no question waits or when the `last` pass was of questions, so a steady
    /// stream of questions cannot starve bulk work (it would wait until its lane filled and
    /// refused everyone) while a question still waits for one slice at most.
    fn next_pass(&mut self, last: Lane, max_batch: usize) -> Option<(Lane, Role, Vec<Job>)> {
        let bulk_turn = last == Lane::Questions || self.questions.is_empty();
        let pass = match bulk_turn.then(|| self.bulk.pop_front()).flatten() {
            Some(job) => (Lane::Bulk, job.role, vec![job]),
            None if !self.questions.is_empty() => {
                let take = self.questions.len().min(max_batch);
                let jobs = self.questions.drain(..take).collect();
                (Lane::Questions, Role::Query, jobs)
            }
            None => return None,
        };
        self.record_depth();
        Some(pass)
    }

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
    let mut last = Lane::Bulk;
    loop {
        let (role, jobs) = {
            let mut lanes = shared.lanes();
            loop {
                if let Some((lane, role, jobs)) = lanes.next_pass(last, max_batch) {
                    last = lane;
                    break (role, jobs);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(role: Role, text: &str) -> Job {
        Job {
            role,
            texts: vec![text.to_owned()],
            reply: oneshot::channel().0,
        }
    }

    fn texts(pass: Option<(Lane, Role, Vec<Job>)>) -> (Lane, Vec<String>) {
        let (lane, _, jobs) = pass.expect("a pass");
        (lane, jobs.into_iter().flat_map(|j| j.texts).collect())
    }

    #[test]
    fn questions_go_first_but_bulk_work_gets_every_other_pass() {
        let mut lanes = Lanes::default();
        lanes
            .bulk
            .extend([job(Role::Passage, "b1"), job(Role::Passage, "b2")]);
        lanes
            .questions
            .extend((1..=3).map(|n| job(Role::Query, &format!("q{n}"))));
        // Questions waiting after a bulk pass go first, as many as a batch holds.
        assert_eq!(
            texts(lanes.next_pass(Lane::Bulk, 2)),
            (Lane::Questions, vec!["q1".into(), "q2".into()])
        );
        // Right after them, a bulk slice, though a question still waits.
        assert_eq!(
            texts(lanes.next_pass(Lane::Questions, 2)),
            (Lane::Bulk, vec!["b1".into()])
        );
        assert_eq!(
            texts(lanes.next_pass(Lane::Bulk, 2)),
            (Lane::Questions, vec!["q3".into()])
        );
        // With no question waiting, bulk work goes on; with nothing at all, no pass.
        assert_eq!(
            texts(lanes.next_pass(Lane::Bulk, 2)),
            (Lane::Bulk, vec!["b2".into()])
        );
        assert!(lanes.next_pass(Lane::Bulk, 2).is_none());
    }
}
