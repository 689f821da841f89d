//! Opening the service over a data directory, shared by `serve`, `query`, `eval` and
//! `import`: load the model, open the store, bring the corpus folder into `default`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use wenda::corpus::{ReadOptions, DEFAULT_MAX_FILE_BYTES};
use wenda::embedding::ModelFingerprint;
use wenda::index::DEFAULT_QUANTIZE_FROM;
use wenda::llm::{LlmClient, LlmConfig};
use wenda::search::DEFAULT_LEXICAL_WEIGHT;
use wenda::service::{ModelSummary, Service, Settings, DEFAULT_MAX_METADATA_BYTES};
use wenda::store::{
    PostgresStore, SqliteStore, Store, StoreError, VectorSearchSettings, DEFAULT_EF_SEARCH,
    MAX_EF_SEARCH,
};

use super::ModelArgs;

/// Where collections are stored, and the corpus folder that fills `default`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where documents, passages and vectors are stored (created if missing), in SQLite.
    #[arg(long, env = "WENDA_DATA_DIR", default_value = ".wenda-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL database (with pgvector) to store in instead of --data-dir, e.g.
    /// `postgres://wenda@db.internal:5432/wenda`.
    #[arg(long = "store", env = "WENDA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File or directory (.txt, .md, .jsonl) kept in sync with collection `default` at each
    /// start; repeat the flag for several.
    #[arg(long = "corpus", default_value = "seeds")]
    pub corpus: Vec<PathBuf>,
    /// Load no corpus folder: serve only what the data directory holds.
    #[arg(long)]
    pub no_corpus: bool,
    /// Corpus files larger than this many bytes are skipped (and say so).
    #[arg(long, env = "WENDA_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Follow symbolic links in the corpus folder wherever they lead (by default only links
    /// to files inside the folder are read).
    #[arg(long, env = "WENDA_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,
    /// Most bytes a SQLite store may grow to; writes beyond answer 503 `storage_unavailable`.
    #[arg(long, env = "WENDA_MAX_STORE_BYTES")]
    pub max_store_bytes: Option<u64>,
    /// Without --store: passages from which a segment of a collection's index holds its vectors
    /// as int8 codes (580 bytes a passage instead of 1,536; searched by an integer scan whose
    /// candidates are re-scored, recall@10 about 0.998); smaller segments are searched exactly.
    #[arg(long, env = "WENDA_QUANTIZE_FROM", default_value_t = DEFAULT_QUANTIZE_FROM)]
    pub quantize_from: usize,
    /// With --store: HNSW candidates a search keeps when the request gives no `ef_search`
    /// (more finds more of the true nearest passages, slower).
    #[arg(long, env = "WENDA_EF_SEARCH", default_value_t = DEFAULT_EF_SEARCH,
          value_parser = parse_ef_search)]
    pub ef_search: usize,
    /// With --store: a read-only standby of that database (streaming replication) for vector
    /// searches, which then see a write once the standby has replayed it.
    #[arg(
        long,
        env = "WENDA_READ_DATABASE_URL",
        hide_env_values = true,
        requires = "database_url"
    )]
    pub read_database_url: Option<String>,
}

fn parse_ef_search(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|ef| (1..=MAX_EF_SEARCH).contains(ef))
        .ok_or_else(|| format!("a number of candidates from 1 to {MAX_EF_SEARCH}"))
}

