//! Dense search in PostgreSQL: pgvector's HNSW index over `passages.embedding` (`halfvec`,
//! cosine), with the search's filter translated into SQL so that the index scan itself skips
//! what the filter refuses.
//!
//! pgvector 0.8's iterative index scans (`hnsw.iterative_scan = relaxed_order`) let a filtered
//! scan go on past `ef_search` candidates until `LIMIT` rows pass the filter, so a selective
//! filter still returns `k` results instead of the few that happened to be among the first
//! `ef_search`. Relaxed order may return rows slightly out of order; the caller sorts them.
//! A filter that admits few passages ([`EXACT_SEARCH_UP_TO`]) is searched exactly instead:
//! walking the graph past thousands of refused neighbours costs more than reading the admitted
//! passages through the filter's own indexes (the GIN index on `metadata`, the key on `doc_id`)
//! and sorting them, and finds fewer of the true nearest (recall@10 0.82 against 1 for a 1 %
//! filter over 200,000 passages, `wenda-bench store`).
//!
//! The translation is exact for the document, title, date and most metadata tests; a test SQL
//! cannot express exactly as wenda defines it (case-insensitive text tests, which fold case by
//! Unicode rules, and dates that must also be valid calendar days) becomes a wider condition,
//! and the index's reader checks every returned passage against the filter itself (see
//! `index::remote`). A wider condition is never negated.

use postgres::types::ToSql;
use postgres::GenericClient;
use serde_json::{Map, Value};

use super::Pool;
use crate::corpus::PassageId;
use crate::index::{
    fold, Bounds, Filter, MetadataFilter, MetadataTest, ReadError, Scalar, VectorSearch,
};
use crate::store::StoreError;

/// HNSW candidates a search keeps unless told otherwise: recall@10 ≥ 0.95 over 200,000
/// passages (`wenda-bench store`).
pub const DEFAULT_EF_SEARCH: usize = 200;
/// Most candidates an HNSW search keeps (pgvector's bound on `hnsw.ef_search`).
pub const MAX_EF_SEARCH: usize = 1000;

/// A filter admitting at most this many passages is searched exactly (PostgreSQL reads them
/// through the filter's indexes and sorts them by distance): cheaper there than a walk of the
/// HNSW graph that skips what the filter refuses, and exact. More than this, and the HNSW
/// index is walked with an iterative scan.
pub const EXACT_SEARCH_UP_TO: usize = 5_000;

/// One collection's vectors in the database.
pub struct PgVectors {
    pub(super) pool: Pool,
    pub(super) collection: String,
    /// The collection's id, looked up once: queries name it as a constant, so that a sharded
    /// database (Citus, distributed by `collection_id`) routes them to one shard.
    pub(super) collection_id: std::sync::OnceLock<i64>,
    pub(super) dimensions: usize,
    pub(super) default_ef_search: usize,
    /// [`EXACT_SEARCH_UP_TO`], but for tests of the graph walk with a filter.
    pub(super) exact_search_up_to: usize,
}

type Param = Box<dyn ToSql + Sync>;

/// A WHERE clause being built, with its parameters (numbered after those already bound).
struct Clause {
    params: Vec<Param>,
}

