//! Subcommands of the `wenda` binary, and the options they share.

pub mod bench;
pub mod bench_index;
pub mod bench_restart;
pub mod bench_serve;
pub mod bench_soak;
pub mod bench_store;
pub mod bench_writes;
pub mod core;
pub mod data;
pub mod embed;
pub mod eval;
pub mod model;
pub mod query;
pub mod serve;
mod synthetic;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wenda::embedding::{
    Backend, BatchLimits, Embedder, ModelFiles, ModelLocator, Role, DEFAULT_MODEL,
};
use wenda::search::Mode;

/// The `p` quantile (nearest rank) of sorted, non-empty `latencies`: what every benchmark that
/// prints percentiles reports.
pub(crate) fn percentile(latencies: &[Duration], p: f64) -> Duration {
    let rank = (latencies.len() as f64 * p).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

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
        self.load_with(self.backend.into())
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

/// `--mode` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeArg {
    /// By meaning: cosine of embeddings.
    Dense,
    /// By shared words: BM25.
    Lexical,
    /// Both, blended.
    Hybrid,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Dense => Self::Dense,
            ModeArg::Lexical => Self::Lexical,
            ModeArg::Hybrid => Self::Hybrid,
        }
    }
}

/// `--role` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleArg {
    /// A question or search text.
    Query,
    /// Text that is indexed and retrieved.
    Passage,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Query => Self::Query,
            RoleArg::Passage => Self::Passage,
        }
    }
}
