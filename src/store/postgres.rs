//! The store in PostgreSQL (with pgvector), for replicas that share one database: the same
//! contract as the SQLite store, the same tables, transactions that are all or nothing.
//!
//! Clients come from a pool (`r2d2`) of blocking connections with bounded connect and statement
//! timeouts, so a database that is down or stalled makes calls fail fast with
//! [`StoreError::Unavailable`] instead of hanging, and the pool reconnects by itself. Migrations
//! run under a transaction-level advisory lock, so replicas starting at once apply each exactly
//! once. After `CREATE EXTENSION vector` (which needs a privileged role), wenda needs only the
//! rights to create and use tables in its schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pgvector::Vector;
use postgres::error::SqlState;
use postgres::{NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use serde_json::Value;

use super::jobs::{JobLine, JobProgress, JobRecord, JobStatus, JobStore, LineError};
use super::pg_vectors::{PgVectors, EXACT_SEARCH_UP_TO};
use super::{
    now_ms, BatchOutcome, Change, CollectionRecord, DocumentRecord, DocumentStore, LoadedPassage,
    Origin, Result, StoreError, StoredPassage, StoredVector, WriteBatch,
};
use crate::corpus::Passage;
use crate::embedding::{ModelFingerprint, TextKey};
use crate::index::{fold, TermCounts, VectorSearch};

pub(super) type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement may run.
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

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
    // see the README for the measurement) under an HNSW index, and the fields filters test,
    // so that a filter is part of the index scan. Filled for existing rows by
    // `fill_passage_columns`.
    "ALTER TABLE passages
         ADD COLUMN embedding halfvec({dimensions}),
         ADD COLUMN title_folded text,
         ADD COLUMN day text,
         ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
     CREATE INDEX passages_by_embedding ON passages USING hnsw (embedding halfvec_cosine_ops);
     CREATE INDEX passages_by_metadata ON passages USING gin (metadata jsonb_path_ops);",
];

/// The schema version that put vectors on passages.
const PASSAGE_VECTORS_VERSION: i32 = 4;

/// The advisory lock every write takes: writes commit one after another, so the change feed's
/// order is their commit order and a replica reading it never skips a change still in flight.
const WRITE_LOCK: i64 = 7418263502;
/// How long changes are kept for replicas to follow (a replica that stops longer reloads all).
const CHANGES_KEPT_MS: i64 = 24 * 3600 * 1000;

/// The store in a PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
    /// Connections to the standby vector searches read from, if there is one.
    read_pool: Option<Pool>,
    /// This process's name in the change feed, so it does not follow its own writes.
    replica: String,
    /// The URL without its password, for logs.
    location: String,
    model: ModelFingerprint,
    dimensions: usize,
    /// `hnsw.ef_search` when a search does not say.
    ef_search: usize,
}

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        Self::Unavailable(match error.as_db_error() {
            Some(db) => format!("PostgreSQL: {}", db.message()),
            None => format!("PostgreSQL: {error}"),
        })
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> Self {
        Self::Unavailable(format!("no PostgreSQL connection: {error}"))
    }
}

/// How vectors are searched in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorSearchSettings {
    /// `hnsw.ef_search` when a search does not say.
    pub ef_search: usize,
    /// A read-only standby (streaming replication) that vector searches go to instead of the
    /// primary: they then see writes once the standby has replayed them.
    pub read_url: Option<String>,
}

impl Default for VectorSearchSettings {
    fn default() -> Self {
        Self {
            ef_search: super::DEFAULT_EF_SEARCH,
            read_url: None,
        }
    }
}

