//! The store in PostgreSQL (with pgvector), for replicas that share one database: the same
//! contract as the SQLite store, the same tables, transactions that are all or nothing.
//!
//! Clients come from a pool (`r2d2`) of blocking connections with bounded connect and statement
//! timeouts, so a database that is down or stalled makes calls fail fast with
//! [`StoreError::Unavailable`] instead of hanging, and the pool reconnects by itself. Migrations
//! run under a transaction-level advisory lock, so replicas starting at once apply each exactly
//! once. After `CREATE EXTENSION vector` (which needs a privileged role), wenda needs only the
//! rights to create and use tables in its schema.

mod documents;
mod jobs;
mod migrations;
mod vectors;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use serde_json::Value;

#[cfg(test)]
pub(super) use vectors::filter_sql;
pub use vectors::{DEFAULT_EF_SEARCH, MAX_EF_SEARCH};

use super::rows::Row;
use super::{now_ms, Result, StoreError};
use crate::embedding::ModelFingerprint;
use vectors::PgVectors;

/// A pool of blocking connections, shared by the store and its vector searches.
type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement may run.
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

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
    /// What to do about a PostgreSQL error, by its SQLSTATE class: a connection lost, a server
    /// short of disk or memory, shutting down or read-only, a statement timeout, or a
    /// serialization failure or deadlock is an outage to retry later; a constraint is a
    /// conflict; damaged data is corruption; anything else the server refuses (a syntax error, a
    /// missing table, a type it does not accept) is a bug, reported where the statement runs.
    #[track_caller]
    fn from(error: postgres::Error) -> Self {
        let Some(state) = error.code() else {
            return if is_client_bug(&error) {
                Self::internal(error)
            } else {
                Self::Unavailable(format!("PostgreSQL: {error}"))
            };
        };
        let message = error
            .as_db_error()
            .map_or_else(|| error.to_string(), |db| db.message().to_owned());
        let code = state.code();
        match &code[..2] {
            "08" | "53" | "57" | "58" => Self::Unavailable(format!("PostgreSQL: {message}")),
            "23" => Self::Conflict(message),
            _ if [
                &SqlState::T_R_SERIALIZATION_FAILURE,
                &SqlState::T_R_DEADLOCK_DETECTED,
                &SqlState::LOCK_NOT_AVAILABLE,
                &SqlState::READ_ONLY_SQL_TRANSACTION,
            ]
            .contains(&state) =>
            {
                Self::Unavailable(format!("PostgreSQL: {message}"))
            }
            _ if state == &SqlState::DATA_CORRUPTED || state == &SqlState::INDEX_CORRUPTED => {
                Self::Corrupt {
                    path: "the PostgreSQL database".into(),
                    problem: message,
                }
            }
            _ => Self::internal(format!("PostgreSQL {code}: {message}")),
        }
    }
}

/// Whether an error that did not come from the server is the client library refusing what
/// wenda asked of it (a value of the wrong type, a column not in the query, the wrong number
/// of parameters or rows) rather than the connection failing. The driver exposes its error
/// kinds only through their messages.
fn is_client_bug(error: &postgres::Error) -> bool {
    let text = error.to_string();
    [
        "error serializing",
        "error deserializing",
        "invalid column",
        "expected ",
        "query returned an unexpected number of rows",
    ]
    .iter()
    .any(|prefix| text.starts_with(prefix))
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> Self {
        Self::Unavailable(format!("no PostgreSQL connection: {error}"))
    }
}

/// A PostgreSQL row read by column name.
struct PgRow<'a>(&'a postgres::Row);

impl Row for PgRow<'_> {
    fn text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.0.try_get(column)?)
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        // Counters are `bigint`, a few older columns `integer`.
        match self.0.try_get::<_, Option<i64>>(column) {
            Ok(value) => Ok(value),
            Err(_) => Ok(self.0.try_get::<_, Option<i32>>(column)?.map(i64::from)),
        }
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.try_get(column)?)
    }

    fn json(&self, column: &str) -> Result<Option<Value>> {
        Ok(self.0.try_get(column)?)
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
            ef_search: DEFAULT_EF_SEARCH,
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
}

/// A name for this process in the change feed: host, process id and start time.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}-{}-{}", host.trim(), std::process::id(), now_ms())
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
