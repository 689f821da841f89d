//! Subcommands of the `wenda` binary, and the options they share.

pub mod bench;
pub mod bench_index;
pub mod bench_serve;
pub mod embed;
pub mod engine;
pub mod eval;
pub mod model;
pub mod query;
pub mod serve;

use std::path::PathBuf;

use anyhow::Context;
use wenda::embedding::{Backend, BatchLimits, Embedder, ModelFiles, ModelLocator, DEFAULT_MODEL};

/// Which model to use and where to look for it.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Hugging Face id or local directory of a BERT-family sentence model.
    #[arg(long, env = "WENDA_MODEL", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// The project's own model folder, searched before the hf-hub cache.
    #[arg(long, env = "WENDA_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Encoder implementation.
    #[arg(long, value_enum, default_value_t = Backend::Native)]
    pub backend: Backend,
    /// Most padded tokens in one forward pass.
    #[arg(long, default_value_t = BatchLimits::default().token_budget)]
    pub batch_tokens: usize,
}

impl ModelArgs {
    pub fn locator(&self) -> ModelLocator {
        ModelLocator::new(&self.models_dir)
    }

    /// Resolves (fetching if needed) and loads the model.
    pub fn load(&self) -> anyhow::Result<Embedder> {
        self.load_with(self.backend)
    }

    pub fn load_with(&self, backend: Backend) -> anyhow::Result<Embedder> {
        Ok(self.resolve_and_load(backend)?.1)
    }

    /// Resolves and loads the model, also returning where its files are.
    pub fn resolve_and_load(&self, backend: Backend) -> anyhow::Result<(ModelFiles, Embedder)> {
        let files = self
            .locator()
            .resolve(&self.model)
            .with_context(|| format!("resolving model {}", self.model))?;
        let limits = BatchLimits {
            token_budget: self.batch_tokens,
            ..BatchLimits::default()
        };
        let started = std::time::Instant::now();
        let embedder = Embedder::load(&files, backend, limits)
            .with_context(|| format!("loading model from {}", files.weights.display()))?;
        tracing::info!(
            model = %self.model,
            origin = ?files.origin,
            backend = ?backend,
            dimensions = embedder.dimensions(),
            pooling = ?embedder.config().pooling,
            took_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok((files, embedder))
    }
}