/// A pool of connections to `url`, with wenda's timeouts; and the URL without its password.
fn connect(url: &str) -> Result<(Pool, String)> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("not a PostgreSQL URL: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let options = format!(
        "{} -c statement_timeout={STATEMENT_TIMEOUT_MS}",
        config.get_options().unwrap_or("")
    );
    config.options(options.trim());
    let location = describe(&config);
    let pool = r2d2::Pool::builder()
        .max_size(16)
        .min_idle(Some(1))
        .connection_timeout(CONNECT_TIMEOUT)
        .build(PostgresConnectionManager::new(config, NoTls))?;
    Ok((pool, location))
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or key=value string), creates the
    /// pgvector extension if it can, and brings the schema up to date.
    pub fn open(
        url: &str,
        model: ModelFingerprint,
        dimensions: usize,
        search: &VectorSearchSettings,
    ) -> Result<Self> {
        let (pool, location) = connect(url)?;
        let read_pool = match &search.read_url {
            Some(read_url) => Some(connect(read_url)?.0),
            None => None,
        };
        let store = Self {
            pool,
            read_pool,
            replica: replica_name(),
            location,
            model,
            dimensions,
            ef_search: search.ef_search,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Vector search over `collection`, exact for filters admitting up to `exact_up_to`
    /// passages.
    pub(super) fn vectors(&self, collection: &str, exact_up_to: usize) -> PgVectors {
        PgVectors {
            pool: self.read_pool.as_ref().unwrap_or(&self.pool).clone(),
            collection: collection.to_owned(),
            collection_id: std::sync::OnceLock::new(),
            dimensions: self.dimensions,
            default_ef_search: self.ef_search,
            exact_search_up_to: exact_up_to,
        }
    }

    fn client(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>> {
        Ok(self.pool.get()?)
    }

    fn migrate(&self) -> Result<()> {
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
                serde_json::from_str(row.get(1)).map_err(|e| super::corrupt("passage", e))?;
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

    fn decode_vector(&self, vector: Vector) -> Result<Vec<f32>> {
        let values = vector.to_vec();
        if values.len() != self.dimensions {
            return Err(StoreError::Corrupt {
                path: self.location.clone(),
                problem: format!(
                    "a vector has {} dimensions, the model {}",
                    values.len(),
                    self.dimensions
                ),
            });
        }
        Ok(values)
    }

    /// The passages of `collection` (of one document, if given), in document and passage
    /// order, with their vectors under the store's model where there is one.
    fn load_passages(
        &self,
        collection: &str,
        document: Option<&str>,
    ) -> Result<Vec<LoadedPassage>> {
        let mut client = self.client()?;
        let id = collection_id(&mut *client, collection)?;
        let rows = client.query(
            "SELECT p.body, p.text_key, p.terms, v.text_key IS NOT NULL
             FROM passages p
             LEFT JOIN vectors v ON v.model = $2 AND v.text_key = p.text_key
             WHERE p.collection_id = $1 AND ($3::text IS NULL OR p.doc_id = $3)
             ORDER BY p.doc_id, p.seq",
            &[&id, &self.model.as_bytes().as_slice(), &document],
        )?;
        rows.iter()
            .map(|row| {
                let body: String = row.get(0);
                let key: Vec<u8> = row.get(1);
                let terms: Vec<u8> = row.get(2);
                let has_vector: bool = row.get(3);
                Ok(LoadedPassage {
                    stored: StoredPassage {
                        passage: serde_json::from_str(&body)
                            .map_err(|e| super::corrupt("passage", e))?,
                        text_key: text_key(&key)?,
                        terms: TermCounts::decode(&terms)
                            .map_err(|e| super::corrupt("terms", e))?,
                    },
                    vector: if has_vector {
                        StoredVector::InStore
                    } else {
                        StoredVector::Missing
                    },
                })
            })
            .collect()
    }

    fn collection_records(&self, name: Option<&str>) -> Result<Vec<CollectionRecord>> {
        let rows = self.client()?.query(
            "SELECT c.name, c.created_at, COUNT(d.doc_id), COALESCE(SUM(d.passages), 0)::bigint,
                    COALESCE(SUM(OCTET_LENGTH(d.text)), 0)::bigint
             FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
             WHERE $1::text IS NULL OR c.name = $1
             GROUP BY c.id ORDER BY c.name",
            &[&name],
        )?;
        Ok(rows
            .iter()
            .map(|row| CollectionRecord {
                name: row.get(0),
                created_at: row.get(1),
                documents: row.get::<_, i64>(2) as usize,
                passages: row.get::<_, i64>(3) as usize,
                text_bytes: row.get::<_, i64>(4) as u64,
            })
            .collect())
    }
}

/// A name for this process in the change feed: host, process id and start time.
/// What the filters of a search test of a passage, as stored beside it: its title folded as
/// title filters compare it, its day, its metadata for filters.
fn filter_columns(passage: &Passage) -> (Option<String>, Option<String>, Value) {
    (
        passage.article.title.as_deref().map(fold),
        passage
            .article
            .date
            .as_ref()
            .and_then(|date| date.iso.clone()),
        metadata_for_filters(Value::Object(passage.metadata.clone())),
    )
}

/// `metadata` with every number as the `f64` filters compare (`1`, `1.0` and
/// `1.00000000000000001` all become `1.0`), so that PostgreSQL's exact numeric equality agrees
/// with wenda's.
fn metadata_for_filters(metadata: Value) -> Value {
    match metadata {
        Value::Number(number) => number.as_f64().map_or(Value::Number(number), Value::from),
        Value::Array(items) => Value::Array(items.into_iter().map(metadata_for_filters).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, metadata_for_filters(value)))
                .collect(),
        ),
        other => other,
    }
}

fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}-{}-{}", host.trim(), std::process::id(), now_ms())
}

