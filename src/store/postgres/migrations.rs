//! The schema in PostgreSQL and its migrations, applied in order under a transaction-level
//! advisory lock, so replicas starting at once apply each exactly once.

use postgres::Transaction;

use super::documents::filter_columns;
use super::PostgresStore;
use crate::corpus::Passage;
use crate::store::rows::corrupt;
use crate::store::{Result, StoreError};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite store, in PostgreSQL's types.
    "CREATE TABLE wenda_settings (key text PRIMARY KEY, value text NOT NULL);
     CREATE TABLE collections (
         id bigserial PRIMARY KEY,
         name text NOT NULL UNIQUE,
         created_at bigint NOT NULL
     );
     CREATE TABLE documents (
         collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
         doc_id text NOT NULL,
         layout text NOT NULL,
         title text,
         date text,
         source text,
         url text,
         metadata jsonb NOT NULL,
         text text NOT NULL,
         origin text NOT NULL,
         content_hash bytea NOT NULL,
         created_at bigint NOT NULL,
         updated_at bigint NOT NULL,
         passages integer NOT NULL,
         PRIMARY KEY (collection_id, doc_id)
     );
     CREATE TABLE passages (
         id bigserial PRIMARY KEY,
         collection_id bigint NOT NULL,
         doc_id text NOT NULL,
         seq integer NOT NULL,
         passage_id text NOT NULL,
         body text NOT NULL,
         text_key bytea NOT NULL,
         terms bytea NOT NULL,
         UNIQUE (collection_id, passage_id),
         UNIQUE (collection_id, doc_id, seq),
         FOREIGN KEY (collection_id, doc_id)
             REFERENCES documents (collection_id, doc_id) ON DELETE CASCADE
     );
     CREATE INDEX passages_by_text ON passages (text_key);
     CREATE TABLE vectors (
         model bytea NOT NULL,
         text_key bytea NOT NULL,
         embedding vector NOT NULL,
         PRIMARY KEY (model, text_key)
     );
     CREATE INDEX vectors_by_text ON vectors (text_key);
     CREATE TABLE jobs (
         id text PRIMARY KEY,
         collection text NOT NULL,
         status text NOT NULL,
         created_at bigint NOT NULL,
         started_at bigint,
         finished_at bigint,
         documents bigint NOT NULL,
         done bigint NOT NULL DEFAULT 0,
         failed bigint NOT NULL DEFAULT 0,
         passages bigint NOT NULL DEFAULT 0,
         embedded bigint NOT NULL DEFAULT 0,
         reused bigint NOT NULL DEFAULT 0,
         tokens bigint NOT NULL DEFAULT 0,
         working_ms bigint NOT NULL DEFAULT 0,
         error text
     );
     CREATE TABLE job_lines (
         job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
         seq bigint NOT NULL,
         file text,
         line bigint NOT NULL,
         body text NOT NULL,
         state text NOT NULL,
         error_code text,
         error text,
         PRIMARY KEY (job_id, seq)
     );
     CREATE INDEX job_lines_pending ON job_lines (job_id, state, seq);",
    // 2: the change feed replicas follow to keep their indexes in step.
    "CREATE TABLE changes (
         seq bigserial PRIMARY KEY,
         collection text NOT NULL,
         doc_id text,
         replica text NOT NULL,
         at bigint NOT NULL
     );
     CREATE INDEX changes_by_time ON changes (at);",
    // 3: which replica works on which lines of an import, until when.
    "ALTER TABLE job_lines ADD COLUMN claimed_by text, ADD COLUMN lease_until bigint;",
    // 4: vectors searched in the database. Each passage carries its vector (half precision:
    // see docs/scaling.md for the measurement) under an HNSW index, and the fields filters test,
    // so that a filter is part of the index scan. Filled for existing rows by
    // `fill_passage_columns`.
    "ALTER TABLE passages
         ADD COLUMN embedding halfvec({dimensions}),
         ADD COLUMN title_folded text,
         ADD COLUMN day text,
         ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
     CREATE INDEX passages_by_embedding ON passages USING hnsw (embedding halfvec_cosine_ops);
     CREATE INDEX passages_by_metadata ON passages USING gin (metadata jsonb_path_ops);",
    // 5: the vectors of each passage text's sentences, for extractive answers.
    "CREATE TABLE sentence_vectors (
         model bytea NOT NULL,
         text_key bytea NOT NULL,
         sentences bytea NOT NULL,
         PRIMARY KEY (model, text_key)
     );
     CREATE INDEX sentence_vectors_by_text ON sentence_vectors (text_key);",
];