impl Clause {
    fn bind(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// The SQL of `filter`, and whether it admits exactly what the filter admits (otherwise,
    /// more).
    fn filter(&mut self, filter: &Filter) -> (String, bool) {
        let mut parts = Vec::new();
        let mut exact = true;
        if let Some(document) = &filter.document {
            parts.push(format!("doc_id = {}", self.bind(document.clone())));
        }
        if let Some(title) = &filter.title {
            parts.push(format!(
                "strpos(title_folded, {}) > 0",
                self.bind(fold(title))
            ));
        }
        if let Some(from) = &filter.date_from {
            parts.push(format!("day >= {}", self.bind(from.as_str().to_owned())));
        }
        if let Some(to) = &filter.date_to {
            parts.push(format!("day <= {}", self.bind(to.as_str().to_owned())));
        }
        for metadata in &filter.metadata {
            let (sql, is_exact) = self.metadata(metadata);
            parts.push(sql);
            exact &= is_exact;
        }
        (conjunction(parts), exact)
    }

    fn metadata(&mut self, filter: &MetadataFilter) -> (String, bool) {
        // Parameters bound for SQL that is then left out are unbound again.
        let bound = self.params.len();
        match filter {
            MetadataFilter::Field(condition) => match &condition.test {
                // Containment, which the GIN index on `metadata` answers: a selective
                // equality filter is then a bitmap scan and an exact sort, not a long walk
                // of the HNSW graph.
                MetadataTest::Equals(scalar) => (self.contains(&condition.key, [scalar]), true),
                MetadataTest::In(scalars) => (self.contains(&condition.key, scalars), true),
                test => {
                    let key = self.bind(condition.key.clone());
                    let field = format!("(metadata -> {key})");
                    let (sql, exact) = self.field(&field, test);
                    if sql == "TRUE" {
                        self.params.truncate(bound);
                    }
                    (sql, exact)
                }
            },
            MetadataFilter::All(filters) => {
                let (parts, exact) = self.each(filters);
                (conjunction(parts), exact)
            }
            MetadataFilter::Any(filters) => {
                let (parts, exact) = self.each(filters);
                if parts.is_empty() {
                    ("FALSE".into(), true)
                } else {
                    (format!("({})", parts.join(" OR ")), exact)
                }
            }
            MetadataFilter::Not(inner) => match self.metadata(inner) {
                (sql, true) => (format!("NOT {sql}"), true),
                // NOT of a wider condition would be narrower: leave it to the recheck.
                (_, false) => {
                    self.params.truncate(bound);
                    ("TRUE".into(), false)
                }
            },
        }
    }

    fn each(&mut self, filters: &[MetadataFilter]) -> (Vec<String>, bool) {
        let mut exact = true;
        let parts = filters
            .iter()
            .map(|filter| {
                let (sql, is_exact) = self.metadata(filter);
                exact &= is_exact;
                sql
            })
            .collect();
        (parts, exact)
    }

    /// A test of one field. A list field passes a value test when one of its (non-list)
    /// elements does, so value tests run over the field's values: its elements, or itself.
    fn field(&mut self, field: &str, test: &MetadataTest) -> (String, bool) {
        let any_value = |condition: String| {
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof({field}) \
                 WHEN 'array' THEN {field} ELSE jsonb_build_array({field}) END) AS v(value) \
                 WHERE {condition})"
            )
        };
        match test {
            MetadataTest::Equals(_) | MetadataTest::In(_) => {
                unreachable!("equality tests are containment tests")
            }
            MetadataTest::Range(bounds) => {
                let number = "(value #>> '{}')::float8";
                let within = self.bounds(number, bounds, |b| *b);
                (
                    any_value(format!(
                        "CASE WHEN jsonb_typeof(value) = 'number' THEN {within} ELSE FALSE END"
                    )),
                    true,
                )
            }
            MetadataTest::DateRange(bounds) => {
                // Wider: a string whose first ten characters order within the bounds but are
                // not a real day (2024-02-30) passes here and fails the recheck.
                let day = "left(value #>> '{}', 10)";
                let within = self.bounds(day, bounds, |d| d.as_str().to_owned());
                (
                    any_value(format!(
                        "CASE WHEN jsonb_typeof(value) = 'string' THEN {within} ELSE FALSE END"
                    )),
                    false,
                )
            }
            MetadataTest::Contains(_) | MetadataTest::Prefix(_) | MetadataTest::Suffix(_) => {
                // Case folding by Unicode rules is done on this side.
                ("TRUE".into(), false)
            }
            MetadataTest::Empty => (
                format!("({field} IS NULL OR {field} IN ('null', '\"\"', '[]'))"),
                true,
            ),
        }
    }

    /// Whether field `key` is one of `scalars` or a list holding one: `{key: v}` or
    /// `{key: [v]}` contained in the metadata (a list nested in the list does not count, as
    /// in memory). Stored numbers are `f64`s (see `metadata_for_filters`), so numbers compare
    /// as wenda compares them.
    fn contains<'s>(&mut self, key: &str, scalars: impl IntoIterator<Item = &'s Scalar>) -> String {
        let mut tests = Vec::new();
        for scalar in scalars {
            let value = match scalar {
                Scalar::Text(text) => Value::from(text.as_str()),
                Scalar::Number(number) => Value::from(*number),
                Scalar::Bool(flag) => Value::from(*flag),
            };
            for form in [value.clone(), Value::Array(vec![value])] {
                let object: Value = [(key.to_owned(), form)]
                    .into_iter()
                    .collect::<Map<_, _>>()
                    .into();
                tests.push(format!("metadata @> {}", self.bind(object)));
            }
        }
        if tests.is_empty() {
            "FALSE".into()
        } else {
            format!("({})", tests.join(" OR "))
        }
    }

    fn bounds<T, P: ToSql + Sync + 'static>(
        &mut self,
        expression: &str,
        bounds: &Bounds<T>,
        param: impl Fn(&T) -> P,
    ) -> String {
        let mut parts = Vec::new();
        if let Some((low, inclusive)) = &bounds.lower {
            let op = if *inclusive { ">=" } else { ">" };
            parts.push(format!("{expression} {op} {}", self.bind(param(low))));
        }
        if let Some((high, inclusive)) = &bounds.upper {
            let op = if *inclusive { "<=" } else { "<" };
            parts.push(format!("{expression} {op} {}", self.bind(param(high))));
        }
        conjunction(parts)
    }
}

