//! The database schema and its migrations, applied in order and recorded in SQLite's
//! `user_version`. Each runs in an immediate transaction, so two processes opening a new data
//! directory at once cannot both apply one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::store::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: collections, documents, passages, vectors, settings.
    "CREATE TABLE collections (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE documents (
         collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
         doc_id TEXT NOT NULL,
         layout TEXT NOT NULL,
         title TEXT,
         date TEXT,
         source TEXT,
         url TEXT,
         metadata TEXT NOT NULL,
         text TEXT NOT NULL,
         origin TEXT NOT NULL,
         content_hash BLOB NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         passages INTEGER NOT NULL,
         PRIMARY KEY (collection_id, doc_id)
     ) WITHOUT ROWID;
     CREATE TABLE passages (
         collection_id INTEGER NOT NULL,
         doc_id TEXT NOT NULL,
         seq INTEGER NOT NULL,
         passage_id TEXT NOT NULL,
         body TEXT NOT NULL,
         text_key BLOB NOT NULL,
         terms BLOB NOT NULL,
         PRIMARY KEY (collection_id, doc_id, seq),
         UNIQUE (collection_id, passage_id),
         FOREIGN KEY (collection_id, doc_id)
             REFERENCES documents (collection_id, doc_id) ON DELETE CASCADE
     );
     CREATE INDEX passages_by_text ON passages (text_key);
     -- A rowid table: its 1.5 KB rows would overflow a WITHOUT ROWID table's pages and make
     -- the start-up join with passages several times slower (measured: 1.9 s against 0.5 s
     -- for 100,000 passages).
     CREATE TABLE vectors (
         model BLOB NOT NULL,
         text_key BLOB NOT NULL,
         vector BLOB NOT NULL,
         UNIQUE (model, text_key)
     );
     CREATE INDEX vectors_by_text ON vectors (text_key);
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    // 2: import jobs and their lines, so an import resumes after a restart.
    "CREATE TABLE jobs (
         id TEXT PRIMARY KEY,
         collection TEXT NOT NULL,
         status TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         started_at INTEGER,
         finished_at INTEGER,
         documents INTEGER NOT NULL,
         done INTEGER NOT NULL DEFAULT 0,
         failed INTEGER NOT NULL DEFAULT 0,
         passages INTEGER NOT NULL DEFAULT 0,
         embedded INTEGER NOT NULL DEFAULT 0,
         reused INTEGER NOT NULL DEFAULT 0,
         tokens INTEGER NOT NULL DEFAULT 0,
         working_ms INTEGER NOT NULL DEFAULT 0,
         error TEXT
     ) WITHOUT ROWID;
     CREATE TABLE job_lines (
         job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
         seq INTEGER NOT NULL,
         file TEXT,
         line INTEGER NOT NULL,
         body TEXT NOT NULL,
         state TEXT NOT NULL,
         error_code TEXT,
         error TEXT,
         PRIMARY KEY (job_id, seq)
     ) WITHOUT ROWID;
     CREATE INDEX job_lines_pending ON job_lines (job_id, state, seq);",
    // 3: documents become a rowid table with their text last. In the WITHOUT ROWID table a
    // document's text was part of its key's record, so every lookup by key (the foreign-key
    // check of each passage written) read the whole text: writing a document cost its size
    // times its passages (a 4 MiB document of 17,700 passages took 36 s, 8 MiB 166 s).
    // Lookups now go through the small unique index, and reading a summary stops before the
    // text. Foreign keys are off while this runs (see `migrate`), so dropping the old table
    // does not cascade to the passages.
    "CREATE TABLE documents_by_rowid (
         collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
         doc_id TEXT NOT NULL,
         layout TEXT NOT NULL,
         title TEXT,
         date TEXT,
         source TEXT,
         url TEXT,
         origin TEXT NOT NULL,
         content_hash BLOB NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         passages INTEGER NOT NULL,
         metadata TEXT NOT NULL,
         text TEXT NOT NULL,
         UNIQUE (collection_id, doc_id)
     );
     INSERT INTO documents_by_rowid (collection_id, doc_id, layout, title, date, source, url,
         origin, content_hash, created_at, updated_at, passages, metadata, text)
     SELECT collection_id, doc_id, layout, title, date, source, url,
         origin, content_hash, created_at, updated_at, passages, metadata, text
     FROM documents ORDER BY collection_id, doc_id;
     DROP TABLE documents;
     ALTER TABLE documents_by_rowid RENAME TO documents;",
    // 4: the vectors of each passage text's sentences, for extractive answers. A table of its
    // own: their rows (several KB) beside the passage vectors would spread those over
    // overflow pages and slow the start-up join.
    "CREATE TABLE sentence_vectors (
         model BLOB NOT NULL,
         text_key BLOB NOT NULL,
         sentences BLOB NOT NULL,
         UNIQUE (model, text_key)
     );
     CREATE INDEX sentence_vectors_by_text ON sentence_vectors (text_key);",
];

/// Brings the database at `path` up to the current schema.
///
/// Foreign keys are off meanwhile, as SQLite's procedure for changing a table asks (a table
/// dropped with them on would take its dependent rows along), and checked before committing.
pub(super) fn migrate(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    connection.pragma_update(None, "foreign_keys", false)?;
    let migrated = apply(connection, path);
    connection.pragma_update(None, "foreign_keys", true)?;
    migrated
}

fn apply(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let transaction =
        rusqlite::Transaction::new_unchecked(connection, TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > known {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found: version,
            known,
        });
    }
    if version == known {
        return Ok(());
    }
    for migration in &MIGRATIONS[version as usize..] {
        transaction.execute_batch(migration)?;
    }
    let broken: Option<String> = transaction
        .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            problem: format!("rows of table {table} refer to rows that do not exist"),
        });
    }
    transaction.pragma_update(None, "user_version", known)?;
    transaction.commit()?;
    Ok(())
}
