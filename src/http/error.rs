//! Every failure the API reports, as `{"error": {"code", "message"}}` with a fitting status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::{ErrorCode, ServiceError};

/// An error response. `code` is stable and meant for programs; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
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
    /// `unknown_document`, `unknown_passage`, `not_ready`, `unauthorized`, … (the table in
    /// docs/api.md lists them all).
    #[schema(example = "invalid_request")]
    pub code: String,
    /// For people: what was wrong and what is accepted.
    #[schema(example = "top_k must be between 1 and 100, got 0")]
    pub message: String,
}

/// The HTTP status each code is answered with.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::BadRequest
        | C::BadPath
        | C::EmptyQuery
        | C::EmptyQuestion
        | C::EmptyInput
        | C::NoLlmConfigured => StatusCode::BAD_REQUEST,
        C::MalformedJson
        | C::InvalidRequest
        | C::InvalidName
        | C::InvalidCursor
        | C::NoPassages
        | C::UnreadableDocument
        | C::TokenIdsNotSupported => StatusCode::UNPROCESSABLE_ENTITY,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        C::NoRoute
        | C::UnknownCollection
        | C::UnknownDocument
        | C::UnknownPassage
        | C::UnknownJob => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::Forbidden | C::HostNotAllowed | C::OriginNotAllowed => StatusCode::FORBIDDEN,
        C::PassageIdConflict | C::Conflict => StatusCode::CONFLICT,
        C::NotReady | C::Overloaded | C::TooManyConnections | C::StorageUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        C::RequestTimeout | C::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        C::UpstreamUnavailable | C::UpstreamInvalid => StatusCode::BAD_GATEWAY,
        C::EmbeddingFailed | C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error answered with its code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
        }
    }

    /// A field that parsed but has a value the API does not accept.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_ready() -> Self {
        Self::new(
            ErrorCode::NotReady,
            "the index is still being built; retry when GET /ready answers 200",
        )
    }

    pub fn overloaded() -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "too many requests are in progress; retry shortly",
        )
    }

    /// The error a response of `status` that came without a body stands for (an answer of
    /// the transport's own, such as a timeout layer's): the code of that status, keeping it.
    pub fn for_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NoRoute,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::BodyTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Overloaded,
            StatusCode::GATEWAY_TIMEOUT => ErrorCode::RequestTimeout,
            status if status.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        };
        Self {
            status,
            code,
            message: status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        }
    }
}

impl ApiError {
    /// What the client is told.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().into(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let kept = self.clone();
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is a state that passes (loading, overload, a database away).
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        // For the access log and metrics (which count errors by code) and for `/mcp`, whose
        // errors are re-rendered in JSON-RPC form.
        response.extensions_mut().insert(kept);
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(_) => ErrorCode::MalformedJson,
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidRequest,
            JsonRejection::BytesRejection(rejection) => {
                return Self::from_body_error(rejection, rejection.body_text())
            }
            _ => ErrorCode::BadRequest,
        };
        Self::new(code, rejection.body_text())
    }
}

impl ApiError {
    /// A body that could not be read: too long, too slow (the body timeout), or cut off.
    pub fn from_body_error(error: &(dyn std::error::Error + 'static), message: String) -> Self {
        let mut source = Some(error);
        while let Some(error) = source {
            if error.is::<tower_http::timeout::TimeoutError>() {
                return Self::new(
                    ErrorCode::BodyTimeout,
                    "the body did not arrive in time (see --body-timeout)",
                );
            }
            if error.is::<http_body_util::LengthLimitError>() {
                return Self::new(ErrorCode::PayloadTooLarge, message);
            }
            source = error.source();
        }
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(ErrorCode::BadPath, rejection.body_text())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        if matches!(
            error,
            ServiceError::EmbeddingFailed(_) | ServiceError::Internal(_)
        ) {
            tracing::error!(%error, "request failed");
        }
        Self::new(error.code(), error.to_string())
    }
}

/// A JSON object body deserialised into `T`. Unlike `axum::Json`, it refuses a top-level array,
/// which serde would otherwise read as a struct's fields in order (`["q"]` as `{"query": "q"}`),
/// and an object with the same key twice at any depth (a parser keeping the last would let a
/// proxy that checks the first one see another request than the one served).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(Unique(value)) = axum::Json::<Unique>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        serde_path_to_error::deserialize(value)
            .map(Body)
            .map_err(|error| ApiError::invalid(field_error(&error)))
    }
}

/// A body field serde could not read, named by its path, in the API's words rather than Rust's:
/// "top_k: invalid value: integer `-1`, expected a whole number from 0", never "expected usize".
fn field_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    const RUST_TYPES: [(&str, &str); 8] = [
        ("expected usize", "expected a whole number from 0"),
        ("expected u64", "expected a whole number from 0"),
        ("expected u32", "expected a whole number from 0"),
        ("expected u16", "expected a whole number from 0"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
    ];
    let mut message = error.inner().to_string();
    for (rust, plain) in RUST_TYPES {
        message = message.replace(rust, plain);
    }
    if let Some(at) = message.find("expected struct ") {
        message.replace_range(at.., "expected an object");
    }
    match error.path().to_string().as_str() {
        "." => format!("invalid body: {message}"),
        path => format!("{path}: {message}"),
    }
}

/// A JSON value whose objects have each key once: a repeated key is an error naming it.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears more than once"
                )));
            }
            let Unique(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(serde_json::Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API reference's error table lists every code, in a row of the status it is answered
    /// with.
    #[test]
    fn every_code_is_in_the_readme_under_its_status() {
        let readme = include_str!("../../docs/api.md");
        for code in ErrorCode::ALL {
            let status = status_of(code).as_u16().to_string();
            let listed = readme.lines().any(|line| {
                line.starts_with(&format!("| {status} |"))
                    && line.contains(&format!("`{}`", code.as_str()))
            });
            assert!(listed, "docs/api.md: no `| {status} |` row lists `{code}`");
        }
    }
}