fn conjunction(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "TRUE".into()
    } else {
        format!("({})", parts.join(" AND "))
    }
}

impl From<postgres::Error> for ReadError {
    /// Classified as the store's errors are: a query PostgreSQL refuses is a bug, anything
    /// else (a connection lost, a statement timeout) an outage.
    #[track_caller]
    fn from(error: postgres::Error) -> Self {
        match StoreError::from(error) {
            StoreError::Internal { statement, message } => {
                Self::Refused(format!("the statement at {statement}: {message}"))
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

fn params(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|value| value.as_ref()).collect()
}

impl PgVectors {
    fn client(
        &self,
    ) -> Result<
        r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<postgres::NoTls>>,
        ReadError,
    > {
        self.pool
            .get()
            .map_err(|e| ReadError::Unavailable(format!("no PostgreSQL connection: {e}")))
    }

    /// The collection's id; `None` when it is gone (deleted since this replica loaded it).
    fn collection_id(&self, client: &mut impl GenericClient) -> Result<Option<i64>, ReadError> {
        if let Some(id) = self.collection_id.get() {
            return Ok(Some(*id));
        }
        let row = client.query_opt(
            "SELECT id FROM collections WHERE name = $1",
            &[&self.collection],
        )?;
        Ok(row.map(|row| *self.collection_id.get_or_init(|| row.get(0))))
    }

    /// A clause whose first parameters are the query vector and the collection's id.
    fn clause(vector: &[f32], collection_id: i64) -> Clause {
        let mut clause = Clause { params: Vec::new() };
        clause.bind(pgvector::Vector::from(vector.to_vec()));
        clause.bind(collection_id);
        clause
    }
}

/// The passages of the collection (`$2`) that have a vector.
const PASSAGES_OF_COLLECTION: &str =
    "FROM passages WHERE collection_id = $2 AND embedding IS NOT NULL";

/// Cosine distance to the query (`$1`), as the HNSW index (halfvec_cosine_ops) orders by it.
const DISTANCE: &str = "(embedding <=> $1::vector::halfvec)";

impl VectorSearch for PgVectors {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn nearest(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
        exclude: Option<&PassageId>,
        ef_search: Option<usize>,
    ) -> Result<Vec<(PassageId, f32)>, ReadError> {
        let mut client = self.client()?;
        let Some(collection_id) = self.collection_id(&mut *client)? else {
            return Ok(Vec::new());
        };
        let mut clause = Self::clause(vector, collection_id);
        let limit = clause.bind(k as i64);
        let (filter_sql, _) = clause.filter(filter);
        let exclude_sql = match exclude {
            Some(id) => format!("AND passage_id <> {}", clause.bind(id.to_string())),
            None => String::new(),
        };
        let admitted = format!("{PASSAGES_OF_COLLECTION} {exclude_sql} AND {filter_sql}");
        let found = |rows: &[postgres::Row]| -> Vec<(PassageId, f32)> {
            rows.iter()
                .map(|row| {
                    let id: String = row.get(0);
                    let cosine: f64 = row.get(1);
                    (PassageId::new(id), cosine as f32)
                })
                .collect()
        };
        if !filter.is_empty() && self.exact_search_up_to > 0 {
            // Exact when the filter admits few: the first EXACT_SEARCH_UP_TO + 1 admitted
            // passages, counted; more than that, and the answer is not used.
            let sql = format!(
                "WITH admitted AS MATERIALIZED (
                     SELECT passage_id, embedding {admitted} LIMIT {}
                 )
                 SELECT passage_id, 1 - {DISTANCE}, COUNT(*) OVER () FROM admitted
                 ORDER BY {DISTANCE} LIMIT {limit}",
                self.exact_search_up_to + 1
            );
            let rows = client.query(&sql, &params(&clause.params))?;
            let admitted_count = rows.first().map_or(0, |row| row.get::<_, i64>(2));
            if admitted_count <= self.exact_search_up_to as i64 {
                return Ok(found(&rows));
            }
        }
        let sql = format!(
            "SELECT passage_id, 1 - {DISTANCE} {admitted} ORDER BY {DISTANCE} LIMIT {limit}"
        );
        // The search keeps at least as many candidates as it must return.
        let ef_search = ef_search
            .unwrap_or(self.default_ef_search)
            .max(k)
            .min(MAX_EF_SEARCH);
        let mut transaction = client.transaction()?;
        transaction.batch_execute(&format!(
            "SET LOCAL hnsw.ef_search = {ef_search}; \
                 SET LOCAL hnsw.iterative_scan = relaxed_order"
        ))?;
        let rows = transaction.query(&sql, &params(&clause.params))?;
        transaction.commit()?;
        Ok(found(&rows))
    }

    fn cosines(&self, vector: &[f32], ids: &[&PassageId]) -> Result<Vec<Option<f32>>, ReadError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client()?;
        let Some(collection_id) = self.collection_id(&mut *client)? else {
            return Ok(vec![None; ids.len()]);
        };
        let mut clause = Self::clause(vector, collection_id);
        let wanted: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let wanted_param = clause.bind(wanted);
        let sql = format!(
            "SELECT passage_id, 1 - {DISTANCE} {PASSAGES_OF_COLLECTION} \
             AND passage_id = ANY({wanted_param})"
        );
        let rows = client.query(&sql, &params(&clause.params))?;
        let found: std::collections::HashMap<String, f32> = rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, f64>(1) as f32))
            .collect();
        Ok(ids
            .iter()
            .map(|id| found.get(id.as_str()).copied())
            .collect())
    }

    fn vector(&self, id: &PassageId) -> Result<Option<Vec<f32>>, ReadError> {
        let mut client = self.client()?;
        let Some(collection_id) = self.collection_id(&mut *client)? else {
            return Ok(None);
        };
        let row = client.query_opt(
            "SELECT embedding::vector FROM passages
                 WHERE collection_id = $1 AND passage_id = $2",
            &[&collection_id, &id.as_str()],
        )?;
        Ok(row
            .and_then(|row| row.get::<_, Option<pgvector::Vector>>(0))
            .map(|vector| {
                let mut values = vector.to_vec();
                let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    values.iter_mut().for_each(|v| *v /= norm);
                }
                values
            }))
    }
}

#[cfg(test)]
pub(crate) fn filter_sql(filter: &Filter) -> (String, Vec<Param>, bool) {
    let mut clause = Clause { params: Vec::new() };
    let (sql, exact) = clause.filter(filter);
    (sql, clause.params, exact)
}
