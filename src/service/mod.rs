//! The application service: every use case wenda offers (search, related passages, passages,
//! documents, collections, embeddings) as methods of [`Service`], which the HTTP API, the MCP
//! tools and the command line all call, as text-embeddings-inference's `Infer` is called by its
//! HTTP and gRPC routers alike. Transports only translate: they turn their input into the
//! requests defined here and map [`ServiceError`] to their own errors.
//!
//! Service owns the durable [`Store`] (the source of truth), one in-memory index per collection
//! (rebuilt from the store at start-up, changed with every write), the embedding queue and the
//! bound on work in progress. A write commits to the store first and then changes the index,
//! both under the collection's write lock, so the two apply writes in the same order and a
//! search never sees a write the store does not have.

mod answer;
mod collections;
mod documents;
mod error;
mod follow;
mod generate;
mod jobs;
mod names;
mod prepare;
mod search;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

pub use answer::{
    AnswerEvent, AnswerMode, AnswerOutcome, AnswerRequest, AnsweredSentence, Citation, Finish,
    Source, NO_ANSWER_EN, NO_ANSWER_ZH,
};
pub use collections::CollectionSummary;
pub use documents::{
    DocumentDetail, DocumentPage, NewDocument, PutOutcome, DEFAULT_MAX_METADATA_BYTES,
    MAX_PAGE_SIZE,
};
pub use error::{ErrorCode, ServiceError};
pub use follow::FOLLOW_EVERY;
pub use jobs::{DocumentLine, ImportLine, JobReport, REPORTED_ERRORS};
pub use names::{
    check_collection_name, check_document_id, is_blank, normalise_query, DEFAULT_COLLECTION,
};
pub use search::{
    ContextBudget, SearchHit, SearchOutcome, SearchRequest, SimilarOutcome, SimilarRequest,
    MAX_CONTEXT_BUDGET,
};
pub use sync::SyncReport;

use prepare::{Prepared, VectorLookup};

use crate::embedding::{EmbedQueue, Embedder, Embedding, ModelFingerprint, Role, TextKey};
use crate::index::{Analyzer, Index, IndexChange, IndexReader, MemoryIndex, RemoteIndex};
use crate::llm::LlmClient;
use crate::store::{SentenceVectors, Store, StoredVector, WriteBatch};

/// Most texts one embeddings request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 128;

/// The embedding model being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSummary {
    /// Its Hugging Face id or directory.
    pub id: String,
    pub dimensions: usize,
    /// How token vectors become one sentence vector (`mean`, `cls`).
    pub pooling: String,
    /// The model's window: longer texts are truncated.
    pub max_tokens: usize,
}

/// How a [`Service`] is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests that may wait in each lane of the embedding queue; more are refused with
    /// [`ServiceError::Overloaded`]. (How many requests are handled at once is the transport's
    /// business: it refuses them before reading their bodies.)
    pub queue_capacity: usize,
    /// Most questions embedded together in one forward pass.
    pub max_batch: usize,
    /// Weight of the lexical score in hybrid ranking.
    pub lexical_weight: f32,
    /// Passages from which a segment of an in-memory index holds its vectors quantised (see
    /// [`MemoryIndex::quantized_from`]; by default
    /// [`DEFAULT_QUANTIZE_FROM`](crate::index::DEFAULT_QUANTIZE_FROM)).
    pub quantize_from: usize,
    /// Most bytes a document's fields besides its text may take (see
    /// [`DEFAULT_MAX_METADATA_BYTES`]).
    pub max_metadata_bytes: usize,
    /// What an answer says when the documents do not answer; by default [`NO_ANSWER_ZH`] to
    /// Chinese questions and [`NO_ANSWER_EN`] to others.
    pub no_answer_text: Option<String>,
    /// The LLM that writes generative answers, when the server has one.
    pub llm: Option<Arc<LlmClient>>,
}

