//! The search use cases: a question over a collection, passages related to one passage, and one
//! passage by id.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{blocking, normalise_query, Service, ServiceError};
use crate::corpus::{Passage, PassageId};
use crate::embedding::Role;
use crate::index::Filter;
use crate::search::{
    self, Context, Mode, Question, Ranked, SearchParams, DEFAULT_TOP_K, MAX_TOP_K,
};
use crate::store::MAX_EF_SEARCH;

/// Most characters (or tokens) a context block may be asked to fill.
pub const MAX_CONTEXT_BUDGET: usize = 1_000_000;

/// The size of a context block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextBudget {
    Chars(usize),
    /// Tokens of the embedding model's tokenizer.
    Tokens(usize),
}

/// A question to answer from a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: String,
    /// 1 to [`MAX_TOP_K`]; [`DEFAULT_TOP_K`] when absent.
    pub top_k: Option<usize>,
    pub mode: Mode,
    pub filter: Filter,
    /// A cosine, −1 to 1.
    pub min_score: Option<f32>,
    pub context: Option<ContextBudget>,
    /// Whether to locate the question's words in the results.
    pub highlight: bool,
    /// HNSW candidates to keep, 1 to [`MAX_EF_SEARCH`], where PostgreSQL searches the
    /// vectors (exact searches in memory ignore it).
    pub ef_search: Option<usize>,
}

impl SearchRequest {
    /// A hybrid search for `query` with every option at its default.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            top_k: None,
            mode: Mode::default(),
            filter: Filter::default(),
            min_score: None,
            context: None,
            highlight: true,
            ef_search: None,
        }
    }
}

/// A result with where it contains the question's words.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub ranked: Ranked,
    /// Character ranges of the passage text, sorted and disjoint; `None` when not asked for.
    pub highlights: Option<Vec<Range<usize>>>,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub query: String,
    pub mode: Mode,
    /// Tokens the model read of the query; `None` in lexical mode.
    pub query_tokens: Option<usize>,
    /// The query was longer than the model's window.
    pub truncated: bool,
    pub results: Vec<SearchHit>,
    pub context: Option<Context>,
    /// The query's embedding (absent in lexical mode), for use cases that go on from the
    /// results, such as answers.
    pub query_vector: Option<Vec<f32>>,
    pub took: Duration,
}

/// Passages related to one passage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimilarRequest {
    pub top_k: Option<usize>,
    pub min_score: Option<f32>,
    pub filter: Filter,
    /// As [`SearchRequest::ef_search`].
    pub ef_search: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct SimilarOutcome {
    pub id: String,
    pub results: Vec<Ranked>,
    pub took: Duration,
}

impl Service {
    /// The passages of `collection` that best answer `request.query`.
    pub async fn search(
        &self,
        collection: &str,
        request: SearchRequest,
    ) -> Result<SearchOutcome, ServiceError> {
        let started = Instant::now();
        let request = SearchRequest {
            query: normalise_query(&request.query),
            ..request
        };
        if request.query.is_empty() {
            return Err(ServiceError::EmptyQuery);
        }
        let params = SearchParams {
            mode: request.mode,
            ..self.params(
                request.top_k,
                request.min_score,
                request.filter,
                request.ef_search,
            )?
        };
        if let Some(ContextBudget::Chars(size) | ContextBudget::Tokens(size)) = request.context {
            if !(1..=MAX_CONTEXT_BUDGET).contains(&size) {
                return Err(ServiceError::Invalid(format!(
                    "the context budget must be between 1 and {MAX_CONTEXT_BUDGET}, got {size}"
                )));
            }
        }
        let reader = self.reader(collection)?;
        let embedding = if request.mode.needs_embedding() {
            Some(self.queue.embed(Role::Query, request.query.clone()).await?)
        } else {
            None
        };
        let query = request.query.clone();
        let query_vector = embedding.as_ref().map(|e| e.vector.clone());
        let vector = query_vector.clone();
        let budget = request.context;
        let highlight = request.highlight;
        let tokens = self.token_counter();
        let (results, context) = blocking(move || {
            let question = Question {
                text: &query,
                vector: vector.as_deref(),
            };
            let ranked = search::search(&*reader, &question, &params)?;
            let context = budget.map(|budget| match budget {
                ContextBudget::Chars(max) => {
                    search::context(&ranked, max, &|t: &str| t.chars().count())
                }
                ContextBudget::Tokens(max) => search::context(&ranked, max, &|t: &str| tokens(t)),
            });
            let highlighter = highlight.then(|| reader.highlighter(&query));
            let results = ranked
                .into_iter()
                .map(|ranked| SearchHit {
                    highlights: highlighter.as_ref().map(|h| h.spans(&ranked.passage.text)),
                    ranked,
                })
                .collect();
            Ok::<_, ServiceError>((results, context))
        })
        .await??;
        let took = started.elapsed();
        metrics::histogram!("wenda_search_duration_seconds", "mode" => request.mode.as_str())
            .record(took.as_secs_f64());
        Ok(SearchOutcome {
            query: request.query,
            mode: request.mode,
            query_tokens: embedding.as_ref().map(|e| e.tokens),
            truncated: embedding.is_some_and(|e| e.truncated),
            results,
            context,
            query_vector,
            took,
        })
    }