/// Takes the write lock and records changes in `transaction`.
fn record_changes(
    transaction: &mut Transaction<'_>,
    replica: &str,
    collection: &str,
    documents: &[Option<&str>],
) -> Result<()> {
    if documents.is_empty() {
        return Ok(());
    }
    let insert = transaction
        .prepare("INSERT INTO changes (collection, doc_id, replica, at) VALUES ($1, $2, $3, $4)")?;
    let now = now_ms();
    for document in documents {
        transaction.execute(&insert, &[&collection, document, &replica, &now])?;
    }
    transaction.execute(
        "DELETE FROM changes WHERE at < $1",
        &[&(now - CHANGES_KEPT_MS)],
    )?;
    Ok(())
}

/// The URL a config points at, without the password.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

fn collection_id(transaction: &mut impl postgres::GenericClient, name: &str) -> Result<i64> {
    transaction
        .query_opt("SELECT id FROM collections WHERE name = $1", &[&name])?
        .map(|row| row.get(0))
        .ok_or_else(|| StoreError::UnknownCollection(name.to_owned()))
}

fn text_key(bytes: &[u8]) -> Result<TextKey> {
    super::text_key(bytes)
}

/// Deletes a document and its passages: whether there was one, and the text keys its passages
/// used.
fn delete_document(
    transaction: &mut Transaction<'_>,
    collection_id: i64,
    id: &str,
) -> Result<(bool, Vec<Vec<u8>>)> {
    let keys = transaction
        .query(
            "DELETE FROM passages WHERE collection_id = $1 AND doc_id = $2 RETURNING text_key",
            &[&collection_id, &id],
        )?
        .iter()
        .map(|row| row.get::<_, Vec<u8>>(0))
        .collect();
    let deleted = transaction.execute(
        "DELETE FROM documents WHERE collection_id = $1 AND doc_id = $2",
        &[&collection_id, &id],
    )?;
    Ok((deleted == 1, keys))
}

