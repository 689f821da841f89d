//! The HTTP API (JSON over HTTP/1.1): routing, request validation, API keys and the wire format.
//! Handlers call the service ([`Service`]) and nothing else.
//!
//! The server starts before the collections are loaded: `/health` answers at once, `/ready` and
//! the API answer 503 until [`AppState::set_ready`] hands over the service. Bodies larger than
//! their route's limit are refused with 413; the service bounds the work in progress.

mod answers;
mod auth;
mod dify;
mod error;
mod hosts;
mod import;
mod mcp;
mod metrics;
mod openapi;
mod pages;
mod routes;
mod transport;
pub mod wire;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use utoipa::OpenApi;
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use auth::Access::{Admin, Public, Read};
pub use auth::ApiKeys;
use auth::GuardedRouter;
pub use error::{status_of, ApiError};
pub use hosts::Exposure;
pub use transport::{serve, Transport, OVERFLOW_CONNECTIONS};

use crate::service::{ErrorCode, Service};

/// Bounds on the requests one server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body of a search request.
    pub max_body_bytes: usize,
    /// Largest body of an embeddings request, which carries up to 128 passages.
    pub max_embeddings_body_bytes: usize,
    /// Largest body of a document write.
    pub max_document_bytes: usize,
    /// Largest body of an import (NDJSON or uploaded files).
    pub max_import_bytes: usize,
    /// Requests handled at once; more are refused with 503 `overloaded` before their bodies
    /// are read, so held bodies cannot pile up in memory.
    pub max_in_flight: usize,
    /// Longest wait for the next piece of a body (408 `body_timeout` beyond).
    pub body_timeout: Duration,
    /// Longest a search (any route that reads) may take, body included (504
    /// `request_timeout` beyond).
    pub request_timeout: Duration,
    /// Longest an answer may take: with an LLM, the request timeout plus two calls to it
    /// (condensing a follow-up, then answering).
    pub answer_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_embeddings_body_bytes: 4 * 1024 * 1024,
            max_document_bytes: 16 * 1024 * 1024,
            max_import_bytes: 256 * 1024 * 1024,
            max_in_flight: 64,
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// These limits with answers given time for two calls to an LLM answering within
    /// `llm_timeout` (condensing a follow-up, then answering), beside the request timeout.
    pub fn with_llm_timeout(self, llm_timeout: Duration) -> Self {
        Self {
            answer_timeout: self.request_timeout + 2 * llm_timeout,
            ..self
        }
    }
}

/// Shared by every request.
pub struct AppState {
    service: OnceLock<Arc<Service>>,
    limits: Limits,
    /// One permit per request being handled (see [`Limits::max_in_flight`]).
    in_flight: Arc<Semaphore>,
}

impl AppState {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            service: OnceLock::new(),
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        })
    }

    /// Makes the service available; `/ready` answers 200 from now on. A second call is ignored.
    pub fn set_ready(&self, service: Arc<Service>) {
        ::metrics::gauge!("wenda_model_info", "model" => service.model().id.clone()).set(1.0);
        if self.service.set(service).is_err() {
            tracing::warn!("the service was already ready; keeping the first");
        }
    }

    fn service(&self) -> Result<&Arc<Service>, ApiError> {
        self.service.get().ok_or_else(ApiError::not_ready)
    }
}

/// Who may call the API: the names and origins it answers, and the keys it asks for.
pub struct Access {
    pub exposure: Arc<Exposure>,
    pub keys: ApiKeys,
}

