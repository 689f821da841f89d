//! Loading a corpus into a search engine, shared by `serve`, `query` and `bench-serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use wenda::corpus::{self, ChunkConfig};
use wenda::embedding::{CacheOpened, Embedder, ModelFingerprint, VectorCache};
use wenda::http::wire::ModelInfo;
use wenda::search::{self, SearchEngine};

use super::ModelArgs;

/// Which corpus to serve and where its vectors are cached.
#[derive(clap::Args, Debug, Clone)]
pub struct CorpusArgs {
    /// File or directory to index (.txt, .md, .jsonl); repeat the flag for several.
    #[arg(long = "corpus", default_value = "seeds")]
    pub corpus: Vec<PathBuf>,
    /// Where passage vectors are kept between runs, so restarts embed only what changed.
    #[arg(long, env = "WENDA_CACHE_DIR", default_value = ".wenda-cache")]
    pub cache_dir: PathBuf,
}

/// A model and the engine built with it.
pub struct Loaded {
    pub embedder: Arc<Embedder>,
    pub engine: SearchEngine,
    pub model: ModelInfo,
}

/// Loads the model and the corpus and builds the engine, embedding what the cache lacks with a
/// progress bar on the terminal.
pub fn load_engine(model_args: &ModelArgs, corpus_args: &CorpusArgs) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let (files, embedder) = model_args.resolve_and_load(model_args.backend)?;
    let fingerprint = ModelFingerprint::of(&files, &embedder)
        .context("fingerprinting the model for the vector cache")?;

    let report = corpus::load(&corpus_args.corpus, &ChunkConfig::new(&embedder));
    for problem in &report.problems {
        tracing::warn!(%problem, "skipped");
    }
    if report.passages.is_empty() {
        bail!(
            "no passages in {:?}: {} problem(s) reported above; wenda reads .txt, .md and .jsonl files",
            corpus_args.corpus,
            report.problems.len()
        );
    }
    let (documents, passages, skipped) = (
        report.documents.len(),
        report.passages.len(),
        report.problems.len() + report.ignored_files,
    );

    // Each corpus (by its absolute paths) keeps its own cache file.
    let scope: Vec<String> = corpus_args
        .corpus
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .collect();
    let (mut cache, opened) = VectorCache::open(
        &corpus_args.cache_dir,
        &scope.join("\n"),
        fingerprint,
        embedder.dimensions(),
    );
    match opened {
        CacheOpened::Empty => tracing::info!(path = %cache.path().display(), "no vector cache yet"),
        CacheOpened::Loaded(vectors) => {
            tracing::info!(path = %cache.path().display(), vectors, "vector cache loaded")
        }
        CacheOpened::Discarded(error) => {
            tracing::warn!(%error, "vector cache unusable; rebuilding it")
        }
    }

    let mut bar: Option<ProgressBar> = None;
    let (engine, stats) = search::build(report, &embedder, &mut cache, &mut |done, total| {
        bar.get_or_insert_with(|| embedding_bar(total))
            .set_position(done as u64);
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(error) = &stats.cache_error {
        tracing::warn!(%error, "could not save the vector cache; the next start will embed again");
    }
    tracing::info!(
        documents,
        passages,
        skipped_files = skipped,
        cached = stats.cached,
        embedded = stats.embedded,
        truncated = stats.truncated,
        model = %model_args.model,
        took_ms = started.elapsed().as_millis() as u64,
        "index built"
    );
    let config = embedder.config();
    let model = ModelInfo {
        id: model_args.model.clone(),
        dimensions: embedder.dimensions(),
        pooling: format!("{:?}", config.pooling).to_lowercase(),
        max_tokens: config.max_tokens,
    };
    Ok(Loaded {
        embedder: Arc::new(embedder),
        engine,
        model,
    })
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn embedding_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "embedding passages {bar:40} {pos}/{len} [{elapsed_precise}, {per_sec}, eta {eta}]",
        )
        .expect("a valid progress template"),
    );
    bar
}