fn put_document(
    transaction: &mut Transaction<'_>,
    collection_id: i64,
    model: &[u8],
    record: &DocumentRecord,
    passages: &[StoredPassage],
) -> Result<(bool, Vec<Vec<u8>>)> {
    let created_at: i64 = transaction
        .query_opt(
            "SELECT created_at FROM documents WHERE collection_id = $1 AND doc_id = $2",
            &[&collection_id, &record.id],
        )?
        .map_or(record.created_at, |row| row.get(0));
    let (replaced, released) = delete_document(transaction, collection_id, &record.id)?;
    let ids: Vec<&str> = passages.iter().map(|p| p.passage.id.as_str()).collect();
    if let Some(row) = transaction.query_opt(
        "SELECT passage_id, doc_id FROM passages
         WHERE collection_id = $1 AND passage_id = ANY($2) LIMIT 1",
        &[&collection_id, &ids],
    )? {
        return Err(StoreError::PassageTaken {
            passage: row.get(0),
            document: row.get(1),
        });
    }
    transaction.execute(
        "INSERT INTO documents (collection_id, doc_id, layout, title, date, source, url,
             metadata, text, origin, content_hash, created_at, updated_at, passages)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &collection_id,
            &record.id,
            &record.layout.as_str(),
            &record.title,
            &record.date,
            &record.source,
            &record.url,
            &Value::Object(record.metadata.clone()),
            &record.text,
            &record.origin.as_str(),
            &record.content_hash.as_slice(),
            &created_at,
            &record.updated_at,
            &(passages.len() as i32),
        ],
    )?;
    let insert = transaction.prepare(
        "INSERT INTO passages (collection_id, doc_id, seq, passage_id, body, text_key, terms,
             title_folded, day, metadata, embedding)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
             (SELECT embedding::halfvec FROM vectors WHERE model = $11 AND text_key = $6))",
    )?;
    for (seq, stored) in passages.iter().enumerate() {
        let body = serde_json::to_string(&stored.passage).expect("a passage serialises");
        let (title, day, metadata) = filter_columns(&stored.passage);
        let inserted = transaction.execute(
            &insert,
            &[
                &collection_id,
                &record.id,
                &(seq as i32),
                &stored.passage.id.as_str(),
                &body,
                &stored.text_key.as_bytes().as_slice(),
                &stored.terms.encode(),
                &title,
                &day,
                &metadata,
                &model,
            ],
        );
        if let Err(error) = inserted {
            // Another writer took the id between the check above and this insert.
            if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(StoreError::PassageTaken {
                    passage: stored.passage.id.to_string(),
                    document: "another document".into(),
                });
            }
            return Err(error.into());
        }
    }
    Ok((replaced, released))
}

impl DocumentStore for PostgresStore {
    fn model(&self) -> ModelFingerprint {
        self.model
    }

    fn describe(&self) -> String {
        self.location.clone()
    }