/// The schema version that put vectors on passages.
const PASSAGE_VECTORS_VERSION: i32 = 4;

impl PostgresStore {
    /// Brings the schema up to date (creating the pgvector extension if this role can).
    pub(super) fn migrate(&self) -> Result<()> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        // Replicas starting together: the first migrates, the others wait and find it done.
        transaction.execute("SELECT pg_advisory_xact_lock(7418263501)", &[])?;
        let present: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')",
                &[],
            )?
            .get(0);
        if !present {
            transaction
                .batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .map_err(|error| {
                    let why = error
                        .as_db_error()
                        .map_or(error.to_string(), |db| db.message().to_owned());
                    StoreError::Unavailable(format!(
                        "the pgvector extension is not installed and this role cannot install \
                         it ({why}); ask an administrator to run CREATE EXTENSION vector"
                    ))
                })?;
        }
        transaction
            .batch_execute("CREATE TABLE IF NOT EXISTS wenda_schema (version integer NOT NULL)")?;
        let version: i32 = transaction
            .query_opt("SELECT version FROM wenda_schema", &[])?
            .map_or(0, |row| row.get(0));
        let known = MIGRATIONS.len() as i32;
        if version > known {
            return Err(StoreError::NewerSchema {
                path: self.location.clone(),
                found: i64::from(version),
                known: i64::from(known),
            });
        }
        for migration in &MIGRATIONS[version as usize..] {
            transaction
                .batch_execute(&migration.replace("{dimensions}", &self.dimensions.to_string()))?;
        }
        if version < PASSAGE_VECTORS_VERSION {
            self.fill_passage_columns(&mut transaction)?;
        }
        // The vector column was made for one model's dimensions.
        let made_for: i32 = transaction
            .query_one(
                "SELECT atttypmod FROM pg_attribute
                 WHERE attrelid = 'passages'::regclass AND attname = 'embedding'",
                &[],
            )?
            .get(0);
        if made_for != self.dimensions as i32 {
            return Err(StoreError::Incompatible(format!(
                "{} holds {made_for}-dimension vectors and this model makes {}; \
                 give this model its own database",
                self.location, self.dimensions
            )));
        }
        transaction.execute("DELETE FROM wenda_schema", &[])?;
        transaction.execute("INSERT INTO wenda_schema (version) VALUES ($1)", &[&known])?;
        transaction.commit()?;
        Ok(())
    }

    /// Fills the vector and filter columns of passages stored before schema version 4.
    fn fill_passage_columns(&self, transaction: &mut Transaction<'_>) -> Result<()> {
        let rows = transaction.query("SELECT id, body FROM passages", &[])?;
        let update = transaction.prepare(
            "UPDATE passages SET title_folded = $2, day = $3, metadata = $4 WHERE id = $1",
        )?;
        for row in rows {
            let id: i64 = row.get(0);
            let passage: Passage =
                serde_json::from_str(row.get(1)).map_err(|e| corrupt("passage", e))?;
            let (title, day, metadata) = filter_columns(&passage);
            transaction.execute(&update, &[&id, &title, &day, &metadata])?;
        }
        transaction.execute(
            "UPDATE passages p SET embedding = v.embedding::halfvec
             FROM vectors v WHERE v.model = $1 AND v.text_key = p.text_key",
            &[&self.model.as_bytes().as_slice()],
        )?;
        Ok(())
    }
}
