//! The service opened in this process, for what only the inside shows: how long opening a
//! store takes (`restart`) and the index's own recall and search time (`store`).

use std::sync::Arc;

use wenda::embedding::{Embedder, ModelFingerprint};
use wenda::index::DEFAULT_QUANTIZE_FROM;
use wenda::search::DEFAULT_LEXICAL_WEIGHT;
use wenda::service::{ModelSummary, OpenReport, Service, Settings, DEFAULT_MAX_METADATA_BYTES};
use wenda::store::Store;

use crate::model_args::ModelArgs;

/// Loads the model and its fingerprint, which stored vectors are kept under.
pub fn load(model: &ModelArgs) -> anyhow::Result<(Embedder, ModelFingerprint)> {
    let (files, embedder) = model.resolve_and_load(model.backend.into())?;
    let fingerprint = ModelFingerprint::cached(&files, &embedder)?;
    Ok((embedder, fingerprint))
}

/// Opens the service over `store` as `wenda serve` does once the model is loaded, with its
/// default settings.
pub fn open(
    embedder: Arc<Embedder>,
    model: &str,
    store: Arc<dyn Store>,
) -> anyhow::Result<(Arc<Service>, OpenReport)> {
    let config = embedder.config();
    let summary = ModelSummary {
        id: model.to_owned(),
        dimensions: embedder.dimensions(),
        pooling: format!("{:?}", config.pooling).to_lowercase(),
        max_tokens: config.max_tokens,
    };
    let settings = Settings {
        queue_capacity: 64,
        max_batch: 32,
        lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        quantize_from: DEFAULT_QUANTIZE_FROM,
        max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
        no_answer_text: None,
        llm: None,
    };
    Ok(Service::open(
        embedder,
        summary,
        store,
        &settings,
        &mut |_, _| {},
    )?)
}
