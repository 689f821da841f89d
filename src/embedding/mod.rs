//! Text → vectors: tokenize, run a BERT-family encoder on the CPU, pool, L2-normalise.
//!
//! [`Embedder`] is the one entry point. Callers say what a text *is* ([`Role::Query`] or
//! [`Role::Passage`]) and the embedder adds the model's prompt for that role, so no caller has to
//! know that e5 wants `query: ` in front of questions. Inputs longer than the model's window are
//! truncated here and each [`Embedding`] says whether that happened.
//!
//! Submodules, in the order data meets them: [`resolve`] finds the model files (with [`pypi`] and
//! [`e5s1`] as the offline route), [`config`] reads what the files say, [`batching`] plans forward
//! passes, [`bert`] is wenda's own encoder, running on [`gemm`] (with [`int8`] for block-stored
//! weights; [`tile`] holds what both kernels share), [`attention`] and [`vector_math`].

mod attention;
pub mod batching;
pub mod bert;
pub mod config;
pub mod e5s1;
pub mod fingerprint;
mod gemm;
mod int8;
pub mod pypi;
pub mod queue;
pub mod resolve;
mod tile;
mod vector_math;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert as hf_bert, xlm_roberta};
use tokenizers::utils::truncation::truncate_encodings;
use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

pub use batching::{BatchLimits, PackedBatch};
pub use config::{Architecture, ModelConfig, Pooling, Prompts};
pub use fingerprint::{ModelFingerprint, TextKey};
pub use queue::{EmbedQueue, QueueError};
pub use resolve::{ModelFiles, ModelLocator, ModelOrigin, DEFAULT_MODEL};

/// Everything that can go wrong between a model name and a vector.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("model {name:?} not found: {tried}")]
    ModelNotFound { name: String, tried: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid model configuration: {problem}")]
    Config { path: String, problem: String },
    #[error("{file} is corrupt: {problem}")]
    Corrupt { file: String, problem: String },
    #[error("offline model acquisition failed: {0}")]
    Acquire(String),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The encoder cannot take this input: a sequence longer than its positions, or a token
    /// id outside its vocabulary (a tokenizer that does not belong to the model).
    #[error("encoder input: {0}")]
    Input(String),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

impl EmbeddingError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn config(path: &Path, problem: impl std::fmt::Display) -> Self {
        Self::Config {
            path: path.display().to_string(),
            problem: problem.to_string(),
        }
    }
}

/// What a text is for; decides the prompt the model sees in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A question or search text.
    Query,
    /// Text that is indexed and retrieved.
    Passage,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Passage => "passage",
        }
    }
}

/// One L2-normalised sentence vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model saw, prompt and special tokens included.
    pub tokens: usize,
    /// The input was longer than the model's window and its end was cut off.
    pub truncated: bool,
}

/// Revision of the native encoder's arithmetic: part of the model fingerprint stored vectors are
/// kept under, so that vectors computed by an earlier kernel (say, f32 before the int8 path) are
/// not mixed with new ones. Bump it whenever a change alters the vectors the native backend produces
/// beyond rounding: kernel levels (`crate::cpu::Level`) sum in different orders, and the parity
/// test holds each of them to the reference.
pub const NATIVE_ENCODER_REVISION: u32 = 2;

/// Which implementation runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// wenda's own BERT forward pass (BERT checkpoints; the fast path).
    #[default]
    Native,
    /// candle-transformers' models (`BertModel`, `XLMRobertaModel`): the reference implementation.
    CandleTransformers,
}

enum Encoder {
    Native(bert::BertEncoder),
    CandleBert(hf_bert::BertModel),
    XlmRoberta(xlm_roberta::XLMRobertaModel),
}

