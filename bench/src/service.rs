//! The service core opened in this process, for what only the inside shows: how long opening a
//! store takes (`restart`) and the index's own recall and search time (`store`).

use std::sync::Arc;

use wenda::embedding::{Embedder, ModelFingerprint};
use wenda::index::DEFAULT_QUANTIZE_FROM;
use wenda::search::DEFAULT_LEXICAL_WEIGHT;
use wenda::service::{ModelSummary, OpenReport, Settings, StoreLocation, Wenda};

use crate::model_args::ModelArgs;

/// Loads the model and its fingerprint, which stored vectors are kept under.
pub fn load(model: &ModelArgs) -> anyhow::Result<(Embedder, ModelFingerprint)> {
    let (files, embedder) = model.resolve_and_load(model.backend.into())?;
    let fingerprint = ModelFingerprint::cached(&files, &embedder)?;
    Ok((embedder, fingerprint))
}

/// Opens `store` as `wenda serve` does once the model is loaded, with its default settings.
pub fn open(
    embedder: Arc<Embedder>,
    fingerprint: ModelFingerprint,
    model: &str,
    store: StoreLocation,
) -> anyhow::Result<(Arc<Wenda>, OpenReport)> {
    let config = embedder.config();
    let summary = ModelSummary {
        id: model.to_owned(),
        dimensions: embedder.dimensions(),
        pooling: format!("{:?}", config.pooling).to_lowercase(),
        max_tokens: config.max_tokens,
    };
    let settings = Settings {
        store,
        queue_capacity: 64,
        max_batch: 32,
        max_store_bytes: None,
        lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        quantize_from: DEFAULT_QUANTIZE_FROM,
    };
    Ok(Wenda::open(
        embedder,
        fingerprint,
        summary,
        &settings,
        &mut |_, _| {},
    )?)
}