/// What the whole service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub collections: usize,
    pub documents: usize,
    pub passages: usize,
    /// Bytes the vectors of every index take in memory.
    pub index_bytes: usize,
}

/// What opening a data directory did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub collections: usize,
    pub passages: usize,
    /// Passages embedded because the store had no vector for them under this model.
    pub embedded: usize,
    /// Passages analysed again because the analyzer changed since they were stored.
    pub reanalysed: usize,
}

/// One collection's index and the lock its writes take.
struct Collection {
    index: Box<dyn Index>,
    /// Held while a write goes to the store and the index; `true` once the collection is
    /// deleted, so a write that waited for the lock learns it is gone.
    writes: tokio::sync::Mutex<bool>,
}

/// The service: see the module documentation.
pub struct Service {
    embedder: Arc<Embedder>,
    queue: EmbedQueue,
    model: ModelSummary,
    analyzer: Arc<Analyzer>,
    store: Arc<dyn Store>,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    lexical_weight: f32,
    quantize_from: usize,
    max_metadata_bytes: usize,
    no_answer_text: Option<String>,
    llm: Option<Arc<LlmClient>>,
    /// Sentence vectors of recent answers.
    sentences: answer::SentenceCache,
    /// Wakes the import job worker.
    jobs: Arc<jobs::JobSignal>,
}

/// A store setting: the analyzer revision the stored terms were made with.
const ANALYZER_REVISION: &str = "analyzer_revision";

impl Service {
    /// Builds every collection's index from `store`, embedding only passages whose vectors
    /// the store lacks for its model (`progress(done, total)` follows that), then resumes
    /// unfinished import jobs. The store is built by the caller (the command that knows the
    /// flags), so the service holds any backend the same way. Blocking: call it off the async
    /// runtime.
    pub fn open(
        embedder: Arc<Embedder>,
        model: ModelSummary,
        store: Arc<dyn Store>,
        settings: &Settings,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Arc<Self>, OpenReport), OpenError> {
        let wenda = Self {
            queue: EmbedQueue::start(
                Arc::clone(&embedder),
                settings.queue_capacity,
                settings.max_batch,
            ),
            embedder,
            model,
            analyzer: Arc::new(Analyzer::default()),
            store,
            collections: RwLock::default(),
            lexical_weight: settings.lexical_weight,
            quantize_from: settings.quantize_from,
            max_metadata_bytes: settings.max_metadata_bytes,
            no_answer_text: settings.no_answer_text.clone(),
            llm: settings.llm.clone(),
            sentences: answer::SentenceCache::default(),
            jobs: Arc::default(),
        };
        // Changes other replicas make while this one loads are applied after it, again.
        let position = wenda.store.change_position()?;
        let report = wenda.load_collections(progress)?;
        let unfinished = wenda.store.unfinished_jobs()?;
        let wenda = Arc::new(wenda);
        jobs::start_worker(&wenda);
        if wenda.store.shared() {
            follow::start_follower(&wenda, position);
        }
        if !unfinished.is_empty() {
            tracing::info!(jobs = unfinished.len(), "resuming import jobs");
            wenda.jobs.notify();
        }
        Ok((wenda, report))
    }

