//! The HTTP API (JSON over HTTP/1.1): routing, request validation, API keys and the wire format.
//! Handlers call the service core ([`Wenda`]) and nothing else.
//!
//! The server starts before the collections are loaded: `/health` answers at once, `/ready` and
//! the API answer 503 until [`AppState::set_ready`] hands over the core. Bodies larger than
//! their route's limit are refused with 413; the core bounds the work in progress.

mod auth;
mod dify;
mod error;
mod import;
mod mcp;
mod openapi;
mod pages;
mod routes;
pub mod wire;

use std::future::{Future, IntoFuture};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Extension, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

pub use auth::ApiKeys;
pub use error::ApiError;

use crate::service::Wenda;

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_embeddings_body_bytes: 4 * 1024 * 1024,
            max_document_bytes: 16 * 1024 * 1024,
            max_import_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Shared by every request.
pub struct AppState {
    core: OnceLock<Arc<Wenda>>,
    limits: Limits,
}

impl AppState {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            core: OnceLock::new(),
            limits,
        })
    }

    /// Makes the core available; `/ready` answers 200 from now on. A second call is ignored.
    pub fn set_ready(&self, core: Arc<Wenda>) {
        if self.core.set(core).is_err() {
            tracing::warn!("the service was already ready; keeping the first");
        }
    }

    fn core(&self) -> Result<&Arc<Wenda>, ApiError> {
        self.core.get().ok_or_else(ApiError::not_ready)
    }
}

/// All routes. Each is added from its handler's `#[utoipa::path]` (path, method and
/// description in one place), which also makes it part of the OpenAPI document served at
/// `/openapi.json`, so the router serves nothing the document leaves out. `allowed_hosts` are
/// the `Host` values `/mcp` accepts (empty: loopback names only; `*`: any); `keys` guard the API.
pub fn router(state: Arc<AppState>, allowed_hosts: &[String], keys: ApiKeys) -> Router {
    let limits = state.limits;
    let mcp = mcp::service(Arc::clone(&state), allowed_hosts, limits.max_body_bytes);
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(pages::search_page))
        .routes(routes!(pages::docs_page))
        .routes(routes!(openapi::document))
        .routes(routes!(routes::health))
        .routes(routes!(routes::ready))
        .routes(routes!(routes::info))
        .routes(limit_body(
            routes!(routes::search_get, routes::search_post),
            limits.max_body_bytes,
        ))
        .routes(routes!(routes::passage))
        .routes(routes!(routes::similar))
        .routes(routes!(routes::list_collections))
        .routes(routes!(
            routes::get_collection,
            routes::put_collection,
            routes::delete_collection
        ))
        .routes(limit_body(
            routes!(
                routes::collection_search_get,
                routes::collection_search_post
            ),
            limits.max_body_bytes,
        ))
        .routes(routes!(routes::collection_passage))
        .routes(routes!(routes::collection_similar))
        .routes(routes!(routes::list_documents))
        .routes(limit_body(
            routes!(
                routes::get_document,
                routes::put_document,
                routes::delete_document
            ),
            limits.max_document_bytes,
        ))
        .routes(limit_body(
            routes!(routes::import_documents),
            limits.max_import_bytes,
        ))
        .routes(routes!(routes::job))
        .routes(limit_body(
            routes!(routes::embeddings),
            limits.max_embeddings_body_bytes,
        ))
        .routes(limit_body(routes!(mcp::endpoint), limits.max_body_bytes))
        .routes(limit_body(routes!(dify::retrieval), limits.max_body_bytes))
        .split_for_parts();
    router
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(Extension(openapi::ServedDocument(Arc::new(document))))
        .layer(Extension(Arc::new(mcp)))
        .layer(middleware::from_fn(refuse_undecodable_query))
        .layer(middleware::from_fn_with_state(keys, auth::require_key))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
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
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the query string is not UTF-8 once its %-escapes are decoded",
        )
        .into_response();
    }
    next.run(request).await
}

/// Bodies a refused request may still send that are read and discarded (see
/// [`refuse_oversized`]); beyond this the connection is simply closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

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

/// Answers 413 to a body whose declared length exceeds `limit`, after reading and discarding it.
/// Closing a connection with unread data makes the kernel reset it, and a client that sends its
/// whole body before reading the answer (most do) would then get a reset instead of the 413.
async fn refuse_oversized(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    match declared {
        Some(length) if length > limit => {
            if length <= DRAIN_LIMIT {
                let _ = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT).await;
            }
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body has {length} bytes; this route accepts at most {limit}"),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> std::io::Result<()> {
    let (begun, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = begun.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown);
    // Requests in flight get `deadline` to finish; a client that stalls (a body that never
    // arrives) does not hold the process up beyond it.
    let expired = async move {
        if begun_rx.await.is_ok() {
            tokio::time::sleep(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server.into_future() => served,
        () = expired => {
            tracing::warn!(
                deadline_s = deadline.as_secs_f64(),
                "requests still in flight at the shutdown deadline are dropped"
            );
            Ok(())
        }
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
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    tracing::info!(
        request_id = %id,
        %method,
        path,
        status = response.status().as_u16(),
        took_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
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
