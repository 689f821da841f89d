//! API keys and the access each route needs. Admin keys may read and write; read keys may only
//! read. Every route is added to the router with the [`Access`] it needs (see
//! [`GuardedRouter`], the only way to add one), and its guard compares that with what the
//! request's key grants, so a route's access is declared, never guessed from its path or
//! method. When any key is configured, a key is sent as `Authorization: Bearer <key>` or
//! `api-key: <key>` (what Qdrant's clients send). Keys are compared in constant time (as
//! SHA-256 digests, so neither their content nor their length leaks through timing) and are
//! never logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use super::ApiError;
use crate::service::ErrorCode;

/// What a route or MCP tool needs from the caller, and what a caller's key grants (ordered:
/// admin is more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone, with a key or without: the pages, the OpenAPI document, the health checks.
    Public,
    /// Any valid key: everything that only reads.
    Read,
    /// An admin key: everything that writes.
    Admin,
}

impl Access {
    /// Its name in the OpenAPI document (`x-wenda-access`) and in MCP tools' `_meta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Read => "read",
            Access::Admin => "admin",
        }
    }
}

/// The field naming an operation's or a tool's access, for clients and tests.
pub const ACCESS_FIELD: &str = "x-wenda-access";

/// What the request's key grants, handed to the handler behind the guard: the MCP endpoint
/// checks each tool call against it.
#[derive(Debug, Clone, Copy)]
pub struct Granted(pub Access);

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No key was sent.
    Missing,
    /// The key sent is not a configured one.
    Invalid,
    /// A read key, where an admin key is needed.
    ReadOnly,
}