    fn create_collection(&self, name: &str) -> Result<bool> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let created = transaction.execute(
            "INSERT INTO collections (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &now_ms()],
        )? == 1;
        if created {
            record_changes(&mut transaction, &self.replica, name, &[None])?;
        }
        transaction.commit()?;
        Ok(created)
    }

    fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let deleted = transaction.execute("DELETE FROM collections WHERE name = $1", &[&name])?;
        if deleted == 1 {
            record_changes(&mut transaction, &self.replica, name, &[None])?;
        }
        transaction.execute(
            "DELETE FROM vectors WHERE NOT EXISTS
                 (SELECT 1 FROM passages p WHERE p.text_key = vectors.text_key)",
            &[],
        )?;
        transaction.commit()?;
        Ok(deleted == 1)
    }

    fn collections(&self) -> Result<Vec<CollectionRecord>> {
        self.collection_records(None)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionRecord>> {
        Ok(self.collection_records(Some(name))?.pop())
    }

    fn write(&self, collection: &str, batch: &WriteBatch<'_>) -> Result<BatchOutcome> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        // Writers, from any replica, commit one after another: two replicas writing the same
        // document end with one version, never a failed insert, and the change feed is in
        // commit order.
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        let collection_id = collection_id(&mut transaction, collection)?;
        let model = self.model.as_bytes().as_slice();
        // Vectors first: the passages put below take theirs from the table as they are
        // inserted, so each row is written (and enters the HNSW index) once.
        if !batch.vectors.is_empty() {
            let insert = transaction.prepare(
                "INSERT INTO vectors (model, text_key, embedding) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )?;
            for (key, vector) in &batch.vectors {
                assert_eq!(vector.len(), self.dimensions, "vector dimensions");
                transaction.execute(
                    &insert,
                    &[
                        &model,
                        &key.as_bytes().as_slice(),
                        &Vector::from(vector.to_vec()),
                    ],
                )?;
            }
            if batch.put.is_empty() {
                // Vectors alone (the model changed, or an export's vectors arrive first):
                // the passages with these texts take them.
                let keys: Vec<&[u8]> = batch
                    .vectors
                    .iter()
                    .map(|(key, _)| key.as_bytes().as_slice())
                    .collect();
                transaction.execute(
                    "UPDATE passages p SET embedding = v.embedding::halfvec FROM vectors v
                     WHERE p.text_key = ANY($1) AND v.model = $2 AND v.text_key = p.text_key",
                    &[&keys, &model],
                )?;
            }
        }
        let mut outcome = BatchOutcome::default();
        let mut released: Vec<Vec<u8>> = Vec::new();
        for document in &batch.delete {
            let (existed, keys) = delete_document(&mut transaction, collection_id, document)?;
            outcome.deleted.push(existed);
            released.extend(keys);
        }
        for write in &batch.put {
            let (replaced, keys) = put_document(
                &mut transaction,
                collection_id,
                model,
                write.record,
                write.passages,
            )?;
            outcome.replaced.push(replaced);
            released.extend(keys);
        }
        if !released.is_empty() {
            transaction.execute(
                "DELETE FROM vectors WHERE text_key = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM passages p WHERE p.text_key = vectors.text_key)",
                &[&released],
            )?;
        }
        if let Some(progress) = batch.job {
            record_progress(&mut transaction, progress)?;
        }
        let changed: Vec<Option<&str>> = batch
            .delete
            .iter()
            .copied()
            .chain(batch.put.iter().map(|write| write.record.id.as_str()))
            .map(Some)
            .collect();
        record_changes(&mut transaction, &self.replica, collection, &changed)?;
        transaction.commit()?;
        Ok(outcome)
    }

    fn vectors(&self, keys: &[TextKey]) -> Result<HashMap<TextKey, Vec<f32>>> {
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
        let rows = self.client()?.query(
            "SELECT text_key, embedding FROM vectors WHERE model = $1 AND text_key = ANY($2)",
            &[&self.model.as_bytes().as_slice(), &wanted],
        )?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                Ok((text_key(&key)?, self.decode_vector(row.get(1))?))
            })
            .collect()
    }

    fn load_collection(&self, collection: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, None)
    }

    fn load_document(&self, collection: &str, id: &str) -> Result<Vec<LoadedPassage>> {
        self.load_passages(collection, Some(id))
    }

    fn changes_since(&self, after: u64) -> Result<(Vec<Change>, u64)> {
        let rows = self.client()?.query(
            "SELECT seq, collection, doc_id, replica FROM changes WHERE seq > $1
             ORDER BY seq LIMIT 10000",
            &[&(after as i64)],
        )?;
        let next = rows.last().map_or(after, |row| row.get::<_, i64>(0) as u64);
        let changes = rows
            .iter()
            .filter(|row| row.get::<_, &str>(3) != self.replica)
            .map(|row| Change {
                collection: row.get(1),
                document: row.get(2),
            })
            .collect();
        Ok((changes, next))
    }

    fn change_position(&self) -> Result<u64> {
        let position: Option<i64> = self
            .client()?
            .query_one("SELECT MAX(seq) FROM changes", &[])?
            .get(0);
        Ok(position.unwrap_or(0) as u64)
    }

    fn shared(&self) -> bool {
        true
    }

    fn ping(&self) -> Result<()> {
        self.client()?.batch_execute("SELECT 1")?;
        if let Some(read_pool) = &self.read_pool {
            read_pool.get()?.batch_execute("SELECT 1")?;
        }
        Ok(())
    }

    fn vector_search(&self, collection: &str) -> Option<Arc<dyn VectorSearch>> {
        Some(Arc::new(self.vectors(collection, EXACT_SEARCH_UP_TO)))
    }

    fn rewrite_terms(&self, collection: &str, terms: &[(&str, &TermCounts)]) -> Result<()> {
        let mut client = self.client()?;
        let mut transaction = client.transaction()?;
        let id = collection_id(&mut transaction, collection)?;
        let update = transaction.prepare(
            "UPDATE passages SET terms = $3 WHERE collection_id = $1 AND passage_id = $2",
        )?;
        for (passage, counts) in terms {
            transaction.execute(&update, &[&id, passage, &counts.encode()])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .client()?
            .query_opt("SELECT value FROM wenda_settings WHERE key = $1", &[&key])?
            .map(|row| row.get(0)))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.client()?.execute(
            "INSERT INTO wenda_settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn document(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(DocumentRecord, Vec<Passage>)>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        let Some(row) = client.query_opt(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = $1 AND doc_id = $2"
            ),
            &[&collection_id, &id],
        )?
        else {
            return Ok(None);
        };
        let record = document_record(&row)?;
        let passages = client
            .query(
                "SELECT body FROM passages WHERE collection_id = $1 AND doc_id = $2 ORDER BY seq",
                &[&collection_id, &id],
            )?
            .iter()
            .map(|row| {
                serde_json::from_str(row.get::<_, &str>(0))
                    .map_err(|e| super::corrupt("passage", e))
            })
            .collect::<Result<Vec<Passage>>>()?;
        Ok(Some((record, passages)))
    }

    fn documents(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DocumentRecord>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        client
            .query(
                &format!(
                    "SELECT {DOCUMENT_SUMMARY_COLUMNS} FROM documents
                     WHERE collection_id = $1
                         AND ($2::text IS NULL OR doc_id COLLATE \"C\" > $2 COLLATE \"C\")
                     ORDER BY doc_id COLLATE \"C\" LIMIT $3"
                ),
                &[&collection_id, &after, &(limit as i64)],
            )?
            .iter()
            .map(document_record)
            .collect()
    }

    fn content_hashes(
        &self,
        collection: &str,
        origin: Origin,
    ) -> Result<HashMap<String, [u8; 32]>> {
        let mut client = self.client()?;
        let collection_id = collection_id(&mut *client, collection)?;
        client
            .query(
                "SELECT doc_id, content_hash FROM documents WHERE collection_id = $1 AND origin = $2",
                &[&collection_id, &origin.as_str()],
            )?
            .iter()
            .map(|row| {
                let hash: Vec<u8> = row.get(1);
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| super::corrupt("content hash", "not 32 bytes"))?;
                Ok((row.get(0), hash))
            })
            .collect()
    }
}

