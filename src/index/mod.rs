//! Passages → nearest: the two indexes a search consults.
//!
//! [`VectorIndex`] ranks by meaning (exact cosine search over embeddings); [`LexicalIndex`] ranks
//! by shared words (BM25 over Chinese-aware terms from [`Analyzer`]). Both identify passages by
//! row, the passage's position in the corpus, and both filter before they rank.

mod lexical;
mod terms;
mod topk;
mod vector;

pub use lexical::{Highlighter, LexicalIndex};
pub use terms::{Analyzer, LocatedTerm};
pub use topk::Hit;
pub use vector::{dot, IndexError, VectorIndex, PARALLEL_ROWS};
