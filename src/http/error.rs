//! Every failure the API reports, as `{"error": {"code", "message"}}` with a fitting status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::ServiceError;

/// An error response. `code` is stable and meant for programs; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `empty_query`, `invalid_request`, `unknown_collection`,
    /// `unknown_document`, `unknown_passage`, `not_ready`, `unauthorized`, …
    #[schema(example = "invalid_request")]
    pub code: String,
    /// For people: what was wrong and what is accepted.
    #[schema(example = "top_k must be between 1 and 100, got 0")]
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A field that parsed but has a value the API does not accept.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the index is still being built; retry when GET /ready answers 200",
        )
    }

    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests are in progress; retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::JsonSyntaxError(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "malformed_json")
            }
            JsonRejection::JsonDataError(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (rejection.status(), "bad_request"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), "bad_path", rejection.body_text())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let status = match &error {
            ServiceError::EmptyQuery | ServiceError::EmptyInput(_) => StatusCode::BAD_REQUEST,
            ServiceError::Invalid(_)
            | ServiceError::InvalidName(_)
            | ServiceError::NoPassages(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::UnknownCollection(_)
            | ServiceError::UnknownPassage(_)
            | ServiceError::UnknownDocument { .. }
            | ServiceError::UnknownJob(_) => StatusCode::NOT_FOUND,
            ServiceError::PassageConflict { .. } => StatusCode::CONFLICT,
            ServiceError::Overloaded | ServiceError::StorageUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ServiceError::EmbeddingFailed(_) | ServiceError::Internal(_) => {
                tracing::error!(%error, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, error.code(), error.to_string())
    }
}

/// A JSON object body deserialised into `T`. Unlike `axum::Json`, it refuses a top-level array,
/// which serde would otherwise read as a struct's fields in order (`["q"]` as `{"query": "q"}`).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|error| ApiError::invalid(format!("invalid body: {error}")))
    }
}
