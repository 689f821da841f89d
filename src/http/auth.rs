//! API keys. Admin keys may read and write; read keys may only read. When any key is configured,
//! every `/v1`, `/mcp` and `/dify` request must carry one, as `Authorization: Bearer <key>` or
//! `api-key: <key>` (what Qdrant's clients send); the pages, the OpenAPI document and the
//! health checks stay open. Keys are compared in constant time (as SHA-256 digests, so neither
//! their content nor their length leaks through timing) and are never logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::dify::DifyError;
use super::ApiError;
use crate::service::ErrorCode;

/// What a key lets its holder do (ordered: admin is more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Read,
    Admin,
}

/// The configured keys, kept as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Access)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.keys.len())
    }
}

impl ApiKeys {
    /// Empty strings are ignored (an unset environment variable often reads as one).
    pub fn new(admin: &[String], read: &[String]) -> Self {
        let digest = |key: &String| -> [u8; 32] { Sha256::digest(key.as_bytes()).into() };
        let keys = admin
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| (digest(k), Access::Admin))
            .chain(
                read.iter()
                    .filter(|k| !k.is_empty())
                    .map(|k| (digest(k), Access::Read)),
            )
            .collect();
        Self { keys }
    }

    /// Whether no key is configured (every request is let in).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The access `presented` grants, comparing it with every key without stopping early.
    fn access(&self, presented: &str) -> Option<Access> {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut granted = None;
        for (key, access) in &self.keys {
            let difference = key
                .iter()
                .zip(&presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(difference) == 0 {
                granted = granted.max(Some(*access));
            }
        }
        granted
    }
}

/// Whether `path` is behind the keys.
fn is_protected(path: &str) -> bool {
    // `/metrics` names the collections, which the keys otherwise guard.
    path.starts_with("/v1/")
        || path == "/mcp"
        || path == "/dify"
        || path.starts_with("/dify/")
        || path == "/metrics"
}

/// Whether a request changes data (and so needs an admin key).
fn is_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => path.starts_with("/v1/collections/") && path.contains("/documents"),
        _ => true,
    }
}

/// The key a request carries, if any.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer.or_else(|| {
        headers
            .get("api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    })
}

/// Middleware: lets a request through when the keys allow it, else answers 401 or 403.
pub async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if keys.is_open() || !is_protected(path) {
        return next.run(request).await;
    }
    let access = presented_key(request.headers()).and_then(|key| keys.access(key));
    if path.starts_with("/dify") && access.is_none() {
        // Dify's External Knowledge API has its own error codes.
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
            });
        return if bearer {
            DifyError::response(StatusCode::FORBIDDEN, 1002, "Authorization failed")
        } else {
            DifyError::response(
                StatusCode::FORBIDDEN,
                1001,
                "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
            )
        };
    }
    match access {
        None => {
            let message = if presented_key(request.headers()).is_some() {
                "the API key is not valid"
            } else {
                "an API key is required: send `Authorization: Bearer <key>` or `api-key: <key>`"
            };
            let mut response = ApiError::new(ErrorCode::Unauthorized, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Some(Access::Read) if is_write(request.method(), path) => ApiError::new(
            ErrorCode::Forbidden,
            "this key may only read; writing needs an admin key",
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_grant_their_access_and_nothing_else() {
        let keys = ApiKeys::new(&["admin-1".into(), String::new()], &["reader".into()]);
        assert_eq!(keys.access("admin-1"), Some(Access::Admin));
        assert_eq!(keys.access("reader"), Some(Access::Read));
        assert_eq!(keys.access("admin-"), None);
        assert_eq!(keys.access(""), None, "empty keys are not configured");
        assert!(!keys.is_open());
        assert!(ApiKeys::new(&[], &[String::new()]).is_open());
        // A key configured as both is an admin key.
        let both = ApiKeys::new(&["k".into()], &["k".into()]);
        assert_eq!(both.access("k"), Some(Access::Admin));
    }

    #[test]
    fn which_requests_are_protected_and_which_write() {
        assert!(
            is_protected("/v1/search") && is_protected("/mcp") && is_protected("/dify/retrieval")
        );
        assert!(!is_protected("/") && !is_protected("/health") && !is_protected("/openapi.json"));
        assert!(!is_write(&Method::POST, "/v1/search"));
        assert!(!is_write(&Method::POST, "/v1/collections/c/search"));
        assert!(!is_write(&Method::POST, "/v1/embeddings"));
        assert!(is_write(&Method::PUT, "/v1/collections/c"));
        assert!(is_write(&Method::DELETE, "/v1/collections/c/documents/d"));
        assert!(is_write(
            &Method::POST,
            "/v1/collections/c/documents:import"
        ));
    }

    #[test]
    fn keys_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(presented_key(&headers), Some("abc"));
        let mut headers = HeaderMap::new();
        headers.insert("api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&headers), Some("xyz"));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), None);
    }
}
