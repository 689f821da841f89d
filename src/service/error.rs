//! Why a use case could not be carried out, in terms a transport can map to its own (an HTTP
//! status and code, an MCP tool error, a command-line message).

use crate::embedding::QueueError;
use crate::index::ReadError;
use crate::llm::LlmError;
use crate::search::SearchError;
use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("the query is empty; ask a question")]
    EmptyQuery,
    #[error("the question is empty; ask something")]
    EmptyQuestion,
    /// A generative answer was asked of a server with no LLM.
    #[error("no LLM is configured on this server (start it with --llm-base-url); ask with mode \"extractive\" or \"auto\"")]
    NoLlmConfigured,
    /// Input `n` of an embeddings request has nothing to embed.
    #[error("input {0} is empty")]
    EmptyInput(usize),
    /// A value the request may carry but not with this value.
    #[error("{0}")]
    Invalid(String),
    /// A collection name or document id that is not well formed.
    #[error("{0}")]
    InvalidName(String),
    /// A paging cursor that no listing of the collection gave.
    #[error("{0}")]
    InvalidCursor(String),
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
    /// A file's bytes are not a document of its format (binary data as text, text that cannot
    /// be decoded whole).
    #[error("{0}")]
    UnreadableDocument(String),
    #[error("passage id {passage:?} already belongs to document {owner:?}; give this document another id")]
    PassageConflict { passage: String, owner: String },
    /// A write collided with a concurrent one; nothing was written.
    #[error("{0}; nothing was written: read the current state and send the write again")]
    Conflict(String),
    #[error("too many requests are in progress; retry shortly")]
    Overloaded,
    #[error("storage unavailable: {0}; retry later (a write that failed wrote nothing)")]
    StorageUnavailable(String),
    #[error("embedding failed: {0}")]
    EmbeddingFailed(String),
    /// The LLM could not be reached or answered with an error.
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// The LLM did not answer within `--llm-timeout`.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// The LLM answered something that is not a chat completion.
    #[error("{0}")]
    UpstreamInvalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A stable name for the error, for programs: transports show it as it is (the HTTP API's
    /// `error.code`, an import job's per-line errors).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::EmptyQuery => ErrorCode::EmptyQuery,
            Self::EmptyQuestion => ErrorCode::EmptyQuestion,
            Self::NoLlmConfigured => ErrorCode::NoLlmConfigured,
            Self::EmptyInput(_) => ErrorCode::EmptyInput,
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::InvalidName(_) => ErrorCode::InvalidName,
            Self::InvalidCursor(_) => ErrorCode::InvalidCursor,
            Self::UnknownCollection(_) => ErrorCode::UnknownCollection,
            Self::UnknownPassage(_) => ErrorCode::UnknownPassage,
            Self::UnknownDocument { .. } => ErrorCode::UnknownDocument,
            Self::UnknownJob(_) => ErrorCode::UnknownJob,
            Self::NoPassages(_) => ErrorCode::NoPassages,
            Self::UnreadableDocument(_) => ErrorCode::UnreadableDocument,
            Self::PassageConflict { .. } => ErrorCode::PassageIdConflict,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
            Self::EmbeddingFailed(_) => ErrorCode::EmbeddingFailed,
            Self::UpstreamUnavailable(_) => ErrorCode::UpstreamUnavailable,
            Self::UpstreamTimeout(_) => ErrorCode::UpstreamTimeout,
            Self::UpstreamInvalid(_) => ErrorCode::UpstreamInvalid,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Every error code a client can be given, by the service or by a transport in front of it:
/// one list, so codes are not invented ad hoc and the table in docs/api.md can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // The request itself.
    BadRequest,
    BadPath,
    MalformedJson,
    UnsupportedMediaType,
    NotAcceptable,
    InvalidRequest,
    InvalidName,
    InvalidCursor,
    EmptyQuery,
    EmptyQuestion,
    EmptyInput,
    NoLlmConfigured,
    TokenIdsNotSupported,
    PayloadTooLarge,
    BodyTimeout,
    NoRoute,
    MethodNotAllowed,
    // Who may ask, and from where.
    Unauthorized,
    Forbidden,
    HostNotAllowed,
    OriginNotAllowed,
    // What it names.
    UnknownCollection,
    UnknownDocument,
    UnknownPassage,
    UnknownJob,
    NoPassages,
    UnreadableDocument,
    PassageIdConflict,
    Conflict,
    // The server's state.
    NotReady,
    Overloaded,
    TooManyConnections,
    RequestTimeout,
    StorageUnavailable,
    EmbeddingFailed,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamInvalid,
    Internal,
}