/// All routes. Each is added from its handler's `#[utoipa::path]` (path, method and
/// description in one place), which also makes it part of the OpenAPI document served at
/// `/openapi.json`, so the router serves nothing the document leaves out; and each is added
/// with the access it needs ([`GuardedRouter`]), which its guard checks and the document shows.
/// Handlers of one path that need different access are added apart (axum merges them).
///
/// Layers, outermost first: request id, access log and metrics; JSON bodies for bare errors;
/// `Host` and `Origin`; CORS; UTF-8 query strings; the body timeout; then, per route, the
/// access guard, the in-flight limit (taken before any body is read), the declared body size,
/// the request timeout (reading routes) and the body size limit.
pub fn router(state: Arc<AppState>, access: Access) -> Router {
    metrics::handle();
    let limits = state.limits;
    let mcp = mcp::service(Arc::clone(&state), limits.max_body_bytes);
    let work = |route| admitted(route, &state);
    let reading = |route| admitted(timed(route, limits.request_timeout), &state);
    let body = |route, bytes| admitted(limit_body(route, bytes), &state);
    let reading_body = |route, bytes| {
        admitted(
            limit_body(timed(route, limits.request_timeout), bytes),
            &state,
        )
    };
    let answering = |route| {
        admitted(
            limit_body(timed(route, limits.answer_timeout), limits.max_body_bytes),
            &state,
        )
    };
    let (router, document) = GuardedRouter::new(openapi::ApiDoc::openapi(), access.keys)
        .add(Public, routes!(pages::search_page))
        .add(Public, routes!(pages::docs_page))
        .add(Public, routes!(openapi::document))
        .add(Public, routes!(routes::health))
        .add(Public, routes!(routes::ready))
        // `/metrics` names the collections, which the keys otherwise guard.
        .add(Read, routes!(metrics::render))
        .add(Read, routes!(routes::info))
        .add(
            Read,
            reading_body(
                routes!(routes::search_get, routes::search_post),
                limits.max_body_bytes,
            ),
        )
        .add(Read, answering(routes!(answers::answer_post)))
        .add(Read, answering(routes!(answers::collection_answer_post)))
        .add(Read, answering(routes!(answers::chat_completions)))
        .add(Read, work(routes!(answers::models)))
        .add(Read, reading(routes!(routes::passage)))
        .add(Read, reading(routes!(routes::similar)))
        .add(Read, work(routes!(routes::list_collections)))
        .add(Read, work(routes!(routes::get_collection)))
        .add(
            Admin,
            work(routes!(routes::put_collection, routes::delete_collection)),
        )
        .add(
            Read,
            reading_body(
                routes!(
                    routes::collection_search_get,
                    routes::collection_search_post
                ),
                limits.max_body_bytes,
            ),
        )
        .add(Read, reading(routes!(routes::collection_passage)))
        .add(Read, reading(routes!(routes::collection_similar)))
        .add(Read, work(routes!(routes::list_documents)))
        .add(
            Read,
            body(routes!(routes::get_document), limits.max_document_bytes),
        )
        .add(
            Admin,
            body(
                routes!(routes::put_document, routes::delete_document),
                limits.max_document_bytes,
            ),
        )
        .add(
            Admin,
            body(routes!(routes::import_documents), limits.max_import_bytes),
        )
        .add(Read, routes!(routes::job))
        .add(
            Read,
            body(
                routes!(routes::embeddings),
                limits.max_embeddings_body_bytes,
            ),
        )
        // Each tool call is checked against its tool's access too (see `mcp`).
        .add(
            Read,
            reading_body(routes!(mcp::endpoint), limits.max_body_bytes),
        )
        .add_refusing(
            Read,
            dify::refuse,
            reading_body(routes!(dify::retrieval), limits.max_body_bytes),
        )
        .split_for_parts();
    let mut router = router
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(Extension(openapi::ServedDocument(Arc::new(document))))
        .layer(Extension(Arc::clone(&access.exposure)))
        .layer(Extension(Arc::new(mcp)))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(middleware::from_fn(refuse_undecodable_query));
    if let Some(cors) = access.exposure.cors() {
        router = router.layer(cors);
    }
    router
        .layer(middleware::from_fn_with_state(
            access.exposure,
            hosts::check,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Puts `route` under the in-flight limit, taken before its body is read.
fn admitted(
    (schemas, paths, route): UtoipaMethodRouter<Arc<AppState>>,
    state: &Arc<AppState>,
) -> UtoipaMethodRouter<Arc<AppState>> {
    let route = route.layer(middleware::from_fn_with_state(Arc::clone(state), admit));
    (schemas, paths, route)
}

/// Answers 503 `overloaded` when [`Limits::max_in_flight`] requests are being handled;
/// otherwise holds a slot until the answer is made.
async fn admit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match Arc::clone(&state.in_flight).try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => refuse_unread(request, ApiError::overloaded()).await,
    }
}

/// Gives `route` the request timeout: a search that takes longer is answered 504.
fn timed(
    (schemas, paths, route): UtoipaMethodRouter<Arc<AppState>>,
    timeout: Duration,
) -> UtoipaMethodRouter<Arc<AppState>> {
    let route = route.layer(TimeoutLayer::with_status_code(
        status_of(ErrorCode::RequestTimeout),
        timeout,
    ));
    (schemas, paths, route)
}

/// Gives a JSON error body to error answers that are not JSON (a timeout layer's empty ones,
/// the MCP SDK's plain-text refusals), keeping their text as the message, so every error a
/// client gets from the router is JSON with a code; on `/mcp`, errors are given in JSON-RPC
/// form, which is what MCP clients read.
async fn json_errors(request: Request, next: Next) -> Response {
    let on_mcp = request.uri().path() == mcp::PATH;
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let (parts, body) = response.into_parts();
    let error = match parts.extensions.get::<ApiError>() {
        Some(error) => error.clone(),
        None if is_json => return Response::from_parts(parts, body),
        None => {
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
                .unwrap_or_default();
            let mut error = ApiError::for_status(status);
            if !text.is_empty() {
                error.message = text;
            }
            error
        }
    };
    let mut answer = if on_mcp {
        mcp::json_rpc_error(&error)
    } else {
        error.into_response()
    };
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// Answers 400 to a query string whose percent-escapes do not decode to UTF-8: the query
/// extractor would replace the bytes with U+FFFD and search for that instead.
async fn refuse_undecodable_query(request: Request, next: Next) -> Response {
    let undecodable = request.uri().query().is_some_and(|query| {
        percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_err()
    });
    if undecodable {
        return ApiError::new(
            ErrorCode::BadRequest,
            "the query string is not UTF-8 once its %-escapes are decoded",
        )
        .into_response();
    }
    next.run(request).await
}

/// Bodies a refused request may still send that are read and discarded after the answer (see
/// [`refuse_unread`]); beyond this the connection is simply closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Bodies of refused requests up to this size are read (and thrown away) before the answer, as
/// they have usually arrived with the head: the connection then stays open for the next request.
const SMALL_BODY: u64 = 64 * 1024;

/// Answers `error` without keeping the request's body. A small body is read and dropped first.
/// A larger one is not waited for: the answer goes at once, with the connection closed after
/// it, and the body is read and thrown away in the background (up to [`DRAIN_LIMIT`], within
/// the body timeout), as servers do in a "lingering close": closing a connection with unread
/// data makes the kernel reset it, and a client still sending would get the reset instead of
/// the answer.
async fn refuse_unread(request: Request, error: ApiError) -> Response {
    let declared = declared_length(&request);
    let body = request.into_body();
    match declared {
        None | Some(0) => error.into_response(),
        Some(length) if length <= SMALL_BODY => {
            discard(body, SMALL_BODY).await;
            error.into_response()
        }
        Some(length) => {
            if length <= DRAIN_LIMIT {
                tokio::spawn(discard(body, DRAIN_LIMIT));
            }
            let mut response = error.into_response();
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// The body length the request's `Content-Length` declares.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok())
}

/// Reads `body` to its end (or `limit` bytes, or an error such as the body timeout), keeping
/// nothing.
async fn discard(mut body: axum::body::Body, limit: u64) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |data| data.len() as u64);
        if read > limit {
            break;
        }
    }
}

/// Caps the bodies `route` accepts at `limit` bytes: the extractors stop reading there, and a
/// body declared larger is refused before the handler runs.
fn limit_body(
    (schemas, paths, route): UtoipaMethodRouter<Arc<AppState>>,
    limit: usize,
) -> UtoipaMethodRouter<Arc<AppState>> {
    let route: MethodRouter<Arc<AppState>> =
        route
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn(move |request, next| {
                refuse_oversized(limit, request, next)
            }));
    (schemas, paths, route)
}

