//! Why a use case could not be carried out, in terms a transport can map to its own (an HTTP
//! status and code, an MCP tool error, a command-line message).

use crate::embedding::QueueError;
use crate::index::Unavailable;
use crate::search::SearchError;
use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("the query is empty; ask a question")]
    EmptyQuery,
    /// Input `n` of an embeddings request has nothing to embed.
    #[error("input {0} is empty")]
    EmptyInput(usize),
    /// A value the request may carry but not with this value.
    #[error("{0}")]
    Invalid(String),
    /// A collection name or document id that is not well formed.
    #[error("{0}")]
    InvalidName(String),
    #[error("no collection is named {0:?}")]
    UnknownCollection(String),
    #[error("no passage has the id {0:?}")]
    UnknownPassage(String),
    #[error("collection {collection:?} has no document {document:?}")]
    UnknownDocument {
        collection: String,
        document: String,
    },
    #[error("no import job has the id {0:?}")]
    UnknownJob(String),
    #[error("the document yields no passage: {0}")]
    NoPassages(String),
    #[error("passage id {passage:?} already belongs to document {owner:?}; give this document another id")]
    PassageConflict { passage: String, owner: String },
    #[error("too many requests are in progress; retry shortly")]
    Overloaded,
    #[error("storage unavailable: {0}; retry later (a write that failed wrote nothing)")]
    StorageUnavailable(String),
    #[error("embedding failed: {0}")]
    EmbeddingFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A stable name for the error, for programs: transports show it as it is (the HTTP API's
    /// `error.code`, an import job's per-line errors).
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyQuery => "empty_query",
            Self::EmptyInput(_) => "empty_input",
            Self::Invalid(_) => "invalid_request",
            Self::InvalidName(_) => "invalid_name",
            Self::UnknownCollection(_) => "unknown_collection",
            Self::UnknownPassage(_) => "unknown_passage",
            Self::UnknownDocument { .. } => "unknown_document",
            Self::UnknownJob(_) => "unknown_job",
            Self::NoPassages(_) => "no_passages",
            Self::PassageConflict { .. } => "passage_id_conflict",
            Self::Overloaded => "overloaded",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::EmbeddingFailed(_) => "embedding_failed",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<SearchError> for ServiceError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::UnknownPassage(id) => Self::UnknownPassage(id),
            SearchError::MissingEmbedding(_) => Self::Internal(error.to_string()),
            SearchError::Unavailable(Unavailable(problem)) => Self::StorageUnavailable(problem),
        }
    }
}

impl From<QueueError> for ServiceError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Full => Self::Overloaded,
            QueueError::Stopped | QueueError::Failed(_) => Self::EmbeddingFailed(error.to_string()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownCollection(name) => Self::UnknownCollection(name),
            StoreError::PassageTaken { passage, document } => Self::PassageConflict {
                passage,
                owner: document,
            },
            StoreError::Unavailable(problem) => Self::StorageUnavailable(problem),
            other => Self::Internal(other.to_string()),
        }
    }
}
