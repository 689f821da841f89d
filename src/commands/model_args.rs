//! `--model` and the options around it. Shared as source with the `wenda-bench` binary
//! (`#[path]`), so that both take the same flags without the library exporting clap types.

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
    #[arg(long, value_enum, default_value_t = BackendArg::Native)]
    pub backend: BackendArg,
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
        Ok(self.resolve_and_load(self.backend.into())?.1)
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

/// `--backend` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendArg {
    /// wenda's own BERT forward pass (BERT checkpoints; the fast path).
    Native,
    /// candle-transformers' models: the reference implementation.
    CandleTransformers,
}

impl From<BackendArg> for Backend {
    fn from(backend: BackendArg) -> Self {
        match backend {
            BackendArg::Native => Self::Native,
            BackendArg::CandleTransformers => Self::CandleTransformers,
        }
    }
}
