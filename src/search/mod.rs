//! Question → ranked passages: the passages of a corpus, their vectors, and the rules that turn a
//! query vector into what a user sees (filters, `top_k`, `min_score`, related passages).
//!
//! The engine does not run the model: callers embed the question (the HTTP layer through the
//! batching [`EmbedQueue`](crate::embedding::EmbedQueue), the CLI directly) and hand over the
//! vector. [`build`] assembles an engine from a loaded corpus, embedding only what the vector
//! cache does not already hold.

mod build;
mod filter;

use std::collections::HashMap;

pub use build::{build, BuildError, BuildStats};
pub use filter::{Filter, IsoDate};

use crate::corpus::{Document, Passage, PassageId};
use crate::index::VectorIndex;

/// Most results one search may ask for.
pub const MAX_TOP_K: usize = 100;
/// Results returned when the caller does not say.
pub const DEFAULT_TOP_K: usize = 5;

/// What a search should return.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// How many passages, at most.
    pub top_k: usize,
    pub filter: Filter,
    /// Passages scoring below this are left out, even if fewer than `top_k` remain.
    pub min_score: Option<f32>,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            top_k: DEFAULT_TOP_K,
            filter: Filter::default(),
            min_score: None,
        }
    }
}

/// A passage and how well it matches.
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub passage: &'a Passage,
    /// Cosine similarity between the query and the passage vectors.
    pub score: f32,
}

/// Why a request about a passage cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    #[error("no passage has the id {0:?}")]
    UnknownPassage(String),
}

/// A corpus ready to search: passages, their vectors (row `i` is passage `i`) and documents.
pub struct SearchEngine {
    passages: Vec<Passage>,
    /// Lower-cased titles, so title filters need not fold every title on every search.
    folded_titles: Vec<Option<String>>,
    rows_by_id: HashMap<PassageId, usize>,
    documents: Vec<Document>,
    vectors: VectorIndex,
}

impl SearchEngine {
    /// Pairs passages with their vectors (`vectors` row `i` belongs to `passages[i]`).
    pub fn new(passages: Vec<Passage>, documents: Vec<Document>, vectors: VectorIndex) -> Self {
        assert_eq!(passages.len(), vectors.len(), "one vector per passage");
        let rows_by_id = passages
            .iter()
            .enumerate()
            .map(|(row, passage)| (passage.id.clone(), row))
            .collect();
        let folded_titles = passages
            .iter()
            .map(|p| p.article.title.as_deref().map(filter::fold_title))
            .collect();
        Self {
            passages,
            folded_titles,
            rows_by_id,
            documents,
            vectors,
        }
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Vector dimensions.
    pub fn dimensions(&self) -> usize {
        self.vectors.dimensions()
    }

    /// Bytes the vector matrix takes.
    pub fn index_bytes(&self) -> usize {
        self.vectors.size_bytes()
    }

    pub fn passage(&self, id: &str) -> Option<&Passage> {
        self.row_of(id).map(|row| &self.passages[row])
    }

    fn row_of(&self, id: &str) -> Option<usize> {
        self.rows_by_id.get(&PassageId::new(id)).copied()
    }

    /// The passages closest to `query` (a normalised query vector), best first.
    pub fn search(&self, query: &[f32], params: &SearchParams) -> Vec<Ranked<'_>> {
        self.rank(query, params, None)
    }

    /// The passages closest in meaning to passage `id`, itself excluded, best first.
    pub fn similar(&self, id: &str, params: &SearchParams) -> Result<Vec<Ranked<'_>>, SearchError> {
        let row = self
            .row_of(id)
            .ok_or_else(|| SearchError::UnknownPassage(id.to_owned()))?;
        Ok(self.rank(self.vectors.vector(row), params, Some(row)))
    }

    fn rank(
        &self,
        query: &[f32],
        params: &SearchParams,
        exclude: Option<usize>,
    ) -> Vec<Ranked<'_>> {
        let filter = params.filter.compile();
        let accept = |row: usize| {
            Some(row) != exclude
                && filter.accepts(&self.passages[row], self.folded_titles[row].as_deref())
        };
        self.vectors
            .search(query, params.top_k, &accept)
            .into_iter()
            .filter(|hit| params.min_score.is_none_or(|min| hit.score >= min))
            .map(|hit| Ranked {
                passage: &self.passages[hit.row],
                score: hit.score,
            })
            .collect()
    }
}