    fn load_collections(
        &self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<OpenReport, OpenError> {
        let revision = Analyzer::REVISION.to_string();
        let terms_current = self.store.setting(ANALYZER_REVISION)?.as_deref() == Some(&revision);
        let mut report = OpenReport::default();
        for record in self.store.collections()? {
            let started = std::time::Instant::now();
            let mut loaded = self.store.load_collection(&record.name)?;
            let read_ms = started.elapsed().as_millis() as u64;
            if !terms_current {
                self.reanalyse(&record.name, &mut loaded)?;
                report.reanalysed += loaded.len();
            }
            // Texts without a vector under this model (another model served them before), each
            // embedded once however many passages share it.
            let mut missing: HashMap<TextKey, String> = HashMap::new();
            for passage in loaded.iter().filter(|p| p.vector == StoredVector::Missing) {
                missing
                    .entry(passage.stored.text_key)
                    .or_insert_with(|| passage.stored.passage.embedding_text().into_owned());
            }
            if !missing.is_empty() {
                let (keys, texts): (Vec<TextKey>, Vec<String>) = missing.into_iter().unzip();
                let embeddings = self.embed_blocking(&texts, progress)?;
                self.store.write(
                    &record.name,
                    &WriteBatch {
                        vectors: keys
                            .iter()
                            .zip(&embeddings)
                            .map(|(key, embedding)| (*key, embedding.vector.as_slice()))
                            .collect(),
                        ..WriteBatch::default()
                    },
                )?;
                let made: HashMap<TextKey, Vec<f32>> = keys
                    .into_iter()
                    .zip(embeddings.into_iter().map(|e| e.vector))
                    .collect();
                for passage in loaded
                    .iter_mut()
                    .filter(|p| p.vector == StoredVector::Missing)
                {
                    passage.vector = StoredVector::Loaded(made[&passage.stored.text_key].clone());
                }
                report.embedded += texts.len();
            }
            report.passages += loaded.len();
            report.collections += 1;
            let added = follow::indexed(loaded, &record.name);
            let collection = self.new_collection(&record.name);
            collection.index.apply(IndexChange {
                remove_documents: Vec::new(),
                add: added,
            })?;
            tracing::info!(
                collection = record.name,
                passages = collection.index.reader().passage_count(),
                read_ms,
                took_ms = started.elapsed().as_millis() as u64,
                "collection loaded"
            );
            self.register(&record.name, collection);
        }
        if !terms_current {
            self.store.set_setting(ANALYZER_REVISION, &revision)?;
        }
        Ok(report)
    }

    /// Analyses stored passages again, after the analyzer changed.
    fn reanalyse(
        &self,
        collection: &str,
        loaded: &mut [crate::store::LoadedPassage],
    ) -> Result<(), OpenError> {
        use rayon::prelude::*;
        loaded.par_iter_mut().for_each(|passage| {
            passage.stored.terms = self.analyzer.term_counts(&passage.stored.passage.text);
        });
        let terms: Vec<(&str, &crate::index::TermCounts)> = loaded
            .iter()
            .map(|p| (p.stored.passage.id.as_str(), &p.stored.terms))
            .collect();
        self.store.rewrite_terms(collection, &terms)?;
        Ok(())
    }

    /// Embeds passage texts on this thread (before serving, or in a blocking sync).
    fn embed_blocking(
        &self,
        texts: &[String],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Embedding>, OpenError> {
        let total = texts.len();
        let mut done = 0;
        Ok(self
            .embedder
            .embed_with_progress(Role::Passage, texts, &mut |finished| {
                done += finished;
                progress(done, total);
            })?)
    }

    /// An empty index for collection `name`: its vectors in memory, or searched by the store.
    fn new_collection(&self, name: &str) -> Arc<Collection> {
        let analyzer = Arc::clone(&self.analyzer);
        let index: Box<dyn Index> = match self.store.vector_search(name) {
            Some(vectors) => Box::new(RemoteIndex::new(
                MemoryIndex::lexical_only(analyzer),
                vectors,
            )),
            None => Box::new(
                MemoryIndex::new(self.embedder.dimensions(), analyzer)
                    .quantized_from(self.quantize_from),
            ),
        };
        Arc::new(Collection {
            index,
            writes: tokio::sync::Mutex::new(false),
        })
    }

    fn register(&self, name: &str, collection: Arc<Collection>) {
        self.collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), collection);
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, ServiceError> {
        self.collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| ServiceError::UnknownCollection(name.to_owned()))
    }

    /// The current snapshot of a collection's index (for offline evaluation; requests go
    /// through the use cases).
    pub fn reader(&self, collection: &str) -> Result<Arc<dyn IndexReader>, ServiceError> {
        Ok(self.collection(collection)?.index.reader())
    }