/// Answers 413 at once to a body whose declared length exceeds `limit`.
async fn refuse_oversized(limit: usize, request: Request, next: Next) -> Response {
    match declared_length(&request) {
        Some(length) if length > limit as u64 => {
            let error = ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body has {length} bytes; this route accepts at most {limit}"),
            );
            refuse_unread(request, error).await
        }
        _ => next.run(request).await,
    }
}

/// The header that carries a request's id, in both directions.
const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id (the client's `x-request-id` when it is a short token, else a new
/// one), returns it in the answer, logs the request with it at info level, and adds the
/// headers every answer carries: no MIME sniffing, and no caching of API answers (which
/// change with every write and may be private).
async fn log_request(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(new_request_id, str::to_owned);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // Metrics are labelled by route (`/v1/collections/{collection}`), never by path, so ids
    // in paths cannot grow the label set without bound.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |matched| matched.as_str())
        .to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %id);
    let in_flight = ::metrics::gauge!("wenda_http_requests_in_flight");
    in_flight.increment(1.0);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    in_flight.decrement(1.0);
    let took = started.elapsed();
    let status = response.status().as_u16();
    let code = response
        .extensions()
        .get::<ApiError>()
        .map(|error| error.code);
    tracing::info!(
        request_id = %id,
        %method,
        path,
        status,
        code = code.map(ErrorCode::as_str),
        took_ms = took.as_secs_f64() * 1e3,
        "request"
    );
    let method = method.to_string();
    ::metrics::counter!("wenda_http_requests_total", "route" => route.clone(),
        "method" => method.clone(), "status" => status.to_string())
    .increment(1);
    ::metrics::histogram!("wenda_http_request_duration_seconds", "route" => route,
        "method" => method)
    .record(took.as_secs_f64());
    if let Some(code) = code {
        ::metrics::counter!("wenda_http_errors_total", "code" => code.as_str()).increment(1);
    }
    let headers = response.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if path.starts_with("/v1/") || path == "/dify/retrieval" {
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(header::HeaderValue::from_static("no-store"));
    }
    response
}

/// A new request id: this process's start time and a counter, in hex, so ids from replicas
/// started at different times do not collide.
fn new_request_id() -> String {
    static STARTED: OnceLock<u64> = OnceLock::new();
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let started = *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_micros() as u64)
    });
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{started:x}-{count:x}")
}
