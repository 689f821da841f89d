//! Collections: one described, and the list of them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::{CollectionSummary, ModelSummary};

use super::info::ModelInfo;

/// A named set of documents with its own indexes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionView {
    /// 1 to 64 of `a-z 0-9 _ -`.
    #[schema(example = "default")]
    pub name: String,
    pub documents: usize,
    pub passages: usize,
    /// Bytes of document text stored.
    pub text_bytes: u64,
    /// Bytes its vectors take in memory.
    pub vector_bytes: usize,
    /// The model its passages are embedded with.
    pub model: ModelInfo,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl CollectionView {
    pub fn new(summary: CollectionSummary, model: &ModelSummary) -> Self {
        Self {
            name: summary.name,
            documents: summary.documents,
            passages: summary.passages,
            text_bytes: summary.text_bytes,
            vector_bytes: summary.vector_bytes,
            model: model.into(),
            created_at: summary.created_at,
        }
    }
}

/// Every collection, by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionView>,
}
