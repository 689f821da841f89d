//! What is being served (`/v1/info`), and whether it is up (`/health`, `/ready`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::ModelSummary;

/// `GET /v1/info`: what is being served.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// wenda's version.
    pub version: String,
    pub model: ModelInfo,
    /// Collections served.
    pub collections: usize,
    /// Passages in every collection.
    pub passages: usize,
    /// Documents they come from.
    pub documents: usize,
    /// Memory held by the vectors.
    pub index_bytes: usize,
    /// The CPU kernel level the encoder and the index run: `avx512-vnni`, `avx-vnni`, `avx2` or
    /// `portable`.
    #[schema(example = "avx512-vnni")]
    pub kernels: String,
}

/// The embedding model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// Its Hugging Face id, e.g. `intfloat/multilingual-e5-small`.
    pub id: String,
    /// Length of its vectors.
    pub dimensions: usize,
    /// How token vectors become one sentence vector (`mean`).
    pub pooling: String,
    /// The model's window: longer texts are truncated.
    pub max_tokens: usize,
}

impl From<&ModelSummary> for ModelInfo {
    fn from(model: &ModelSummary) -> Self {
        Self {
            id: model.id.clone(),
            dimensions: model.dimensions,
            pooling: model.pooling.clone(),
            max_tokens: model.max_tokens,
        }
    }
}

/// `GET /health` and `GET /ready` when all is well.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok` (health) or `ready`.
    pub status: String,
}
