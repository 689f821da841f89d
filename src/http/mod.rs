//! The HTTP API (JSON over HTTP/1.1): routing, request validation and the wire format.
//!
//! The server starts before the index is ready: `/health` answers at once, `/ready` and the
//! search routes answer 503 until [`AppState::set_ready`] hands over the engine. Work is bounded
//! twice: at most [`Limits::max_in_flight`] searches run at once (more are refused with 503
//! rather than queued without end) and bodies larger than [`Limits::max_body_bytes`] are refused
//! with 413. Query texts go through the [`EmbedQueue`], which batches concurrent questions into
//! shared forward passes.

mod error;
mod routes;
pub mod wire;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit};

pub use error::ApiError;

use crate::embedding::{EmbedQueue, Embedder};
use crate::search::SearchEngine;

/// Bounds on the work one server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body of a search request.
    pub max_body_bytes: usize,
    /// Largest body of an embeddings request, which carries up to 128 passages.
    pub max_embeddings_body_bytes: usize,
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_embeddings_body_bytes: 4 * 1024 * 1024,
            max_in_flight: 64,
        }
    }
}

/// What the search routes need once the index is built.
pub struct Service {
    pub engine: SearchEngine,
    pub queue: EmbedQueue,
    /// For measuring context blocks in tokens.
    pub embedder: Arc<Embedder>,
    pub model: wire::ModelInfo,
}

/// Shared by every request.
pub struct AppState {
    service: OnceLock<Service>,
    permits: Semaphore,
    limits: Limits,
}

impl AppState {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            service: OnceLock::new(),
            permits: Semaphore::new(limits.max_in_flight),
            limits,
        })
    }

    /// Makes the service available; `/ready` answers 200 from now on. A second call is ignored.
    pub fn set_ready(&self, service: Service) {
        if self.service.set(service).is_err() {
            tracing::warn!("the service was already ready; keeping the first index");
        }
    }

    fn service(&self) -> Result<&Service, ApiError> {
        self.service.get().ok_or_else(ApiError::not_ready)
    }

    /// A slot among the requests in progress, held until dropped; 503 when all are taken.
    fn permit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.permits
            .try_acquire()
            .map_err(|_| ApiError::overloaded())
    }
}

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/v1/info", get(routes::info))
        .route(
            "/v1/search",
            get(routes::search_get).post(routes::search_post),
        )
        .route("/v1/passages/{id}", get(routes::passage))
        .route("/v1/passages/{id}/similar", get(routes::similar))
        .route(
            "/v1/embeddings",
            post(routes::embeddings).layer(DefaultBodyLimit::max(
                state.limits.max_embeddings_body_bytes,
            )),
        )
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        took_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    response
}