    /// Whether the store answers: a shared database may be down, when writes fail (searches go
    /// on from the indexes in memory).
    pub async fn check_store(&self) -> Result<(), ServiceError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.ping()).await??;
        Ok(())
    }

    /// The embedding model itself (for offline evaluation).
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The text analyser every index uses (for offline evaluation).
    pub fn analyzer(&self) -> &Arc<Analyzer> {
        &self.analyzer
    }

    /// Stores vectors made elsewhere under this model (an export being imported), so passages
    /// with their texts need no embedding.
    pub async fn store_vectors(
        &self,
        collection: &str,
        vectors: Vec<(TextKey, Vec<f32>)>,
    ) -> Result<(), ServiceError> {
        let dimensions = self.embedder.dimensions();
        if let Some((_, wrong)) = vectors.iter().find(|(_, v)| v.len() != dimensions) {
            return Err(ServiceError::Invalid(format!(
                "a vector has {} dimensions, the model {dimensions}",
                wrong.len()
            )));
        }
        self.write_vectors(collection, vectors, Vec::new()).await
    }

    /// Writes passage and sentence vectors alone, before or without their passages.
    async fn write_vectors(
        &self,
        collection: &str,
        vectors: Vec<(TextKey, Vec<f32>)>,
        sentence_vectors: Vec<(TextKey, SentenceVectors)>,
    ) -> Result<(), ServiceError> {
        let store = Arc::clone(&self.store);
        let collection = collection.to_owned();
        blocking(move || {
            store.write(
                &collection,
                &WriteBatch {
                    vectors: vectors.iter().map(|(k, v)| (*k, v.as_slice())).collect(),
                    sentence_vectors: sentence_vectors.iter().map(|(k, s)| (*k, s)).collect(),
                    ..WriteBatch::default()
                },
            )
        })
        .await??;
        Ok(())
    }

    /// The fingerprint of the model: vectors made under another are not used.
    pub fn fingerprint(&self) -> ModelFingerprint {
        self.store.model()
    }

    /// The model being served.
    pub fn model(&self) -> &ModelSummary {
        &self.model
    }

    /// Where the store lives, for logs.
    pub fn store_location(&self) -> String {
        self.store.describe()
    }

    /// Totals over every collection.
    pub fn totals(&self) -> Totals {
        let collections = self
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let readers: Vec<Arc<dyn IndexReader>> =
            collections.values().map(|c| c.index.reader()).collect();
        Totals {
            collections: collections.len(),
            documents: readers.iter().map(|r| r.document_count()).sum(),
            passages: readers.iter().map(|r| r.passage_count()).sum(),
            index_bytes: readers.iter().map(|r| r.vector_bytes()).sum(),
        }
    }

    /// Embeds up to [`MAX_EMBEDDING_INPUTS`] texts in `role` (OpenAI-style embeddings).
    pub async fn embed(
        &self,
        role: Role,
        texts: Vec<String>,
    ) -> Result<Vec<Embedding>, ServiceError> {
        if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
            return Err(ServiceError::Invalid(format!(
                "input must hold 1 to {MAX_EMBEDDING_INPUTS} texts, got {}",
                texts.len()
            )));
        }
        if let Some(index) = texts.iter().position(|t| is_blank(t)) {
            return Err(ServiceError::EmptyInput(index));
        }
        Ok(self.queue.embed_all(role, texts).await?)
    }
}

/// Why a data directory could not be opened and loaded.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("embedding stored passages: {0}")]
    Embedding(#[from] crate::embedding::EmbeddingError),
    #[error("indexing stored passages: {0}")]
    Index(#[from] crate::index::IndexError),
    #[error("bringing the corpus folder in: {0}")]
    Sync(String),
}

/// Runs blocking work (store I/O, tokenizing, ranking) on tokio's blocking threads, so the async
/// workers keep serving I/O.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "a blocking task failed");
        ServiceError::Internal("a worker task failed".into())
    })
}