impl Encoder {
    fn load(
        files: &ModelFiles,
        config: &ModelConfig,
        backend: Backend,
    ) -> Result<Self, EmbeddingError> {
        let parse = |e: serde_json::Error| EmbeddingError::config(&files.config, e);
        match (config.architecture, backend) {
            (Architecture::Bert, Backend::Native) => {
                let bert_config = serde_json::from_value(config.raw.clone()).map_err(parse)?;
                Ok(Self::Native(bert::BertEncoder::load(
                    mmap(files)?,
                    &bert_config,
                    Some(&files.weights),
                )?))
            }
            (Architecture::Bert, Backend::CandleTransformers) => {
                let bert_config = serde_json::from_value(config.raw.clone()).map_err(parse)?;
                Ok(Self::CandleBert(hf_bert::BertModel::load(
                    mmap(files)?,
                    &bert_config,
                )?))
            }
            (Architecture::XlmRoberta, _) => {
                let xlmr_config = serde_json::from_value(config.raw.clone()).map_err(parse)?;
                let vb = mmap(files)?;
                // Checkpoints saved from XLMRobertaModel carry a `roberta.` prefix; plain ones do not.
                let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
                    vb
                } else {
                    vb.pp("roberta")
                };
                Ok(Self::XlmRoberta(xlm_roberta::XLMRobertaModel::new(
                    &xlmr_config,
                    vb,
                )?))
            }
        }
    }

    /// Pooled, L2-normalised embeddings of the batch's sequences, in order. wenda's encoder
    /// takes the packed batch as it is; the reference models get it padded to its longest
    /// sequence, with an attention mask.
    fn embed(
        &self,
        batch: &PackedBatch,
        config: &ModelConfig,
    ) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let hidden = config.hidden_size;
        let (states, rows_apart) = match self {
            Self::Native(model) => (model.forward(batch)?, None),
            Self::CandleBert(model) => {
                let (ids, mask) = padded(batch, config.pad_token_id)?;
                let states = model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
                (states.flatten_all()?.to_vec1()?, Some(ids.dim(1)?))
            }
            Self::XlmRoberta(model) => {
                let (ids, mask) = padded(batch, config.pad_token_id)?;
                let states = model.forward(&ids, &mask, &ids.zeros_like()?, None, None, None)?;
                (states.flatten_all()?.to_vec1()?, Some(ids.dim(1)?))
            }
        };
        Ok((batch.sequences().iter().enumerate())
            .map(|(i, range)| {
                // Sequence `i`'s rows: where the packed batch has them, or at the start of its
                // padded row block.
                let first = rows_apart.map_or(range.start, |seq| i * seq);
                pool(
                    &states[first * hidden..][..range.len() * hidden],
                    hidden,
                    config.pooling,
                )
            })
            .collect())
    }
}

/// The batch's ids padded to its longest sequence, `[sequences, longest]`, and the attention mask
/// (1 for real tokens, 0 for padding): the reference models' input.
fn padded(batch: &PackedBatch, pad_token_id: u32) -> candle_core::Result<(Tensor, Tensor)> {
    let seq = batch.longest().max(1);
    let count = batch.sequences().len();
    let mut ids = vec![pad_token_id; count * seq];
    let mut mask = vec![0f32; count * seq];
    for (i, range) in batch.sequences().iter().enumerate() {
        ids[i * seq..][..range.len()].copy_from_slice(batch.sequence(i));
        mask[i * seq..][..range.len()].fill(1.0);
    }
    Ok((
        Tensor::from_vec(ids, (count, seq), &Device::Cpu)?,
        Tensor::from_vec(mask, (count, seq), &Device::Cpu)?,
    ))
}

/// The L2-normalised sentence embedding of one sequence's hidden states (`rows × hidden`).
fn pool(states: &[f32], hidden: usize, pooling: Pooling) -> Vec<f32> {
    let rows = states.len() / hidden;
    let mut pooled = vec![0f32; hidden];
    match pooling {
        Pooling::Cls => {
            if let Some(first) = states.get(..hidden) {
                pooled.copy_from_slice(first);
            }
        }
        Pooling::Mean => {
            for row in states.chunks_exact(hidden) {
                pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
            }
            pooled.iter_mut().for_each(|p| *p /= rows.max(1) as f32);
        }
    }
    let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        pooled.iter_mut().for_each(|v| *v /= norm);
    }
    pooled
}

fn mmap(files: &ModelFiles) -> Result<VarBuilder<'static>, EmbeddingError> {
    // SAFETY: the file is memory-mapped read-only; wenda never writes a model file it has loaded.
    Ok(
        unsafe {
            VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &Device::Cpu)?
        },
    )
}

/// Turns texts into normalised vectors with one loaded model.
pub struct Embedder {
    config: ModelConfig,
    encoder: Encoder,
    /// Never truncates by itself, so callers sizing passages learn true lengths; the encoder's
    /// input is truncated at the model's window by [`Embedder::tokenize`]. One tokenizer
    /// serves both because a multilingual vocabulary costs ~290 MB of memory per copy.
    tokenizer: Tokenizer,
    limits: BatchLimits,
    backend: Backend,
}

