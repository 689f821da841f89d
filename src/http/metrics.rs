//! `GET /metrics`: what the server is doing, in Prometheus text format.
//!
//! Counters and histograms are recorded through the `metrics` facade wherever the work happens
//! (requests here, connections in the transport, batches in the embedding queue, searches in
//! the service) and rendered by `metrics-exporter-prometheus`. The recorder is process-wide and
//! installed once; what depends on the store's current state (passages and documents per
//! collection) is read from the service when scraped.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

type Shared = std::sync::Arc<AppState>;

/// Seconds: from a fast lexical search to a maximal embeddings request.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Texts in one forward pass.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process's recorder on first use (later calls share it) and starts its upkeep,
/// which drains histogram samples so memory stays flat when nobody scrapes.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("wenda_embed_batch_texts".into()),
                    &BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("wenda-metrics".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        if let Err(error) = started {
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        metrics::gauge!("wenda_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Metrics in Prometheus text format (version 0.0.4). Guarded by the API keys, when there are
/// any (it names the collections).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Counters, gauges and histograms.", content_type = "text/plain")))]
pub async fn render(State(state): State<Shared>) -> Response {
    record_collections(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle().render(),
    )
        .into_response()
}

/// Sets the per-collection gauges from the service, when it is ready.
async fn record_collections(state: &Shared) {
    let Ok(service) = state.service() else { return };
    if let Ok(collections) = service.collections().await {
        for collection in collections {
            let name = collection.name;
            metrics::gauge!("wenda_collection_documents", "collection" => name.clone())
                .set(collection.documents as f64);
            metrics::gauge!("wenda_collection_passages", "collection" => name)
                .set(collection.passages as f64);
        }
    }
}

/// Counts a connection while it is open.
pub struct OpenConnection;

impl OpenConnection {
    pub fn new() -> Self {
        metrics::gauge!("wenda_http_connections_open").increment(1.0);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("wenda_http_connections_open").decrement(1.0);
    }
}

/// A connection over the cap: `answered` with 503, or `closed` unanswered.
pub fn connection_refused(how: &'static str) {
    metrics::counter!("wenda_http_connections_refused_total", "how" => how).increment(1);
}
