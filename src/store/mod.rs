//! Durable storage: collections, documents (their text and metadata), passages (with their
//! analysed terms) and vectors. This file is the contract the service holds a store by
//! ([`Store`]: [`DocumentStore`] and [`JobStore`]) and the records it speaks in; each backend
//! lives in its own module and is chosen by the command that opens wenda, which hands the
//! built store to the service:
//!
//! - `sqlite`: one SQLite database in a data directory that one process owns;
//! - `postgres`: PostgreSQL with pgvector, shared by replicas, which also searches vectors.
//!
//! The store is the source of truth; the in-memory indexes are rebuilt from it at start-up
//! without running the model. A write is one transaction: a document's old passages go and its
//! new ones arrive together, and a crash at any moment leaves the state before or after it.
//! Vectors are kept apart from passages, keyed by the model's fingerprint and the SHA-256 of
//! the text embedded, so that a passage whose text did not change, in any document of any
//! collection, never needs the model again. Beside each passage vector the store may keep the
//! vectors of that text's sentences (what extractive answers score), removed with it. The
//! contract's tests (`tests.rs`) run on both backends.

mod error;
mod jobs;
mod postgres;
mod rows;
mod sentences;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub(crate) use error::Result;
pub use error::StoreError;
pub use jobs::{JobLine, JobProgress, JobRecord, JobStatus, JobStore, LineError};
pub use postgres::{PostgresStore, VectorSearchSettings, DEFAULT_EF_SEARCH, MAX_EF_SEARCH};
pub use sentences::SentenceVectors;
pub use sqlite::{backup, export, ExportedDocument, SqliteStore, DATABASE_FILE};

use crate::corpus::{Layout, Passage};
use crate::embedding::{ModelFingerprint, TextKey};
use crate::index::{TermCounts, VectorSearch};

/// A collection with its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRecord {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub documents: usize,
    pub passages: usize,
    /// Bytes of document text stored.
    pub text_bytes: u64,
}

/// Where a document came from: the start-up corpus folder keeps the documents it put in sync
/// with its files, and leaves the others alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Api,
    Corpus,
}

impl Origin {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Corpus => "corpus",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        if text == "corpus" {
            Self::Corpus
        } else {
            Self::Api
        }
    }
}

/// A document as given, and what was made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    pub id: String,
    pub layout: Layout,
    pub title: Option<String>,
    /// The date as given.
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    pub metadata: Map<String, Value>,
    pub text: String,
    pub origin: Origin,
    /// SHA-256 of what the passages were cut from (text, layout and the fields above), so an
    /// unchanged document is recognised without cutting it again.
    pub content_hash: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// Passages it was cut into.
    pub passages: usize,
}

/// A passage with what an index needs of it besides its vector.
#[derive(Debug, Clone)]
pub struct StoredPassage {
    pub passage: Passage,
    /// Key of the text embedded (the passage's embedding text).
    pub text_key: TextKey,
    pub terms: TermCounts,
}

/// A passage loaded for indexing, with its vector when the model in use has one for it.
#[derive(Debug)]
pub struct LoadedPassage {
    pub stored: StoredPassage,
    pub vector: StoredVector,
}

/// What the store has of a loaded passage's vector under its model.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredVector {
    /// The vector, loaded.
    Loaded(Vec<f32>),
    /// Kept and searched by the store itself ([`DocumentStore::vector_search`]), not loaded.
    InStore,
    /// None: the passage must be embedded again (another model made the stored vectors).
    Missing,
}

/// One document to write: its record, its passages (in order), and the vectors to add.
#[derive(Debug)]
pub struct DocumentWrite<'a> {
    pub record: &'a DocumentRecord,
    pub passages: &'a [StoredPassage],
}