/// How a route answers a refusal: [`refuse`] (the API's errors) unless its protocol has its
/// own (Dify's).
pub type Refuse = fn(Refusal, &HeaderMap) -> Response;

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

    /// What a request with `headers` may do, or why it may not do what needs `needed`. With no
    /// key configured, everything is granted.
    fn admit(&self, needed: Access, headers: &HeaderMap) -> Result<Access, Refusal> {
        if self.is_open() {
            return Ok(Access::Admin);
        }
        let presented = presented_key(headers);
        let granted = presented
            .and_then(|key| self.access(key))
            .unwrap_or(Access::Public);
        match granted {
            granted if granted >= needed => Ok(granted),
            Access::Public if presented.is_some() => Err(Refusal::Invalid),
            Access::Public => Err(Refusal::Missing),
            _ => Err(Refusal::ReadOnly),
        }
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

impl Refusal {
    /// The API's error for it.
    pub fn error(self) -> ApiError {
        match self {
            Refusal::Missing => ApiError::new(
                ErrorCode::Unauthorized,
                "an API key is required: send `Authorization: Bearer <key>` or `api-key: <key>`",
            ),
            Refusal::Invalid => ApiError::new(ErrorCode::Unauthorized, "the API key is not valid"),
            Refusal::ReadOnly => ApiError::new(
                ErrorCode::Forbidden,
                "this key may only read; writing needs an admin key",
            ),
        }
    }
}

/// A refusal as the API answers it: 401 (with `WWW-Authenticate: Bearer`) without a valid
/// key, 403 with a read key where writing needs an admin key.
pub fn refuse(refusal: Refusal, _headers: &HeaderMap) -> Response {
    let mut response = refusal.error().into_response();
    if refusal != Refusal::ReadOnly {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// One route's guard: the keys, the access the route needs and how it refuses.
#[derive(Clone)]
struct Guard {
    keys: ApiKeys,
    needed: Access,
    refuse: Refuse,
}

/// Middleware: lets a request through when its key grants what the route needs (telling the
/// handler what it grants), else answers the route's refusal.
async fn require_access(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    if guard.needed == Access::Public {
        return next.run(request).await;
    }
    match guard.keys.admit(guard.needed, request.headers()) {
        Ok(granted) => {
            request.extensions_mut().insert(Granted(granted));
            next.run(request).await
        }
        Err(refusal) => (guard.refuse)(refusal, request.headers()),
    }
}

/// The API's routes, each added with the access it needs. Adding a route takes an [`Access`],
/// so none can be served without one; the same call guards the route and writes its access
/// into the OpenAPI document (`x-wenda-access` and `security` on each operation), so the
/// document and the router cannot disagree. The guard is the route's outermost layer: a refused
/// request takes no in-flight slot and has no body read.
pub struct GuardedRouter<S> {
    router: OpenApiRouter<S>,
    keys: ApiKeys,
}

impl<S: Clone + Send + Sync + 'static> GuardedRouter<S> {
    pub fn new(document: Document, keys: ApiKeys) -> Self {
        Self {
            router: OpenApiRouter::with_openapi(document),
            keys,
        }
    }

    /// Adds `route` (all its methods), open to callers whose key grants `needed`.
    pub fn add(self, needed: Access, route: UtoipaMethodRouter<S>) -> Self {
        self.add_refusing(needed, refuse, route)
    }

    /// Like [`Self::add`], with refusals answered by `refuse` (for a protocol with its own
    /// error format).
    pub fn add_refusing(
        mut self,
        needed: Access,
        refuse: Refuse,
        (schemas, mut paths, route): UtoipaMethodRouter<S>,
    ) -> Self {
        for operation in paths.paths.values_mut().flat_map(operations) {
            declare(operation, needed);
        }
        let guard = Guard {
            keys: self.keys.clone(),
            needed,
            refuse,
        };
        // A route layer: methods the route lacks still get 405, whatever the key.
        let route = route.route_layer(middleware::from_fn_with_state(guard, require_access));
        self.router = self.router.routes((schemas, paths, route));
        self
    }

    pub fn split_for_parts(self) -> (Router<S>, Document) {
        self.router.split_for_parts()
    }
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}

/// Writes `needed` into `operation`: as `x-wenda-access`, and as its security requirement
/// (none for public operations; the API key, with the role it needs, for the others).
fn declare(operation: &mut Operation, needed: Access) {
    operation
        .extensions
        .get_or_insert_with(Default::default)
        .insert(ACCESS_FIELD.into(), needed.as_str().into());
    operation.security = Some(vec![match needed {
        Access::Public => SecurityRequirement::default(),
        _ => SecurityRequirement::new("api_key", [needed.as_str()]),
    }]);
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
    fn requests_are_admitted_by_what_the_route_needs() {
        let keys = ApiKeys::new(&["admin".into()], &["reader".into()]);
        let with = |key: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(key) = key {
                headers.insert("api-key", HeaderValue::from_static(key));
            }
            headers
        };
        let admit = |needed, key| keys.admit(needed, &with(key));
        assert_eq!(admit(Access::Read, None), Err(Refusal::Missing));
        assert_eq!(admit(Access::Read, Some("wrong")), Err(Refusal::Invalid));
        assert_eq!(admit(Access::Read, Some("reader")), Ok(Access::Read));
        assert_eq!(admit(Access::Read, Some("admin")), Ok(Access::Admin));
        assert_eq!(admit(Access::Admin, Some("reader")), Err(Refusal::ReadOnly));
        assert_eq!(admit(Access::Admin, Some("wrong")), Err(Refusal::Invalid));
        assert_eq!(admit(Access::Admin, Some("admin")), Ok(Access::Admin));
        // Without keys, everyone may do everything.
        assert_eq!(
            ApiKeys::default().admit(Access::Admin, &with(None)),
            Ok(Access::Admin)
        );
    }

    #[test]
    fn operations_carry_their_access_in_the_document() {
        let mut operation = Operation::default();
        declare(&mut operation, Access::Admin);
        let json = serde_json::to_value(&operation).unwrap();
        assert_eq!(json[ACCESS_FIELD], "admin");
        assert_eq!(
            json["security"],
            serde_json::json!([{"api_key": ["admin"]}])
        );
        declare(&mut operation, Access::Public);
        let json = serde_json::to_value(&operation).unwrap();
        assert_eq!(json[ACCESS_FIELD], "public");
        assert_eq!(json["security"], serde_json::json!([{}]));
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
