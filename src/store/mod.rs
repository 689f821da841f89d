//! Durable storage: collections, documents (their text and metadata), passages (with their
//! analysed terms) and vectors, in one SQLite database in WAL mode.
//!
//! The store is the source of truth; the in-memory indexes are rebuilt from it at start-up
//! without running the model. A write is one transaction: a document's old passages go and its
//! new ones arrive together, and a crash at any moment leaves the state before or after it.
//! Commits are synced (`synchronous = FULL`), so what was acknowledged survives `kill -9` and
//! power loss alike. Vectors are kept apart from passages, keyed by the model's fingerprint and
//! the SHA-256 of the text embedded, so that a passage whose text did not change, in any
//! document of any collection, never needs the model again.
//!
//! One process owns a data directory at a time (an advisory lock on `wenda.lock`); other
//! processes may read the database (backups, exports) while it runs.

mod export;
mod jobs;
mod pg_vectors;
mod postgres;
mod schema;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use serde_json::{Map, Value};

pub use export::{backup, export, ExportedDocument};
pub use jobs::{JobLine, JobProgress, JobRecord, JobStatus, JobStore, LineError};
pub use pg_vectors::{DEFAULT_EF_SEARCH, MAX_EF_SEARCH};
pub use postgres::{PostgresStore, VectorSearchSettings};

use crate::corpus::{Layout, Passage};
use crate::embedding::{ModelFingerprint, TextKey};
use crate::index::{TermCounts, VectorSearch};