impl Embedder {
    /// Loads a resolved model.
    pub fn load(
        files: &ModelFiles,
        backend: Backend,
        limits: BatchLimits,
    ) -> Result<Self, EmbeddingError> {
        let config = ModelConfig::read(files)?;
        let mut tokenizer = Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| EmbeddingError::config(&files.tokenizer, e))?;
        // A tokenizer.json may carry its own padding and truncation; wenda pads per batch itself
        // and truncates in `tokenize`.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        let encoder = Encoder::load(files, &config, backend)?;
        Ok(Self {
            config,
            encoder,
            tokenizer,
            limits,
            backend,
        })
    }

    /// What the model's files declare (dimensions, pooling, prompts, window).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Which implementation runs the encoder.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Vector dimensions.
    pub fn dimensions(&self) -> usize {
        self.config.hidden_size
    }

    fn prompt(&self, role: Role) -> &str {
        match role {
            Role::Query => &self.config.prompts.query,
            Role::Passage => &self.config.prompts.passage,
        }
    }

    /// Tokens `text` takes in `role`, prompt and special tokens included, without truncation:
    /// what the corpus stage needs to keep passages within [`ModelConfig::max_tokens`].
    pub fn token_count(&self, role: Role, text: &str) -> Result<usize, EmbeddingError> {
        let input = format!("{}{text}", self.prompt(role));
        let encoding = self
            .tokenizer
            .encode_fast(input.as_str(), true)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        Ok(encoding.len())
    }

    /// Token ids the model sees for `text` in `role` (prompt and special tokens included, truncated).
    pub fn token_ids(&self, role: Role, text: &str) -> Result<Vec<u32>, EmbeddingError> {
        Ok(self.tokenize(role, &[text])?.remove(0).ids)
    }

    /// Embeds one text.
    pub fn embed_one(&self, role: Role, text: &str) -> Result<Embedding, EmbeddingError> {
        Ok(self.embed(role, &[text])?.remove(0))
    }

    /// Embeds texts in batches planned under the token budget; the result follows input order.
    pub fn embed<S: AsRef<str>>(
        &self,
        role: Role,
        texts: &[S],
    ) -> Result<Vec<Embedding>, EmbeddingError> {
        self.embed_with_progress(role, texts, &mut |_| {})
    }

    /// Like [`embed`](Self::embed), calling `progress` with the number of texts each forward
    /// pass completes (for progress bars over large corpora).
    pub fn embed_with_progress<S: AsRef<str>>(
        &self,
        role: Role,
        texts: &[S],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Embedding>, EmbeddingError> {
        let inputs = self.tokenize(role, texts)?;
        let lengths: Vec<usize> = inputs.iter().map(|t| t.ids.len()).collect();
        let mut out: Vec<Option<Embedding>> = vec![None; inputs.len()];
        for batch in batching::plan_batches(&lengths, self.limits) {
            let members: Vec<&TokenizedInput> = batch.iter().map(|&i| &inputs[i]).collect();
            let vectors = self.forward_batch(&members)?;
            for ((index, vector), input) in batch.iter().zip(vectors).zip(&members) {
                out[*index] = Some(Embedding {
                    vector,
                    tokens: input.ids.len(),
                    truncated: input.truncated,
                });
            }
            progress(batch.len());
        }
        Ok(out
            .into_iter()
            .map(|e| e.expect("every input is planned into a batch"))
            .collect())
    }

    fn tokenize<S: AsRef<str>>(
        &self,
        role: Role,
        texts: &[S],
    ) -> Result<Vec<TokenizedInput>, EmbeddingError> {
        let prompt = self.prompt(role);
        let prompted: Vec<String> = texts
            .iter()
            .map(|t| format!("{prompt}{}", t.as_ref()))
            .collect();
        // Without special tokens, then cut and finished the way the tokenizer itself does when
        // it is set to truncate: the content is cut to leave room for the special tokens.
        let encodings = self
            .tokenizer
            .encode_batch_fast(prompted, false)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        let specials = (self.tokenizer.get_post_processor()).map_or(0, |p| p.added_tokens(false));
        let window = TruncationParams {
            max_length: self.config.max_tokens.saturating_sub(specials),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        encodings
            .into_iter()
            .map(|encoding| {
                let (cut, _) = truncate_encodings(encoding, None, &window)
                    .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
                let encoding = (self.tokenizer.post_process(cut, None, true))
                    .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
                Ok(TokenizedInput {
                    truncated: !encoding.get_overflowing().is_empty(),
                    ids: encoding.get_ids().to_vec(),
                })
            })
            .collect()
    }

    /// Runs the encoder on one batch, pools and normalises.
    fn forward_batch(&self, members: &[&TokenizedInput]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let batch = PackedBatch::new(members.iter().map(|m| m.ids.as_slice()));
        self.encoder.embed(&batch, &self.config)
    }
}

/// Passages are sized by the corpus stage with the model's own tokenizer, prompt included.
impl crate::corpus::TokenCounter for Embedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.token_count(Role::Passage, text).unwrap_or_else(|e| {
            // Counting as oversized makes the corpus stage split the text rather than lose it.
            tracing::warn!(error = %e, "cannot tokenize a passage; treating it as oversized");
            usize::MAX
        })
    }
}

struct TokenizedInput {
    ids: Vec<u32>,
    truncated: bool,
}