    /// The passages of `collection` closest in meaning to passage `id`, itself excluded.
    pub async fn similar(
        &self,
        collection: &str,
        id: &str,
        request: SimilarRequest,
    ) -> Result<SimilarOutcome, ServiceError> {
        let started = Instant::now();
        let params = self.params(
            request.top_k,
            request.min_score,
            request.filter,
            request.ef_search,
        )?;
        let reader = self.reader(collection)?;
        let passage = PassageId::new(id);
        let results = blocking(move || search::similar(&*reader, &passage, &params)).await??;
        Ok(SimilarOutcome {
            id: id.to_owned(),
            results,
            took: started.elapsed(),
        })
    }

    /// Passage `id` of `collection`.
    pub fn passage(&self, collection: &str, id: &str) -> Result<Arc<Passage>, ServiceError> {
        let reader = self.reader(collection)?;
        let slot = reader
            .slot_of(&PassageId::new(id))
            .ok_or_else(|| ServiceError::UnknownPassage(id.to_owned()))?;
        Ok(Arc::clone(reader.passage(slot)))
    }

    /// Checks the knobs shared by searches and related-passage lookups.
    fn params(
        &self,
        top_k: Option<usize>,
        min_score: Option<f32>,
        filter: Filter,
        ef_search: Option<usize>,
    ) -> Result<SearchParams, ServiceError> {
        if let Some(ef) = ef_search {
            if !(1..=MAX_EF_SEARCH).contains(&ef) {
                return Err(ServiceError::Invalid(format!(
                    "ef_search must be between 1 and {MAX_EF_SEARCH}, got {ef}"
                )));
            }
        }
        let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(ServiceError::Invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
            )));
        }
        if let Some(min) = min_score {
            if !(-1.0..=1.0).contains(&min) {
                return Err(ServiceError::Invalid(format!(
                    "min_score is a cosine similarity between -1 and 1, got {min}"
                )));
            }
        }
        if let (Some(from), Some(to)) = (&filter.date_from, &filter.date_to) {
            if from > to {
                return Err(ServiceError::Invalid(format!(
                    "date_from {} is after date_to {}",
                    from.as_str(),
                    to.as_str()
                )));
            }
        }
        let conditions = filter.metadata.iter().flat_map(|f| f.conditions());
        if let Some(condition) = conditions.into_iter().find(|c| match &c.test {
            crate::index::MetadataTest::Range(bounds) => bounds.is_empty(),
            crate::index::MetadataTest::DateRange(bounds) => bounds.is_empty(),
            _ => false,
        }) {
            return Err(ServiceError::Invalid(format!(
                "the range of metadata field {:?} admits no value",
                condition.key
            )));
        }
        Ok(SearchParams {
            top_k,
            filter,
            min_score,
            lexical_weight: self.lexical_weight,
            ef_search,
            ..SearchParams::default()
        })
    }

    /// Counts tokens as the model does, for token budgets (callable off the runtime).
    fn token_counter(&self) -> impl Fn(&str) -> usize + Send + 'static {
        let embedder = Arc::clone(&self.embedder);
        move |text| {
            embedder
                .token_count(Role::Passage, text)
                .unwrap_or(usize::MAX)
        }
    }
}
