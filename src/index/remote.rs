//! An index whose vectors live in an external engine (PostgreSQL with pgvector's HNSW index),
//! while the passages and their terms stay in this process for lexical ranking.
//!
//! The engine is reached through [`VectorSearch`]: nearest neighbours under a filter, cosines of
//! given passages, one passage's vector. It may answer with a filter *wider* than asked (a
//! condition it cannot express exactly, such as a case-insensitive text test, is left to this
//! side), so every passage it returns is checked against the filter here, on the reader's
//! snapshot, before it counts; when too few survive, more are asked for. Passages the engine
//! knows but this snapshot does not yet (written through another replica, not yet followed)
//! are left out, so a result always resolves to a passage of the snapshot.

use std::borrow::Cow;
use std::sync::Arc;

use super::topk::best_first;
use super::{
    Filter, Highlighter, Hit, Index, IndexChange, IndexError, IndexReader, LexicalScores,
    MemoryIndex, NearestQuery, ReadError, Slot, Snapshot,
};
use crate::corpus::{Passage, PassageId};

/// Nearest-neighbour search over one collection's vectors, kept outside this process.
pub trait VectorSearch: Send + Sync {
    /// Vector dimensions.
    fn dimensions(&self) -> usize;
    /// Up to `k` passages nearest `vector` (normalised) among those `filter` admits (or a
    /// superset of them), `exclude` left out, each with its cosine, in any order.
    fn nearest(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
        exclude: Option<&PassageId>,
        ef_search: Option<usize>,
    ) -> Result<Vec<(PassageId, f32)>, ReadError>;
    /// The cosines of `vector` with passages `ids`, in order; `None` for a passage the engine
    /// does not have.
    fn cosines(&self, vector: &[f32], ids: &[&PassageId]) -> Result<Vec<Option<f32>>, ReadError>;
    /// The stored vector of passage `id`, if the engine has it.
    fn vector(&self, id: &PassageId) -> Result<Option<Vec<f32>>, ReadError>;
}

/// Passages and terms in memory, vectors in a [`VectorSearch`] engine.
pub struct RemoteIndex {
    lexical: MemoryIndex,
    vectors: Arc<dyn VectorSearch>,
}

impl RemoteIndex {
    pub fn new(lexical: MemoryIndex, vectors: Arc<dyn VectorSearch>) -> Self {
        Self { lexical, vectors }
    }
}

impl Index for RemoteIndex {
    fn reader(&self) -> Arc<dyn IndexReader> {
        Arc::new(RemoteReader {
            snapshot: self.lexical.snapshot(),
            vectors: Arc::clone(&self.vectors),
        })
    }

    /// The vectors of `change` are not kept: the engine has them already (the store wrote them
    /// in the same transaction as the passages).
    fn apply(&self, mut change: IndexChange) -> Result<(), IndexError> {
        for added in &mut change.add {
            added.vector = Vec::new();
        }
        self.lexical.apply(change)
    }
}

/// A snapshot of the passages, with the engine for dense ranking.
struct RemoteReader {
    snapshot: Arc<Snapshot>,
    vectors: Arc<dyn VectorSearch>,
}

impl RemoteReader {
    fn id(&self, slot: Slot) -> &PassageId {
        &self.snapshot.passage(slot).id
    }
}

impl IndexReader for RemoteReader {
    fn dimensions(&self) -> usize {
        self.vectors.dimensions()
    }

    fn passage_count(&self) -> usize {
        self.snapshot.passage_count()
    }

    fn document_count(&self) -> usize {
        self.snapshot.document_count()
    }

    fn vector_bytes(&self) -> usize {
        0
    }

    fn slot_of(&self, id: &PassageId) -> Option<Slot> {
        self.snapshot.slot_of(id)
    }

    fn passage(&self, slot: Slot) -> &Arc<Passage> {
        self.snapshot.passage(slot)
    }

    fn vector(&self, slot: Slot) -> Result<Cow<'_, [f32]>, ReadError> {
        let id = self.id(slot);
        self.vectors.vector(id)?.map(Cow::Owned).ok_or_else(|| {
            ReadError::Unavailable(format!("passage {id} has no vector in the database"))
        })
    }

    fn nearest(&self, query: &NearestQuery<'_>) -> Result<Vec<Hit>, ReadError> {
        let filter = query.filter.compile();
        let exclude = query.exclude.map(|slot| self.id(slot));
        // Ask for a few more than wanted, since some may fail the filter here; ask again for
        // four times as many while the engine had more to give.
        let mut limit = query.k + query.k / 4 + 1;
        loop {
            let found = self.vectors.nearest(
                query.vector,
                limit,
                query.filter,
                exclude,
                query.ef_search,
            )?;
            let exhausted = found.len() < limit;
            let mut hits: Vec<Hit> = found
                .into_iter()
                .filter_map(|(id, score)| {
                    let slot = self.snapshot.slot_of(&id)?;
                    self.snapshot
                        .admits_slot(&filter, slot)
                        .then_some(Hit { slot, score })
                })
                .collect();
            if hits.len() >= query.k || exhausted || query.k == 0 {
                hits.sort_by(best_first);
                hits.truncate(query.k);
                return Ok(hits);
            }
            limit = limit.saturating_mul(4);
        }
    }

    fn cosines(&self, query: &[f32], slots: &[Slot]) -> Result<Vec<f32>, ReadError> {
        let ids: Vec<&PassageId> = slots.iter().map(|&slot| self.id(slot)).collect();
        // A passage of this snapshot that the database no longer has was deleted since: it
        // ranks last rather than failing the search.
        Ok(self
            .vectors
            .cosines(query, &ids)?
            .into_iter()
            .map(|cosine| cosine.unwrap_or(-1.0))
            .collect())
    }

    fn lexical_scores(&self, question: &str) -> LexicalScores {
        self.snapshot.lexical_scores(question)
    }

    fn best_lexical(&self, scores: &LexicalScores, k: usize, filter: &Filter) -> Vec<Hit> {
        self.snapshot.best_lexical(scores, k, filter)
    }

    fn highlighter(&self, question: &str) -> Highlighter<'_> {
        self.snapshot.highlighter(question)
    }

    fn term_idf(&self, term: &str) -> f32 {
        self.snapshot.term_idf(term)
    }
}
