//! The store in one SQLite database in WAL mode, in a data directory one process owns (an
//! advisory lock on `wenda.lock`); other processes may read the database (backups, exports)
//! while it runs. Commits are synced (`synchronous = FULL`), so what was acknowledged survives
//! `kill -9` and power loss alike.

mod export;
mod files;
mod jobs;
mod schema;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use serde_json::Value;

pub use export::{backup, export, ExportedDocument};
use files::DatabaseFiles;

use super::rows::{
    corrupt, document_record, text_key, Row, DOCUMENT_COLUMNS, DOCUMENT_SUMMARY_COLUMNS,
};
use super::{
    now_ms, BatchOutcome, Change, CollectionRecord, DocumentRecord, DocumentStore, DocumentWrite,
    LoadedPassage, Origin, Result, SentenceVectors, StoreError, StoredPassage, StoredVector,
    WriteBatch,
};
use crate::corpus::Passage;
use crate::embedding::{ModelFingerprint, TextKey};
use crate::index::TermCounts;

/// The database file in a data directory.
pub const DATABASE_FILE: &str = "wenda.sqlite3";
const LOCK_FILE: &str = "wenda.lock";

/// The durable store of one data directory, in SQLite.
pub struct SqliteStore {
    directory: PathBuf,
    files: DatabaseFiles,
    /// The cap on the files' bytes on disk (`--max-store-bytes`); 0 for none.
    size_limit: AtomicU64,
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
        // Refused before SQLite maps a shared memory it could not write.
        let files = DatabaseFiles::new(&path);
        files.check_writable()?;
        let writer = connect(&path, false)?;
        schema::migrate(&writer, &path)?;
        let reader = connect(&path, true)?;
        Ok(Self {
            directory: directory.to_owned(),
            files,
            size_limit: AtomicU64::new(0),
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

    /// Caps the database, its write-ahead log and its shared memory at about `bytes` on disk
    /// together: a write that would take them past it fails with [`StoreError::Unavailable`]
    /// and changes nothing. Deletes always go through (they are how room is made).
    pub fn set_size_limit(&self, bytes: u64) -> Result<()> {
        self.size_limit.store(bytes.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Runs `write` on the writing connection, once the files are known to be writable and
    /// the page limit leaves the write no more than the room under the size limit.
    fn writing<T>(&self, write: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.files.check_writable()?;
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let limit = self.size_limit.load(Ordering::Relaxed);
        if limit == 0 {
            return write(&mut writer);
        }
        limit_growth(&writer, &self.files, limit)?;
        write(&mut writer).map_err(|error| match error {
            StoreError::Full(problem) => StoreError::Full(format!(
                "{problem}: the store takes {} of --max-store-bytes {limit}",
                self.files.sizes()
            )),
            other => other,
        })
    }

    /// The reading connection, once its read mark can be written.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>> {
        self.files.check_readable()?;
        Ok(self.reader.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn collection_records(&self, name: Option<&str>) -> Result<Vec<CollectionRecord>> {
        let reader = self.reader()?;
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
            let reader = self.reader()?;
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

    /// The values `query` (model `?1`, text key `?2`, one blob column) finds for `keys` under
    /// the store's model, decoded.
    fn values_by_key<T>(
        &self,
        query: &str,
        keys: &[TextKey],
        decode: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<HashMap<TextKey, T>> {
        let reader = self.reader()?;
        let mut statement = reader.prepare_cached(query)?;
        let mut found = HashMap::new();
        for key in keys {
            let value: Option<Vec<u8>> = statement
                .query_row(params![self.model.as_bytes(), key.as_bytes()], |row| {
                    row.get(0)
                })
                .optional()?;
            if let Some(bytes) = value {
                found.insert(*key, decode(&bytes)?);
            }
        }
        Ok(found)
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

impl Drop for SqliteStore {
    /// Closing the last connection checkpoints the log into the database, which writes the
    /// shared memory through its mapping: with a file that cannot be written that would be a
    /// SIGBUS on the way out. The log keeps every committed write for the next start instead.
    fn drop(&mut self) {
        if self.files.check_writable().is_err() {
            for connection in [&self.writer, &self.reader] {
                let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = connection.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
            }
        }
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
        let created = self.writing(|writer| {
            Ok(writer.execute(
                "INSERT INTO collections (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![name, now_ms()],
            )?)
        })?;
        Ok(created == 1)
    }

    /// Deletes collection `name` with everything in it; false when there was none.
    fn delete_collection(&self, name: &str) -> Result<bool> {
        self.writing(|writer| {
            let transaction = writer.transaction()?;
            let deleted = transaction.execute("DELETE FROM collections WHERE name = ?1", [name])?;
            delete_unused_vectors(&transaction)?;
            transaction.commit()?;
            Ok(deleted == 1)
        })
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
        self.writing(|writer| {
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
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO sentence_vectors (model, text_key, sentences) VALUES (?1, ?2, ?3)
                     ON CONFLICT (model, text_key) DO UPDATE SET sentences = excluded.sentences",
                )?;
                for (key, sentences) in &batch.sentence_vectors {
                    insert.execute(params![
                        self.model.as_bytes(),
                        key.as_bytes(),
                        sentences.encode()
                    ])?;
                }
            }
            for table in ["vectors", "sentence_vectors"] {
                let mut unused = transaction.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE text_key = ?1
                     AND NOT EXISTS (SELECT 1 FROM passages WHERE text_key = ?1)"
                ))?;
                for key in &released {
                    unused.execute([key.as_bytes()])?;
                }
            }
            if let Some(progress) = batch.job {
                jobs::record_progress(&transaction, progress)?;
            }
            transaction.commit()?;
            Ok(outcome)
        })
    }

    /// The vectors the store has, under its model, for `keys`.
    fn vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, Vec<f32>>> {
        self.values_by_key(
            "SELECT vector FROM vectors WHERE model = ?1 AND text_key = ?2",
            keys,
            |bytes| self.decode_vector(bytes),
        )
    }

    fn sentence_vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, SentenceVectors>> {
        self.values_by_key(
            "SELECT sentences FROM sentence_vectors WHERE model = ?1 AND text_key = ?2",
            keys,
            |bytes| SentenceVectors::decode(bytes, self.dimensions),
        )
    }

    /// Every passage of `collection`, document by document in id order, with its vector under
    /// the store's model where there is one. Rows are read in one pass and decoded in parallel:
    /// at start-up this is most of the time a restart takes.
    fn load_collection(&self, collection: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, None)
    }

    /// Replaces the stored terms of passages (after the analyzer changed), by passage id.
    fn rewrite_terms(&self, collection: &str, terms: &[(&str, &TermCounts)]) -> Result<()> {
        self.writing(|writer| {
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
        })
    }

    /// A setting kept in the database (`analyzer_revision`, …).
    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()?
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.writing(|writer| {
            writer.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    /// One document with its passages, if `collection` has it.
    fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(DocumentRecord, Vec<Passage>)>> {
        let reader = self.reader()?;
        let collection_id = collection_id(&reader, collection)?;
        let record = reader
            .query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?1 AND doc_id = ?2"),
                params![collection_id, id],
                |row| Ok(document_record(&SqlRow(row))),
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
        let reader = self.reader()?;
        let collection_id = collection_id(&reader, collection)?;
        let mut statement = reader.prepare_cached(&format!(
            "SELECT {DOCUMENT_SUMMARY_COLUMNS} FROM documents
             WHERE collection_id = ?1 AND (?2 IS NULL OR doc_id > ?2)
             ORDER BY doc_id LIMIT ?3"
        ))?;
        let records = statement
            .query_map(params![collection_id, after, limit as i64], |row| {
                Ok(document_record(&SqlRow(row)))
            })?
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
        let reader = self.reader()?;
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

/// Sets SQLite's page limit for the next write so that the database, its log and its shared
/// memory stay within `limit` bytes on disk. A new page costs twice, a frame in the log now and
/// a page of the database at the next checkpoint, so a write may grow the database by half the
/// room left. When the log takes more than that room, it is first checkpointed into the
/// database and truncated: it only holds pages the database is counted with already.
fn limit_growth(connection: &Connection, files: &DatabaseFiles, limit: u64) -> Result<()> {
    /// Bytes before each page in the log.
    const FRAME_HEADER: u64 = 24;
    let pragma = |name: &str| -> Result<u64> {
        Ok(connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))? as u64)
    };
    let page_size = pragma("page_size")?;
    let used = |sizes: files::FileSizes, pages: u64| {
        (pages * page_size).max(sizes.database) + sizes.log + sizes.shared_memory
    };
    let mut sizes = files.sizes();
    let mut pages = pragma("page_count")?;
    if sizes.log > limit.saturating_sub(used(sizes, pages)) {
        pragma("wal_checkpoint(TRUNCATE)")?;
        sizes = files.sizes();
        pages = pragma("page_count")?;
    }
    let room = limit.saturating_sub(used(sizes, pages));
    let growth = room / 2 / (page_size + FRAME_HEADER);
    pragma(&format!("max_page_count = {}", pages + growth))?;
    Ok(())
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

/// Drops every vector (and sentence vectors) no passage uses any more (under any model: a vector of another model is
/// kept while its text is still in use, for a switch back).
fn delete_unused_vectors(transaction: &Transaction<'_>) -> Result<()> {
    for table in ["vectors", "sentence_vectors"] {
        transaction.execute(
            &format!(
                "DELETE FROM {table} WHERE NOT EXISTS
                     (SELECT 1 FROM passages p WHERE p.text_key = {table}.text_key)"
            ),
            [],
        )?;
    }
    Ok(())
}

fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A SQLite row read by column name.
struct SqlRow<'a, 'row>(&'a rusqlite::Row<'row>);

impl Row for SqlRow<'_, '_> {
    fn text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.0.get(column)?)
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.0.get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(column)?)
    }

    fn json(&self, column: &str) -> Result<Option<Value>> {
        self.text(column)?
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt(column, e)))
            .transpose()
    }
}

impl From<rusqlite::Error> for StoreError {
    /// What to do about a SQLite error: a full disk, a read-only or failing file, a busy or
    /// locked database, or memory running out is an outage to retry later; a damaged file is
    /// corruption; a constraint is a conflict; anything else (a statement SQLite refuses, a
    /// column read as the wrong type) is a bug, reported where the statement runs.
    #[track_caller]
    fn from(error: rusqlite::Error) -> Self {
        use ErrorCode as C;
        match error.sqlite_error_code() {
            Some(C::DatabaseCorrupt | C::NotADatabase) => Self::Corrupt {
                path: DATABASE_FILE.into(),
                problem: error.to_string(),
            },
            Some(C::DiskFull) => Self::Full(error.to_string()),
            Some(
                C::ReadOnly
                | C::SystemIoFailure
                | C::CannotOpen
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::OutOfMemory
                | C::PermissionDenied
                | C::FileLockingProtocolFailed
                | C::OperationInterrupted
                | C::NoLargeFileSupport,
            ) => Self::Unavailable(error.to_string()),
            Some(C::ConstraintViolation) => Self::Conflict(error.to_string()),
            _ => Self::internal(error),
        }
    }
}
