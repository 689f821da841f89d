//! The JSON the API reads and writes, and its translation to and from the service's domain
//! types. Kept apart from the domain so the wire format changes only on purpose: nothing in
//! `corpus`, `index`, `search` or `service` knows about serde field names or OpenAPI schemas.
//! One module per resource; everything is re-exported here.

mod answer;
mod chat;
mod collections;
mod documents;
mod embeddings;
mod filters;
mod info;
mod jobs;
mod search;

pub use answer::{
    AnswerCitation, AnswerMode, AnswerRequest, AnswerResponse, AnswerSentenceView, DeltaEvent,
    SourceView, SourcesEvent, TokenUsageView,
};
pub use chat::{
    ChatChoice, ChatCompletion, ChatRequest, ChatResponseMessage, ModelList, ModelView,
    UrlCitation, UrlCitationAnnotation, DEFAULT_MODEL, MAX_MESSAGES,
};
pub use collections::{CollectionList, CollectionView};
pub use documents::{
    Deleted, DocumentBody, DocumentFileQuery, DocumentFormat, DocumentList, DocumentListQuery,
    DocumentSummary, DocumentView, PutDocumentResponse,
};
pub use embeddings::{
    EmbeddingData, EmbeddingVector, EmbeddingsInput, EmbeddingsRequest, EmbeddingsResponse,
    EncodingFormat, InputType, NonBlank, Usage,
};
pub use filters::FilterBody;
pub use info::{Info, ModelInfo, Status};
pub use jobs::{JobDocuments, JobLineError, JobView};
pub use search::{
    CitationView, ComponentScores, ContextBudget, ContextCitationView, ContextView, DocumentRef,
    Mode, PassageView, PositionView, ScoredPassage, SearchQuery, SearchRequest, SearchResponse,
    SimilarQuery, SimilarResponse,
};

/// Milliseconds, rounded to the microsecond.
fn milliseconds(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
