//! Dense search in PostgreSQL: pgvector's HNSW index over `passages.embedding` (`halfvec`,
//! cosine), with the search's filter translated into SQL so that the index scan itself skips
//! what the filter refuses.
//!
//! pgvector 0.8's iterative index scans (`hnsw.iterative_scan = relaxed_order`) let a filtered
//! scan go on past `ef_search` candidates until `LIMIT` rows pass the filter, so a selective
//! filter still returns `k` results instead of the few that happened to be among the first
//! `ef_search`. Relaxed order may return rows slightly out of order; the caller sorts them.
//!
//! The translation is exact for the document, title, date and most metadata tests; a test SQL
//! cannot express exactly as wenda defines it (case-insensitive text tests, which fold case by
//! Unicode rules, and dates that must also be valid calendar days) becomes a wider condition,
//! and the index's reader checks every returned passage against the filter itself (see
//! `index::remote`). A wider condition is never negated.

use postgres::types::ToSql;

use super::postgres::Pool;
use crate::corpus::PassageId;
use crate::index::{
    fold, Bounds, Filter, MetadataFilter, MetadataTest, Scalar, Unavailable, VectorSearch,
};

/// HNSW candidates a search keeps unless told otherwise: recall@10 ≥ 0.95 over 200,000
/// passages (`wenda bench-store`).
pub const DEFAULT_EF_SEARCH: usize = 100;
/// Most candidates an HNSW search keeps (pgvector's bound on `hnsw.ef_search`).
pub const MAX_EF_SEARCH: usize = 1000;

/// One collection's vectors in the database.
pub struct PgVectors {
    pub(super) pool: Pool,
    pub(super) collection: String,
    pub(super) dimensions: usize,
    pub(super) default_ef_search: usize,
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
            MetadataFilter::Field(condition) => {
                let key = self.bind(condition.key.clone());
                let field = format!("(metadata -> {key})");
                let (sql, exact) = self.field(&field, &condition.test);
                if sql == "TRUE" {
                    self.params.truncate(bound);
                }
                (sql, exact)
            }
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
            MetadataTest::Equals(scalar) => (any_value(self.equals(scalar)), true),
            MetadataTest::In(scalars) => {
                let tests: Vec<String> = scalars.iter().map(|s| self.equals(s)).collect();
                let condition = if tests.is_empty() {
                    "FALSE".into()
                } else {
                    tests.join(" OR ")
                };
                (any_value(condition), true)
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

    /// Whether `value` (a JSON value) equals `scalar`, numbers compared as `f64` as wenda does.
    fn equals(&mut self, scalar: &Scalar) -> String {
        match scalar {
            Scalar::Text(text) => format!("value = to_jsonb({}::text)", self.bind(text.clone())),
            Scalar::Bool(flag) => format!("value = to_jsonb({}::boolean)", self.bind(*flag)),
            Scalar::Number(number) => format!(
                "CASE WHEN jsonb_typeof(value) = 'number' \
                 THEN (value #>> '{{}}')::float8 = {} ELSE FALSE END",
                self.bind(*number)
            ),
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

fn unavailable(error: impl std::fmt::Display) -> Unavailable {
    Unavailable(format!("PostgreSQL: {error}"))
}

fn params(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|value| value.as_ref()).collect()
}

impl PgVectors {
    fn client(
        &self,
    ) -> Result<
        r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<postgres::NoTls>>,
        Unavailable,
    > {
        self.pool
            .get()
            .map_err(|e| Unavailable(format!("no PostgreSQL connection: {e}")))
    }

    /// The query vector as a parameter, and the clause's first parameters: it and the
    /// collection's name.
    fn clause(&self, vector: &[f32]) -> Clause {
        let mut clause = Clause { params: Vec::new() };
        clause.bind(pgvector::Vector::from(vector.to_vec()));
        clause.bind(self.collection.clone());
        clause
    }
}

/// The passages of the collection (`$2`) that have a vector.
const PASSAGES_OF_COLLECTION: &str = "FROM passages \
     WHERE collection_id = (SELECT id FROM collections WHERE name = $2) \
     AND embedding IS NOT NULL";

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
    ) -> Result<Vec<(PassageId, f32)>, Unavailable> {
        let mut clause = self.clause(vector);
        let limit = clause.bind(k as i64);
        let (filter_sql, _) = clause.filter(filter);
        let exclude_sql = match exclude {
            Some(id) => format!("AND passage_id <> {}", clause.bind(id.to_string())),
            None => String::new(),
        };
        let sql = format!(
            "SELECT passage_id, 1 - {DISTANCE} {PASSAGES_OF_COLLECTION} {exclude_sql} \
             AND {filter_sql} ORDER BY {DISTANCE} LIMIT {limit}"
        );
        // The search keeps at least as many candidates as it must return.
        let ef_search = ef_search
            .unwrap_or(self.default_ef_search)
            .max(k)
            .min(MAX_EF_SEARCH);
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(unavailable)?;
        transaction
            .batch_execute(&format!(
                "SET LOCAL hnsw.ef_search = {ef_search}; \
                 SET LOCAL hnsw.iterative_scan = relaxed_order"
            ))
            .map_err(unavailable)?;
        let rows = transaction
            .query(&sql, &params(&clause.params))
            .map_err(unavailable)?;
        transaction.commit().map_err(unavailable)?;
        Ok(rows
            .iter()
            .map(|row| {
                let id: String = row.get(0);
                let cosine: f64 = row.get(1);
                (PassageId::new(id), cosine as f32)
            })
            .collect())
    }

    fn cosines(&self, vector: &[f32], ids: &[&PassageId]) -> Result<Vec<Option<f32>>, Unavailable> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut clause = self.clause(vector);
        let wanted: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let wanted_param = clause.bind(wanted);
        let sql = format!(
            "SELECT passage_id, 1 - {DISTANCE} {PASSAGES_OF_COLLECTION} \
             AND passage_id = ANY({wanted_param})"
        );
        let rows = self
            .client()?
            .query(&sql, &params(&clause.params))
            .map_err(unavailable)?;
        let found: std::collections::HashMap<String, f32> = rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, f64>(1) as f32))
            .collect();
        Ok(ids
            .iter()
            .map(|id| found.get(id.as_str()).copied())
            .collect())
    }

    fn vector(&self, id: &PassageId) -> Result<Option<Vec<f32>>, Unavailable> {
        let row = self
            .client()?
            .query_opt(
                "SELECT embedding::vector FROM passages
                 WHERE collection_id = (SELECT id FROM collections WHERE name = $1)
                 AND passage_id = $2",
                &[&self.collection, &id.as_str()],
            )
            .map_err(unavailable)?;
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
pub(super) fn filter_sql(filter: &Filter) -> (String, Vec<Param>, bool) {
    let mut clause = Clause { params: Vec::new() };
    let (sql, exact) = clause.filter(filter);
    (sql, clause.params, exact)
}