/// Writes to one collection, committed together.
#[derive(Debug, Default)]
pub struct WriteBatch<'a> {
    pub put: Vec<DocumentWrite<'a>>,
    /// Ids of documents to delete.
    pub delete: Vec<&'a str>,
    /// New vectors, made under the store's model.
    pub vectors: Vec<(TextKey, &'a [f32])>,
    /// The sentence vectors of passage texts (by the key of the passage's embedding text),
    /// replacing any kept before.
    pub sentence_vectors: Vec<(TextKey, &'a SentenceVectors)>,
    /// The import job this batch advances, if any.
    pub job: Option<&'a JobProgress>,
}

/// What a batch changed: per put document, whether it replaced one; per delete, whether the
/// document existed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub replaced: Vec<bool>,
    pub deleted: Vec<bool>,
}

/// Where documents, passages and vectors live: what the service needs of a store. Every
/// method blocks; callers run them off the async runtime.
pub trait DocumentStore: Send + Sync {
    /// The model whose vectors this store serves.
    fn model(&self) -> ModelFingerprint;
    /// Where the store is, for logs.
    fn describe(&self) -> String;
    /// Creates collection `name`; false when it already existed.
    fn create_collection(&self, name: &str) -> Result<bool>;
    /// Deletes collection `name` with everything in it; false when there was none.
    fn delete_collection(&self, name: &str) -> Result<bool>;
    /// Every collection, by name, with its totals.
    fn collections(&self) -> Result<Vec<CollectionRecord>>;
    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>>;
    /// Applies `batch` to `collection` in one transaction: all of it, or (on error) none.
    fn write(&self, collection: &str, batch: &WriteBatch<'_>) -> Result<BatchOutcome>;
    /// The vectors the store has, under its model, for `keys`.
    fn vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, Vec<f32>>>;
    /// The sentence vectors the store has, under its model, for the passage texts `keys`.
    fn sentence_vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, SentenceVectors>>;
    /// Every passage of `collection`, document by document in id order, with its vector under
    /// the store's model where there is one.
    fn load_collection(&self, collection: &str) -> Result<Vec<LoadedPassage>>;
    /// Replaces the stored terms of passages (after the analyzer changed), by passage id.
    fn rewrite_terms(&self, collection: &str, terms: &[(&str, &TermCounts)]) -> Result<()>;
    /// A setting kept in the store (`analyzer_revision`, …).
    fn setting(&self, key: &str) -> Result<Option<String>>;
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// One document with its passages, if `collection` has it.
    fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(DocumentRecord, Vec<Passage>)>>;
    /// Up to `limit` documents of `collection` (texts left out), in id order, after `after`.
    fn documents(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DocumentRecord>>;
    /// The content hashes of the documents of `collection` that came from `origin`.
    fn content_hashes(&self, collection: &str, origin: Origin)
        -> Result<HashMap<String, [u8; 32]>>;
    /// The passages of one document, with their vectors (to follow another process's write).
    fn load_document(&self, collection: &str, id: &str) -> Result<Vec<LoadedPassage>>;
    /// What other processes changed after position `after`, in commit order, and the position
    /// to ask from next time. A store that one process owns has nothing to report.
    fn changes_since(&self, after: u64) -> Result<(Vec<Change>, u64)>;
    /// The position of the latest change, to follow changes from.
    fn change_position(&self) -> Result<u64>;
    /// Whether other processes may write to this store at the same time.
    fn shared(&self) -> bool;
    /// Whether the store answers now (a database server may be down).
    fn ping(&self) -> Result<()>;
    /// The engine that searches `collection`'s vectors, when the store keeps and indexes them
    /// itself (PostgreSQL with pgvector); `None` when they are searched in memory.
    fn vector_search(&self, _collection: &str) -> Option<Arc<dyn VectorSearch>> {
        None
    }
}

/// A change another process made to a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub collection: String,
    /// The document written or deleted; `None` when the collection was created or deleted.
    pub document: Option<String>,
}

/// A store of documents and of import jobs: what the service holds.
pub trait Store: DocumentStore + JobStore {}

impl<T: DocumentStore + JobStore> Store for T {}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests;