impl StoreArgs {
    /// Opens the store the flags name, for vectors of `model` with `dimensions` each: the
    /// PostgreSQL database given by --store, else the SQLite store in --data-dir.
    pub fn open_store(
        &self,
        model: ModelFingerprint,
        dimensions: usize,
    ) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match &self.database_url {
            Some(url) => {
                let search = VectorSearchSettings {
                    ef_search: self.ef_search,
                    read_url: self.read_database_url.clone(),
                };
                Arc::new(PostgresStore::open(url, model, dimensions, &search)?)
            }
            None => {
                let store = SqliteStore::open(&self.data_dir, model, dimensions)?;
                if let Some(bytes) = self.max_store_bytes {
                    store.set_size_limit(bytes)?;
                }
                Arc::new(store)
            }
        })
    }

    /// The store, for messages: the directory, or the database URL without its password.
    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(url) => match url.split_once('@') {
                Some((credentials, rest)) => {
                    let user = credentials.rsplit_once(':').map_or(credentials, |(u, _)| u);
                    format!("{user}@{rest}")
                }
                None => url.clone(),
            },
            None => self.data_dir.display().to_string(),
        }
    }
}

/// How the service is sized, what it says when the documents do not answer, and the LLM
/// that writes generative answers.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub max_in_flight: usize,
    pub max_batch: usize,
    pub max_metadata_bytes: usize,
    pub no_answer_text: Option<String>,
    pub llm: Option<LlmConfig>,
}

/// The OpenAI-compatible LLM for generative answers (none: answers are extractive).
#[derive(clap::Args, Debug, Clone)]
pub struct LlmArgs {
    /// Base URL of an OpenAI-compatible chat-completions server, `/v1` included, e.g.
    /// `http://127.0.0.1:11434/v1` (Ollama) or `https://api.deepseek.com/v1`. Set, answers
    /// are generated by it from the retrieved passages.
    #[arg(long, env = "WENDA_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// The model to ask for (required with `--llm-base-url`).
    #[arg(long, env = "WENDA_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Its API key, sent as a bearer token (prefer the environment: never logged).
    #[arg(long, env = "WENDA_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    /// Seconds a call to the LLM may take in all (504 `upstream_timeout` beyond).
    #[arg(long, env = "WENDA_LLM_TIMEOUT", default_value_t = 60)]
    pub llm_timeout: u64,
    /// Most tokens of a generated answer: a bound on how long one answer holds the LLM.
    #[arg(long, env = "WENDA_LLM_MAX_TOKENS", default_value_t = 512)]
    pub llm_max_tokens: u32,
    /// Sampling temperature (the server's default when absent).
    #[arg(long, env = "WENDA_LLM_TEMPERATURE")]
    pub llm_temperature: Option<f32>,
}

impl LlmArgs {
    /// The LLM's settings, when a base URL is given.
    pub fn config(&self) -> anyhow::Result<Option<LlmConfig>> {
        let Some(base_url) = self.llm_base_url.clone() else {
            return Ok(None);
        };
        let Some(model) = self.llm_model.clone() else {
            anyhow::bail!(
                "--llm-base-url needs --llm-model (or WENDA_LLM_MODEL): the model to ask for"
            );
        };
        Ok(Some(LlmConfig {
            base_url,
            model,
            api_key: self.llm_api_key.clone().filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(self.llm_timeout.max(1)),
            max_tokens: Some(self.llm_max_tokens),
            temperature: self.llm_temperature,
        }))
    }
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_batch: 32,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            no_answer_text: None,
            llm: None,
        }
    }
}

