//! The connection loop under the router: hyper's HTTP/1.1 server with a header timeout, a cap
//! on open connections, and a graceful shutdown with a deadline.
//!
//! `axum::serve` accepts every connection and never times one out, so 2,000 idle sockets or one
//! client sending a header byte a second hold the server's file descriptors for ever. Here each
//! connection is served by `hyper::server::conn::http1` with `header_read_timeout`, which hyper
//! also runs while a kept-alive connection waits for its next request: a client that does not
//! send a whole request head within the timeout is closed. Connections beyond the cap are not
//! left waiting in the kernel's backlog: a few are still served, one request each, by
//! [`overflow_router`] (which answers `/health`, so a liveness probe does not restart a server
//! that is merely full, and 503 `too_many_connections` to everything else); beyond those, new
//! connections are closed at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{metrics, ApiError};
use crate::service::ErrorCode;

/// How connections are accepted, timed out and closed.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Connections served at once; more get [`overflow_router`]'s answers.
    pub max_connections: usize,
    /// Time a client has to send a request's head, and the longest a kept-alive connection
    /// may wait idle for its next request.
    pub header_timeout: Duration,
    /// Time requests in flight get to finish after shutdown begins; connections still open
    /// then are closed.
    pub shutdown_timeout: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            max_connections: 1_024,
            header_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections over the cap that are still answered (one request each) before new ones are
/// closed unanswered. Each holds a file descriptor, so the process's limit must cover them too.
pub const OVERFLOW_CONNECTIONS: usize = 64;

/// The most time an overflow connection gets to send its request.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish for at most `transport.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    transport: Transport,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(transport.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(transport.header_timeout);
    let mut refusing = hyper::server::conn::http1::Builder::new();
    refusing
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_HEADER_TIMEOUT)
        .keep_alive(false);
    let service = TowerToHyperService::new(router);
    let refusal = TowerToHyperService::new(overflow_router());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors (or a connection reset before it was accepted):
                    // wait for some to close rather than spin on the error.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(stream);
        if let Ok(permit) = Arc::clone(&connections).try_acquire_owned() {
            let connection = graceful.watch(http.serve_connection(io, service.clone()));
            tokio::spawn(async move {
                let _open = metrics::OpenConnection::new();
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&overflow).try_acquire_owned() {
            metrics::connection_refused("answered");
            let connection = graceful.watch(refusing.serve_connection(io, refusal.clone()));
            tokio::spawn(async move {
                let _ = connection.await;
                drop(permit);
            });
        } else {
            metrics::connection_refused("closed");
            drop(io);
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(transport.shutdown_timeout) => {
            tracing::warn!(
                deadline_s = transport.shutdown_timeout.as_secs_f64(),
                "connections still open at the shutdown deadline are closed"
            );
            Ok(())
        }
    }
}

/// What a connection over the cap is answered: liveness, so an orchestrator does not restart
/// a server that is merely full, and 503 to the rest.
fn overflow_router() -> Router {
    Router::new()
        .route("/health", get(super::routes::health))
        .fallback(|| async {
            ApiError::new(
                ErrorCode::TooManyConnections,
                "the server has as many connections open as it serves; retry shortly",
            )
        })
}