impl ErrorCode {
    pub const ALL: [Self; 39] = [
        Self::BadRequest,
        Self::BadPath,
        Self::MalformedJson,
        Self::UnsupportedMediaType,
        Self::NotAcceptable,
        Self::InvalidRequest,
        Self::InvalidName,
        Self::InvalidCursor,
        Self::EmptyQuery,
        Self::EmptyQuestion,
        Self::EmptyInput,
        Self::NoLlmConfigured,
        Self::TokenIdsNotSupported,
        Self::PayloadTooLarge,
        Self::BodyTimeout,
        Self::NoRoute,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::HostNotAllowed,
        Self::OriginNotAllowed,
        Self::UnknownCollection,
        Self::UnknownDocument,
        Self::UnknownPassage,
        Self::UnknownJob,
        Self::NoPassages,
        Self::UnreadableDocument,
        Self::PassageIdConflict,
        Self::Conflict,
        Self::NotReady,
        Self::Overloaded,
        Self::TooManyConnections,
        Self::RequestTimeout,
        Self::StorageUnavailable,
        Self::EmbeddingFailed,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::UpstreamInvalid,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::BadPath => "bad_path",
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotAcceptable => "not_acceptable",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidName => "invalid_name",
            Self::InvalidCursor => "invalid_cursor",
            Self::EmptyQuery => "empty_query",
            Self::EmptyQuestion => "empty_question",
            Self::EmptyInput => "empty_input",
            Self::NoLlmConfigured => "no_llm_configured",
            Self::TokenIdsNotSupported => "token_ids_not_supported",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::NoRoute => "no_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::HostNotAllowed => "host_not_allowed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::UnknownCollection => "unknown_collection",
            Self::UnknownDocument => "unknown_document",
            Self::UnknownPassage => "unknown_passage",
            Self::UnknownJob => "unknown_job",
            Self::NoPassages => "no_passages",
            Self::UnreadableDocument => "unreadable_document",
            Self::PassageIdConflict => "passage_id_conflict",
            Self::Conflict => "conflict",
            Self::NotReady => "not_ready",
            Self::Overloaded => "overloaded",
            Self::TooManyConnections => "too_many_connections",
            Self::RequestTimeout => "request_timeout",
            Self::StorageUnavailable => "storage_unavailable",
            Self::EmbeddingFailed => "embedding_failed",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamInvalid => "upstream_invalid",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SearchError> for ServiceError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::UnknownPassage(id) => Self::UnknownPassage(id),
            SearchError::MissingEmbedding(_) => Self::Internal(error.to_string()),
            SearchError::Read(ReadError::Unavailable(problem)) => Self::StorageUnavailable(problem),
            SearchError::Read(ReadError::Refused(problem)) => {
                tracing::error!(problem, "the vector search was refused");
                Self::Internal(problem)
            }
        }
    }
}

impl From<LlmError> for ServiceError {
    fn from(error: LlmError) -> Self {
        let message = error.to_string();
        match error {
            LlmError::Unavailable(_) => Self::UpstreamUnavailable(message),
            LlmError::Timeout(_) => Self::UpstreamTimeout(message),
            LlmError::Invalid(_) => Self::UpstreamInvalid(message),
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
            StoreError::Full(problem) => {
                Self::StorageUnavailable(format!("storage full: {problem}"))
            }
            StoreError::Conflict(problem) => Self::Conflict(problem),
            StoreError::Internal { statement, message } => {
                // The statement and the database's words are for the operator, not the client.
                tracing::error!(%statement, message, "the database refused a statement");
                Self::Internal(format!(
                    "the database refused a statement at {}:{} (the server log has the details)",
                    statement.file(),
                    statement.line()
                ))
            }
            other => Self::Internal(other.to_string()),
        }
    }
}
