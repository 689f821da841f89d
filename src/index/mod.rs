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
mod terms;
mod topk;
mod vector;

use std::sync::Arc;

pub use filter::{
    Bounds, Filter, Inclusive, IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar,
};
pub use lexical::{Highlighter, HIGHLIGHT_ALWAYS_ROWS, HIGHLIGHT_MAX_ROW_SHARE};
pub use memory::{MemoryIndex, Snapshot};
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
    /// Bytes the vectors take in memory.
    fn vector_bytes(&self) -> usize;
    fn slot_of(&self, id: &PassageId) -> Option<Slot>;
    /// The passage at `slot` (a slot this reader returned).
    fn passage(&self, slot: Slot) -> &Arc<Passage>;
    /// Its stored, normalised vector.
    fn vector(&self, slot: Slot) -> &[f32];
    /// The `k` passages `filter` admits whose vectors are most similar to `query` (normalised),
    /// best first, `exclude` left out; scores are cosines.
    fn nearest(&self, query: &[f32], k: usize, filter: &Filter, exclude: Option<Slot>) -> Vec<Hit>;
    /// The cosine of `query` with the passage at `slot`, exactly as [`nearest`](Self::nearest)
    /// computes it.
    fn cosine(&self, query: &[f32], slot: Slot) -> f32;
    /// The normalised BM25 score of every passage for `question`.
    fn lexical_scores(&self, question: &str) -> LexicalScores;
    /// The `k` passages `filter` admits with the best positive `scores`, best first.
    fn best_lexical(&self, scores: &LexicalScores, k: usize, filter: &Filter) -> Vec<Hit>;
    /// What to mark in result texts for `question`.
    fn highlighter(&self, question: &str) -> Highlighter<'_>;
}

/// A collection's index: hands out readers and applies changes.
pub trait Index: Send + Sync {
    /// The current state; later changes do not affect it.
    fn reader(&self) -> Arc<dyn IndexReader>;
    /// Applies `change` atomically, or refuses it whole.
    fn apply(&self, change: IndexChange) -> Result<(), IndexError>;
}