/// The database file in a data directory.
pub const DATABASE_FILE: &str = "wenda.sqlite3";
const LOCK_FILE: &str = "wenda.lock";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full, read-only or failing, or the database is busy: nothing was written;
    /// retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("{path} is damaged: {problem}; restore it from a backup (`wenda backup`)")]
    Corrupt { path: String, problem: String },
    #[error("{0} is used by another wenda process; stop it or give another --data-dir")]
    InUse(String),
    #[error("{path} was written by a newer wenda (schema {found}; this one knows up to {known})")]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Incompatible(String),
    #[error("no collection is named {0:?}")]
    UnknownCollection(String),
    #[error("passage id {passage:?} already belongs to document {document:?}")]
    PassageTaken { passage: String, document: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Self::Corrupt {
                path: DATABASE_FILE.into(),
                problem: error.to_string(),
            },
            _ => Self::Unavailable(error.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Unavailable(error.to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

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

/// Where documents, passages and vectors live: what the service core needs of a store. Every
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

/// A store of documents and of import jobs: what the service core holds.
pub trait Store: DocumentStore + JobStore {}

impl<T: DocumentStore + JobStore> Store for T {}

/// The durable store of one data directory, in SQLite.
pub struct SqliteStore {
    directory: PathBuf,
    model: ModelFingerprint,
    dimensions: usize,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Held while the store is open: the advisory lock that keeps a second process out.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `directory` for vectors of `model`, with
    /// `dimensions` each. Refuses a directory another wenda process holds.
    pub fn open(directory: &Path, model: ModelFingerprint, dimensions: usize) -> Result<Self> {
        std::fs::create_dir_all(directory)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(directory.join(LOCK_FILE))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::InUse(directory.display().to_string()));
        }
        let path = directory.join(DATABASE_FILE);
        let writer = connect(&path, false)?;
        schema::migrate(&writer, &path)?;
        let reader = connect(&path, true)?;
        Ok(Self {
            directory: directory.to_owned(),
            model,
            dimensions,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            _lock: lock,
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Caps the database at about `bytes` (SQLite's page limit): writes beyond it fail with
    /// [`StoreError::Unavailable`] and change nothing.
    pub fn set_size_limit(&self, bytes: u64) -> Result<()> {
        let writer = self.writer();
        let page_size: i64 = writer.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let pages = (bytes / page_size.max(1) as u64).max(1);
        writer.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn collection_records(&self, name: Option<&str>) -> Result<Vec<CollectionRecord>> {
        let reader = self.reader();
        let mut statement = reader.prepare_cached(
            "SELECT c.name, c.created_at, COUNT(d.doc_id), COALESCE(SUM(d.passages), 0),
                    COALESCE(SUM(LENGTH(CAST(d.text AS BLOB))), 0)
             FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
             WHERE ?1 IS NULL OR c.name = ?1
             GROUP BY c.id ORDER BY c.name",
        )?;
        let records = statement
            .query_map([name], |row| {
                Ok(CollectionRecord {
                    name: row.get(0)?,
                    created_at: row.get(1)?,
                    documents: row.get::<_, i64>(2)? as usize,
                    passages: row.get::<_, i64>(3)? as usize,
                    text_bytes: row.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(records)
    }

    /// The passages of `collection` (of one document, if given), in document and passage
    /// order, with their vectors under the store's model where there is one. Rows are read in
    /// one pass and decoded in parallel: at start-up this is most of the time a restart takes.
    fn load_passages(
        &self,
        collection: &str,
        document: Option<&str>,
    ) -> Result<Vec<LoadedPassage>> {
        type Row = (String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
        let rows: Vec<Row> = {
            let reader = self.reader();
            let id = collection_id(&reader, collection)?;
            let mut statement = reader.prepare_cached(
                "SELECT p.body, p.text_key, p.terms, v.vector
                 FROM passages p
                 LEFT JOIN vectors v ON v.model = ?2 AND v.text_key = p.text_key
                 WHERE p.collection_id = ?1 AND (?3 IS NULL OR p.doc_id = ?3)
                 ORDER BY p.doc_id, p.seq",
            )?;
            let rows = statement
                .query_map(params![id, self.model.as_bytes(), document], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            rows
        };
        use rayon::prelude::*;
        rows.into_par_iter()
            .map(|(body, key, terms, vector)| {
                let passage: Passage =
                    serde_json::from_str(&body).map_err(|e| corrupt("passage", e))?;
                Ok(LoadedPassage {
                    stored: StoredPassage {
                        passage,
                        text_key: text_key(&key)?,
                        terms: TermCounts::decode(&terms).map_err(|e| corrupt("terms", e))?,
                    },
                    vector: match vector {
                        Some(bytes) => StoredVector::Loaded(self.decode_vector(&bytes)?),
                        None => StoredVector::Missing,
                    },
                })
            })
            .collect()
    }

    fn decode_vector(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        if bytes.len() != self.dimensions * 4 {
            return Err(corrupt(
                "vector",
                format!("{} bytes for {} dimensions", bytes.len(), self.dimensions),
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

impl DocumentStore for SqliteStore {
    fn model(&self) -> ModelFingerprint {
        self.model
    }

    fn describe(&self) -> String {
        self.directory.display().to_string()
    }

    /// Creates collection `name`; false when it already existed.
    fn create_collection(&self, name: &str) -> Result<bool> {
        let created = self.writer().execute(
            "INSERT INTO collections (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![name, now_ms()],
        )?;
        Ok(created == 1)
    }

    /// Deletes collection `name` with everything in it; false when there was none.
    fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut writer = self.writer();
        let transaction = writer.transaction()?;
        let deleted = transaction.execute("DELETE FROM collections WHERE name = ?1", [name])?;
        delete_unused_vectors(&transaction)?;
        transaction.commit()?;
        Ok(deleted == 1)
    }

    /// Every collection, by name, with its totals.
    fn collections(&self) -> Result<Vec<CollectionRecord>> {
        self.collection_records(None)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>> {
        Ok(self.collection_records(Some(name))?.pop())
    }

    /// Applies `batch` to `collection` in one transaction: all of it, or (on error) none.
    fn write(&self, collection: &str, batch: &WriteBatch<'_>) -> Result<BatchOutcome> {
        let mut writer = self.writer();
        let transaction =
            writer.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let collection_id = collection_id(&transaction, collection)?;
        let mut outcome = BatchOutcome::default();
        let mut released = Vec::new();
        for document in &batch.delete {
            let (existed, keys) = delete_document(&transaction, collection_id, document)?;
            outcome.deleted.push(existed);
            released.extend(keys);
        }
        for write in &batch.put {
            let (replaced, keys) = put_document(&transaction, collection_id, write)?;
            outcome.replaced.push(replaced);
            released.extend(keys);
        }
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO vectors (model, text_key, vector) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?;
            for (key, vector) in &batch.vectors {
                assert_eq!(vector.len(), self.dimensions, "vector dimensions");
                insert.execute(params![
                    self.model.as_bytes(),
                    key.as_bytes(),
                    vector_bytes(vector)
                ])?;
            }
        }
        {
            let mut unused = transaction.prepare_cached(
                "DELETE FROM vectors WHERE text_key = ?1
                 AND NOT EXISTS (SELECT 1 FROM passages WHERE text_key = ?1)",
            )?;
            for key in released {
                unused.execute([key.as_bytes()])?;
            }
        }
        if let Some(progress) = batch.job {
            jobs::record_progress(&transaction, progress)?;
        }
        transaction.commit()?;
        Ok(outcome)
    }

    /// The vectors the store has, under its model, for `keys`.
    fn vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, Vec<f32>>> {
        let reader = self.reader();
        let mut statement = reader
            .prepare_cached("SELECT vector FROM vectors WHERE model = ?1 AND text_key = ?2")?;
        let mut found = HashMap::new();
        for key in keys {
            let vector: Option<Vec<u8>> = statement
                .query_row(params![self.model.as_bytes(), key.as_bytes()], |row| {
                    row.get(0)
                })
                .optional()?;
            if let Some(bytes) = vector {
                found.insert(*key, self.decode_vector(&bytes)?);
            }
        }
        Ok(found)
    }

    /// Every passage of `collection`, document by document in id order, with its vector under
    /// the store's model where there is one. Rows are read in one pass and decoded in parallel:
    /// at start-up this is most of the time a restart takes.
    fn load_collection(&self, collection: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, None)
    }

    /// Replaces the stored terms of passages (after the analyzer changed), by passage id.
    fn rewrite_terms(&self, collection: &str, terms: &[(&str, &TermCounts)]) -> Result<()> {
        let mut writer = self.writer();
        let transaction = writer.transaction()?;
        let id = collection_id(&transaction, collection)?;
        {
            let mut update = transaction.prepare_cached(
                "UPDATE passages SET terms = ?3 WHERE collection_id = ?1 AND passage_id = ?2",
            )?;
            for (passage, counts) in terms {
                update.execute(params![id, passage, counts.encode()])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// A setting kept in the database (`analyzer_revision`, …).
    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.writer().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// One document with its passages, if `collection` has it.
    fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(DocumentRecord, Vec<Passage>)>> {
        let reader = self.reader();
        let collection_id = collection_id(&reader, collection)?;
        let record = reader
            .query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?1 AND doc_id = ?2"),
                params![collection_id, id],
                document_record,
            )
            .optional()?;
        let Some(record) = record else {
            return Ok(None);
        };
        let record = record?;
        let mut statement = reader.prepare_cached(
            "SELECT body FROM passages WHERE collection_id = ?1 AND doc_id = ?2 ORDER BY seq",
        )?;
        let passages = statement
            .query_map(params![collection_id, id], |row| row.get::<_, String>(0))?
            .map(|body| serde_json::from_str(&body?).map_err(|e| corrupt("passage", e)))
            .collect::<Result<Vec<Passage>>>()?;
        Ok(Some((record, passages)))
    }

    /// Up to `limit` documents of `collection` (texts left out), in id order, after `after`.
    fn documents(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DocumentRecord>> {
        let reader = self.reader();
        let collection_id = collection_id(&reader, collection)?;
        let mut statement = reader.prepare_cached(&format!(
            "SELECT {DOCUMENT_SUMMARY_COLUMNS} FROM documents
             WHERE collection_id = ?1 AND (?2 IS NULL OR doc_id > ?2)
             ORDER BY doc_id LIMIT ?3"
        ))?;
        let records = statement
            .query_map(params![collection_id, after, limit as i64], document_record)?
            .map(|record| record?)
            .collect();
        records
    }

    /// The content hashes of the documents of `collection` that came from `origin`.
    fn content_hashes(
        &self,
        collection: &str,
        origin: Origin,
    ) -> Result<HashMap<String, [u8; 32]>> {
        let reader = self.reader();
        let collection_id = collection_id(&reader, collection)?;
        let mut statement = reader.prepare_cached(
            "SELECT doc_id, content_hash FROM documents WHERE collection_id = ?1 AND origin = ?2",
        )?;
        let hashes = statement
            .query_map(params![collection_id, origin.as_str()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .map(|pair| {
                let (id, hash) = pair?;
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| corrupt("content hash", "not 32 bytes"))?;
                Ok((id, hash))
            })
            .collect();
        hashes
    }

    fn load_document(&self, collection: &str, id: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, Some(id))
    }

    fn changes_since(&self, after: u64) -> Result<(Vec<Change>, u64)> {
        // The lock on the data directory: no other process writes here.
        Ok((Vec::new(), after))
    }

    fn change_position(&self) -> Result<u64> {
        Ok(0)
    }

    fn shared(&self) -> bool {
        false
    }

    fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// Opens a connection with the settings every connection needs.
fn connect(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags).map_err(|error| {
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::Corrupt {
                path: path.display().to_string(),
                problem: error.to_string(),
            },
            _ => StoreError::from(error),
        }
    })?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "foreign_keys", true)?;
    if !read_only {
        let mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} cannot use write-ahead logging (journal mode {mode})",
                path.display()
            )));
        }
        connection.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(connection)
}

const DOCUMENT_SUMMARY_COLUMNS: &str = "doc_id, layout, title, date, source, url, metadata, \
     '' AS text, origin, content_hash, created_at, updated_at, passages";
const DOCUMENT_COLUMNS: &str = "doc_id, layout, title, date, source, url, metadata, text, \
     origin, content_hash, created_at, updated_at, passages";

fn document_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<DocumentRecord>> {
    let layout: String = row.get(1)?;
    let metadata: String = row.get(6)?;
    let origin: String = row.get(8)?;
    let hash: Vec<u8> = row.get(9)?;
    let build = || -> Result<DocumentRecord> {
        Ok(DocumentRecord {
            id: row.get(0)?,
            layout: layout.parse().map_err(|e| corrupt("document layout", e))?,
            title: row.get(2)?,
            date: row.get(3)?,
            source: row.get(4)?,
            url: row.get(5)?,
            metadata: serde_json::from_str(&metadata).map_err(|e| corrupt("metadata", e))?,
            text: row.get(7)?,
            origin: Origin::parse(&origin),
            content_hash: hash
                .try_into()
                .map_err(|_| corrupt("content hash", "not 32 bytes"))?,
            created_at: row.get(10)?,
            updated_at: row.get(11)?,
            passages: row.get::<_, i64>(12)? as usize,
        })
    };
    Ok(build())
}

fn collection_id(connection: &Connection, name: &str) -> Result<i64> {
    connection
        .query_row(
            "SELECT id FROM collections WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::UnknownCollection(name.to_owned()))
}

/// Deletes a document and its passages: whether there was one, and the text keys its passages
/// used (whose vectors may now be unused).
fn delete_document(
    transaction: &Transaction<'_>,
    collection_id: i64,
    id: &str,
) -> Result<(bool, Vec<TextKey>)> {
    let keys = transaction
        .prepare_cached(
            "DELETE FROM passages WHERE collection_id = ?1 AND doc_id = ?2 RETURNING text_key",
        )?
        .query_map(params![collection_id, id], |row| row.get::<_, Vec<u8>>(0))?
        .map(|key| text_key(&key?))
        .collect::<Result<Vec<TextKey>>>()?;
    let deleted = transaction.execute(
        "DELETE FROM documents WHERE collection_id = ?1 AND doc_id = ?2",
        params![collection_id, id],
    )?;
    Ok((deleted == 1, keys))
}

/// Writes a document and its passages, replacing any earlier version: whether it did, and the
/// text keys the earlier version used.
fn put_document(
    transaction: &Transaction<'_>,
    collection_id: i64,
    write: &DocumentWrite<'_>,
) -> Result<(bool, Vec<TextKey>)> {
    let record = write.record;
    // A replaced document keeps the time it was first written.
    let created_at: i64 = transaction
        .query_row(
            "SELECT created_at FROM documents WHERE collection_id = ?1 AND doc_id = ?2",
            params![collection_id, record.id],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(record.created_at);
    let (replaced, released) = delete_document(transaction, collection_id, &record.id)?;
    transaction
        .prepare_cached(
            "INSERT INTO documents (collection_id, doc_id, layout, title, date, source, url,
                 metadata, text, origin, content_hash, created_at, updated_at, passages)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            collection_id,
            record.id,
            record.layout.as_str(),
            record.title,
            record.date,
            record.source,
            record.url,
            Value::Object(record.metadata.clone()).to_string(),
            record.text,
            record.origin.as_str(),
            record.content_hash.as_slice(),
            created_at,
            record.updated_at,
            write.passages.len() as i64,
        ])?;
    let mut insert = transaction.prepare_cached(
        "INSERT INTO passages (collection_id, doc_id, seq, passage_id, body, text_key, terms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, stored) in write.passages.iter().enumerate() {
        let body = serde_json::to_string(&stored.passage).expect("a passage serialises");
        let inserted = insert.execute(params![
            collection_id,
            record.id,
            seq as i64,
            stored.passage.id.as_str(),
            body,
            stored.text_key.as_bytes().as_slice(),
            stored.terms.encode(),
        ]);
        if let Err(error) = inserted {
            if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
                let owner: String = transaction.query_row(
                    "SELECT doc_id FROM passages WHERE collection_id = ?1 AND passage_id = ?2",
                    params![collection_id, stored.passage.id.as_str()],
                    |row| row.get(0),
                )?;
                return Err(StoreError::PassageTaken {
                    passage: stored.passage.id.to_string(),
                    document: owner,
                });
            }
            return Err(error.into());
        }
    }
    Ok((replaced, released))
}

/// Drops every vector no passage uses any more (under any model: a vector of another model is
/// kept while its text is still in use, for a switch back).
fn delete_unused_vectors(transaction: &Transaction<'_>) -> Result<()> {
    transaction.execute(
        "DELETE FROM vectors WHERE NOT EXISTS
             (SELECT 1 FROM passages p WHERE p.text_key = vectors.text_key)",
        [],
    )?;
    Ok(())
}

fn text_key(bytes: &[u8]) -> Result<TextKey> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("text key", "not 32 bytes"))?;
    Ok(TextKey::from_bytes(bytes))
}

fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn corrupt(what: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: DATABASE_FILE.into(),
        problem: format!("unreadable {what}: {problem}"),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests;
