//! Embeds the texts of many concurrent requests in shared forward passes.
//!
//! One worker thread owns the forward passes. Requests wait in a bounded channel; the worker takes
//! the first, then every request already waiting (up to `max_batch`), and embeds them together. A
//! pass over sixteen short questions costs far less than sixteen passes, because the weights are
//! streamed from memory once for all of them. As in text-embeddings-inference there is no timer:
//! a batch is whatever arrived while the previous pass ran, so a lone request never waits for
//! company. A full channel refuses new work at once ([`QueueError::Full`]), so overload shows up
//! as an error the caller can report rather than as an ever-growing wait.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Embedder, Embedding, Role};

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

/// Texts of one request; they are embedded in the same pass as whatever else is waiting.
struct Job {
    role: Role,
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Embedding>, QueueError>>,
}

/// Handle to the embedding worker; cheap to share behind an `Arc`. The worker stops when the
/// last handle is dropped.
pub struct EmbedQueue {
    sender: SyncSender<Job>,
}

impl EmbedQueue {
    /// Starts the worker. At most `capacity` requests wait; a pass takes waiting requests until
    /// they hold `max_batch` texts (a single larger request is embedded whole).
    pub fn start(embedder: Arc<Embedder>, capacity: usize, max_batch: usize) -> Self {
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        std::thread::Builder::new()
            .name("wenda-embed".into())
            .spawn(move || work(&embedder, &receiver, max_batch.max(1)))
            .expect("spawning the embedding worker thread");
        Self { sender }
    }

    /// Embeds `text` in `role`, sharing a forward pass with whatever else is waiting.
    pub async fn embed(&self, role: Role, text: String) -> Result<Embedding, QueueError> {
        let mut embeddings = self.embed_all(role, vec![text]).await?;
        Ok(embeddings.remove(0))
    }

    /// Embeds `texts` in `role`; the result follows their order.
    pub async fn embed_all(
        &self,
        role: Role,
        texts: Vec<String>,
    ) -> Result<Vec<Embedding>, QueueError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Job { role, texts, reply })
            .map_err(|e| match e {
                TrySendError::Full(_) => QueueError::Full,
                TrySendError::Disconnected(_) => QueueError::Stopped,
            })?;
        answer.await.map_err(|_| QueueError::Stopped)?
    }
}

fn work(embedder: &Embedder, receiver: &Receiver<Job>, max_batch: usize) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = first.texts.len();
        let mut batch = vec![first];
        while waiting < max_batch {
            match receiver.try_recv() {
                Ok(job) => {
                    waiting += job.texts.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        for role in [Role::Query, Role::Passage] {
            let (jobs, rest): (Vec<Job>, Vec<Job>) =
                batch.into_iter().partition(|job| job.role == role);
            batch = rest;
            if !jobs.is_empty() {
                answer(embedder, role, jobs);
            }
        }
    }
}

fn answer(embedder: &Embedder, role: Role, jobs: Vec<Job>) {
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().map(String::as_str))
        .collect();
    match embedder.embed(role, &texts) {
        Ok(embeddings) => {
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
