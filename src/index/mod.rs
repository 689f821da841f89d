//! Passages → nearest: what a search consults, behind the [`IndexReader`] and [`Index`] traits.
//!
//! An index holds the passages of one collection with their vectors (ranked by meaning: cosine
//! of embeddings) and their terms (ranked by shared words: BM25 over Chinese-aware terms from
//! [`Analyzer`]). Passages are identified by their stable [`PassageId`]; changes replace whole
//! documents atomically ([`IndexChange`]), and readers work on a consistent snapshot that later
//! changes do not disturb. Filters are data ([`Filter`]) applied before ranking, so an index
//! that is not in memory can translate them. How dense and lexical evidence are combined is not
//! the index's business: `search` fuses the candidates each side returns.
//!
//! [`MemoryIndex`] is the implementation here: immutable segments with deletion marks, merged
//! as they accumulate.

mod filter;
mod lexical;
mod memory;
mod quantized;
mod remote;
mod terms;
mod topk;
mod vector;

use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use filter::fold;
pub use filter::{
    Bounds, Filter, Inclusive, IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar,
};
pub use lexical::{Highlighter, HIGHLIGHT_ALWAYS_ROWS, HIGHLIGHT_MAX_ROW_SHARE};
pub use memory::{MemoryIndex, Snapshot, DEFAULT_QUANTIZE_FROM};
pub use quantized::{QuantizedVectors, CANDIDATES_PER_RESULT};
pub use remote::{RemoteIndex, VectorSearch};
pub use terms::{Analyzer, LocatedTerm, TermCounts, TermCountsDamaged};
pub use topk::{best_first, Hit};
pub use vector::{dot, DenseVectors, PARALLEL_ROWS};

use crate::corpus::{Passage, PassageId};

/// Where a passage is within one reader: valid only for the reader that returned it, which
/// resolves it with [`IndexReader::passage`]. Stable identity is the [`PassageId`].
pub type Slot = usize;

/// A passage ready to join an index: its vector (normalised on entry) and its terms.
#[derive(Debug, Clone)]
pub struct IndexedPassage {
    pub passage: Passage,
    pub vector: Vec<f32>,
    pub terms: TermCounts,
}

/// One atomic change: the passages of `remove_documents` leave, `add` joins. Readers see the
/// index before the change or after it, never between.
#[derive(Debug, Default)]
pub struct IndexChange {
    /// Document ids (a passage's document is its `citation.path`).
    pub remove_documents: Vec<String>,
    pub add: Vec<IndexedPassage>,
}

/// Why a change was refused (the index is then as it was).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IndexError {
    #[error("vector has {found} dimensions, the index {expected}")]
    Dimensions { expected: usize, found: usize },
    #[error("vector contains a value that is not finite")]
    NotFinite,
    #[error("passage id {0:?} is already in the index")]
    DuplicatePassage(String),
}

/// Why a reader could not answer: its vectors live in an engine (a database) that did not.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// The engine did not respond or cannot now: retrying later may succeed.
    #[error("vector search unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the query wenda sent: a bug, not an outage, so not worth a retry.
    #[error("vector search refused: {0}")]
    Refused(String),
}

/// What [`IndexReader::nearest`] looks for.
#[derive(Debug, Clone, Copy)]
pub struct NearestQuery<'a> {
    /// Normalised.
    pub vector: &'a [f32],
    pub k: usize,
    pub filter: &'a Filter,
    /// A passage to leave out (the one whose neighbours are asked for).
    pub exclude: Option<Slot>,
    /// Candidates an approximate (HNSW) index keeps while searching: more is slower and finds
    /// more of the true nearest. Exact indexes ignore it; `None` is the index's default.
    pub ef_search: Option<usize>,
}

/// Normalised BM25 of every slot of one reader for one question (0 where no term is shared).
#[derive(Debug, Clone)]
pub struct LexicalScores(Vec<f32>);

impl LexicalScores {
    pub fn get(&self, slot: Slot) -> f32 {
        self.0.get(slot).copied().unwrap_or(0.0)
    }
}

/// A consistent view of one collection's passages, for ranking.
pub trait IndexReader: Send + Sync {
    /// Vector dimensions.
    fn dimensions(&self) -> usize;
    /// Passages in the view.
    fn passage_count(&self) -> usize;
    /// Documents they belong to.
    fn document_count(&self) -> usize;
    /// Bytes the vectors take in this process's memory (0 when they live in a database).
    fn vector_bytes(&self) -> usize;
    fn slot_of(&self, id: &PassageId) -> Option<Slot>;
    /// The passage at `slot` (a slot this reader returned).
    fn passage(&self, slot: Slot) -> &Arc<Passage>;
    /// Its stored, normalised vector.
    fn vector(&self, slot: Slot) -> Result<Cow<'_, [f32]>, ReadError>;
    /// The `query.k` passages `query.filter` admits whose vectors are most similar to
    /// `query.vector`, best first, `query.exclude` left out; scores are cosines. Exact over
    /// an index in memory, approximate over an HNSW index.
    fn nearest(&self, query: &NearestQuery<'_>) -> Result<Vec<Hit>, ReadError>;
    /// The cosines of `query` with the passages at `slots`, in order, as
    /// [`nearest`](Self::nearest) computes them.
    fn cosines(&self, query: &[f32], slots: &[Slot]) -> Result<Vec<f32>, ReadError>;
    /// The normalised BM25 score of every passage for `question`.
    fn lexical_scores(&self, question: &str) -> LexicalScores;
    /// The `k` passages `filter` admits with the best positive `scores`, best first.
    fn best_lexical(&self, scores: &LexicalScores, k: usize, filter: &Filter) -> Vec<Hit>;
    /// What to mark in result texts for `question`.
    fn highlighter(&self, question: &str) -> Highlighter<'_>;
    /// How rare `term` is among the passages: BM25's inverse document frequency.
    fn term_idf(&self, term: &str) -> f32;
}

/// A collection's index: hands out readers and applies changes.
pub trait Index: Send + Sync {
    /// The current state; later changes do not affect it.
    fn reader(&self) -> Arc<dyn IndexReader>;
    /// Applies `change` atomically, or refuses it whole.
    fn apply(&self, change: IndexChange) -> Result<(), IndexError>;
}