const DOCUMENT_SUMMARY_COLUMNS: &str = "doc_id, layout, title, date, source, url, metadata, \
     '' AS text, origin, content_hash, created_at, updated_at, passages";
const DOCUMENT_COLUMNS: &str = "doc_id, layout, title, date, source, url, metadata, text, \
     origin, content_hash, created_at, updated_at, passages";

fn document_record(row: &postgres::Row) -> Result<DocumentRecord> {
    let layout: &str = row.get(1);
    let metadata: Value = row.get(6);
    let hash: Vec<u8> = row.get(9);
    Ok(DocumentRecord {
        id: row.get(0),
        layout: layout
            .parse()
            .map_err(|e| super::corrupt("document layout", e))?,
        title: row.get(2),
        date: row.get(3),
        source: row.get(4),
        url: row.get(5),
        metadata: match metadata {
            Value::Object(map) => map,
            other => return Err(super::corrupt("metadata", other)),
        },
        text: row.get(7),
        origin: Origin::parse(row.get(8)),
        content_hash: hash
            .try_into()
            .map_err(|_| super::corrupt("content hash", "not 32 bytes"))?,
        created_at: row.get(10),
        updated_at: row.get(11),
        passages: row.get::<_, i32>(12) as usize,
    })
}

const JOB_COLUMNS: &str = "id, collection, status, created_at, started_at, finished_at, \
     documents, done, failed, passages, embedded, tokens, reused, working_ms, error";

fn job_record(row: &postgres::Row) -> Result<JobRecord> {
    Ok(JobRecord {
        id: row.get(0),
        collection: row.get(1),
        status: JobStatus::parse(row.get(2))?,
        created_at: row.get(3),
        started_at: row.get(4),
        finished_at: row.get(5),
        documents: row.get::<_, i64>(6) as usize,
        done: row.get::<_, i64>(7) as usize,
        failed: row.get::<_, i64>(8) as usize,
        passages: row.get::<_, i64>(9) as usize,
        embedded: row.get::<_, i64>(10) as usize,
        tokens: row.get::<_, i64>(11) as u64,
        reused: row.get::<_, i64>(12) as usize,
        working_ms: row.get::<_, i64>(13) as u64,
        error: row.get(14),
    })
}

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
            .map(|row| job_record(&row))
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
            .map(job_record)
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
fn record_progress(transaction: &mut Transaction<'_>, progress: &JobProgress) -> Result<()> {
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