/// Loads the model, opens the store (embedding what it lacks) and syncs the corpus folder.
pub fn service(
    model_args: &ModelArgs,
    store_args: &StoreArgs,
    options: ServiceOptions,
) -> anyhow::Result<Arc<Service>> {
    let started = Instant::now();
    let (files, embedder) = model_args.resolve_and_load(model_args.backend.into())?;
    let fingerprinting = Instant::now();
    let fingerprint = ModelFingerprint::cached(&files, &embedder)
        .context("fingerprinting the model, which stored vectors are kept under")?;
    tracing::info!(
        fingerprint = %fingerprint.hex(),
        took_ms = fingerprinting.elapsed().as_millis(),
        "model fingerprinted"
    );
    let config = embedder.config();
    let model = ModelSummary {
        id: model_args.model.clone(),
        dimensions: embedder.dimensions(),
        pooling: format!("{:?}", config.pooling).to_lowercase(),
        max_tokens: config.max_tokens,
    };
    let store = store_args
        .open_store(fingerprint, embedder.dimensions())
        .with_context(|| format!("opening the store {}", store_args.describe()))?;
    let settings = Settings {
        queue_capacity: options.max_in_flight,
        max_batch: options.max_batch,
        lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        quantize_from: store_args.quantize_from,
        max_metadata_bytes: options.max_metadata_bytes,
        no_answer_text: options.no_answer_text,
        llm: options
            .llm
            .map(LlmClient::new)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .map(Arc::new),
    };
    let mut progress = Progress::new("embedding stored passages");
    let (service, opened) = Service::open(
        Arc::new(embedder),
        model,
        store,
        &settings,
        &mut |done, total| progress.update(done, total),
    )
    .with_context(|| format!("loading the collections of {}", store_args.describe()))?;
    progress.finish();
    tracing::info!(
        store = store_args.describe(),
        collections = opened.collections,
        passages = opened.passages,
        embedded = opened.embedded,
        reanalysed = opened.reanalysed,
        "store loaded"
    );
    if !store_args.no_corpus {
        let mut progress = Progress::new("embedding corpus passages");
        let synced = service
            .sync_corpus(
                &store_args.corpus,
                ReadOptions {
                    max_file_bytes: store_args.max_file_bytes,
                    follow_symlinks: store_args.follow_symlinks,
                },
                &mut |done, total| progress.update(done, total),
            )
            .with_context(|| format!("loading the corpus {:?}", store_args.corpus))?;
        progress.finish();
        tracing::info!(
            corpus = ?store_args.corpus,
            added = synced.added,
            changed = synced.changed,
            removed = synced.removed,
            unchanged = synced.unchanged,
            embedded = synced.embedded,
            skipped = synced.problems.len(),
            ignored_files = synced.ignored_files,
            "corpus in sync with collection default"
        );
    }
    crate::release_freed_memory();
    let totals = service.totals();
    tracing::info!(
        collections = totals.collections,
        documents = totals.documents,
        passages = totals.passages,
        model = %model_args.model,
        took_ms = started.elapsed().as_millis() as u64,
        "collections ready"
    );
    Ok(service)
}

/// Reports embedding progress: a bar on a terminal, a log line every tenth otherwise (a server
/// under systemd or in a container has no terminal, and its operator still wants to know).
struct Progress {
    what: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    /// When a line was last logged (without a terminal), and at which tenth of the work.
    logged: (Instant, usize),
}

/// Without a terminal, progress is logged at each tenth of the work and at least this often.
const LOG_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Progress {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            bar: None,
            started: Instant::now(),
            logged: (Instant::now(), 0),
        }
    }

    fn update(&mut self, done: usize, total: usize) {
        if std::io::stderr().is_terminal() {
            let what = self.what;
            self.bar
                .get_or_insert_with(|| {
                    let bar = ProgressBar::new(total as u64);
                    bar.set_style(
                        ProgressStyle::with_template(&format!(
                            "{what} {{bar:40}} {{pos}}/{{len}} [{{elapsed_precise}}, {{per_sec}}, eta {{eta}}]"
                        ))
                        .expect("a valid progress template"),
                    );
                    bar
                })
                .set_position(done as u64);
        } else {
            // Structured lines for logs under systemd or in containers: done, rate, time left.
            let tenths = done * 10 / total.max(1);
            let (last, logged_tenths) = self.logged;
            if tenths > logged_tenths || done == total || last.elapsed() >= LOG_PROGRESS_EVERY {
                self.logged = (Instant::now(), tenths);
                let per_second = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
                let eta_s = (total.saturating_sub(done) as f64 / per_second.max(1e-9)).round();
                tracing::info!(
                    done,
                    total,
                    per_second = per_second.round(),
                    eta_s,
                    "{}",
                    self.what
                );
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
