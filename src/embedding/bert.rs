//! wenda's own BERT encoder forward pass, for CPU inference speed.
//!
//! It computes exactly what Hugging Face's `BertModel` computes (absolute positions, post-LayerNorm,
//! erf GELU), arranged for a CPU: weights are read through candle's `VarBuilder` and packed once
//! for [`gemm`](super::gemm); the query, key and value projections are one fused product; bias,
//! residual and GELU are fused into the
//! products' epilogues; and the texts of a batch are packed back to back without padding, with
//! [`attention`](super::attention) working within each text. candle-transformers' `BertModel`
//! remains available as the reference backend, and tests hold the two together.

use std::ops::Range;
use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use rayon::prelude::*;

use super::attention::{attention, Heads};
use super::batching::PackedBatch;
use super::gemm::{matmul, Epilogue, PackedMatrix};
use super::vector_math::lane_sum;
use super::EmbeddingError;

/// A loaded BERT encoder.
pub struct BertEncoder {
    /// `[vocab, hidden]` row-major.
    word_embeddings: TokenTable,
    /// `[max_positions, hidden]` row-major.
    position_embeddings: Vec<f32>,
    /// Row 0 of the token-type table: sentence models embed single segments.
    token_type_embedding: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<EncoderLayer>,
    heads: Heads,
    intermediate: usize,
}

struct EncoderLayer {
    /// Query, key and value projections stacked into one `hidden → 3 × hidden` product.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: Norm,
}

struct Linear {
    weight: PackedMatrix,
    bias: Vec<f32>,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

fn to_vec(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1()
}

impl Linear {
    fn new(weight: Tensor, bias: Tensor) -> candle_core::Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        Ok(Self {
            weight: PackedMatrix::from_weight(&to_vec(weight)?, outputs, inputs),
            bias: to_vec(bias)?,
        })
    }

    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        Self::new(
            vb.get((outputs, inputs), "weight")?,
            vb.get(outputs, "bias")?,
        )
    }

    /// `out = x · Wᵀ + b (+ residual) (then GELU)` for `x` of `rows` rows.
    fn apply(
        &self,
        x: &[f32],
        rows: usize,
        residual: Option<&[f32]>,
        gelu: bool,
        out: &mut Vec<f32>,
    ) {
        out.resize(rows * self.weight.cols(), 0.0);
        let epilogue = Epilogue {
            bias: Some(&self.bias),
            residual,
            gelu,
        };
        matmul(x, rows, &self.weight, epilogue, out);
    }
}

impl Norm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            weight: to_vec(vb.get(size, "weight")?)?,
            bias: to_vec(vb.get(size, "bias")?)?,
            eps: eps as f32,
        })
    }

    /// LayerNorm of every row of `x`, in place.
    fn apply(&self, x: &mut [f32]) {
        let width = self.weight.len();
        // A query's few rows take less time than handing them to another thread.
        x.par_chunks_mut(width)
            .with_min_len(64)
            .for_each(|row| self.normalize(row));
    }

    fn normalize(&self, row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { self.normalize_avx2(row) };
            }
        }
        self.normalize_portable(row)
    }

    /// The portable normalisation compiled for AVX2 and FMA, which LLVM vectorises.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn normalize_avx2(&self, row: &mut [f32]) {
        self.normalize_portable(row)
    }

    #[inline(always)]
    fn normalize_portable(&self, row: &mut [f32]) {
        let width = row.len() as f32;
        let mean = lane_sum(row, |v| v) / width;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / width;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// The token-embedding table, `[vocab, hidden]` row-major: 250,000 rows (366 MiB) for e5's
/// vocabulary, of which a corpus uses a few thousand.
enum TokenTable {
    /// Copied into memory: weights built in memory, or not stored as little-endian f32.
    Owned(Vec<f32>),
    /// Read in place from the memory-mapped weights file, so only the pages of rows in use
    /// become resident. `start` is the table's first byte in `map`.
    Mapped {
        map: memmap2::Mmap,
        start: usize,
        rows: usize,
    },
}

impl TokenTable {
    /// The table named `name` in the safetensors file at `path`, mapped, when it is stored as
    /// `rows × hidden` little-endian f32 values; `None` otherwise (it is then copied).
    fn map(path: &Path, name: &str, rows: usize, hidden: usize) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the mapping is read-only and wenda never writes a model file it has loaded;
        // a file changed by someone else while mapped would change the vectors it gives, as
        // candle's own mapping of the same file would.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let (header, metadata) = safetensors::SafeTensors::read_metadata(&map).ok()?;
        let info = metadata.info(name)?;
        let (begin, end) = info.data_offsets;
        let start = 8 + header + begin;
        let fits = info.dtype == safetensors::Dtype::F32
            && info.shape == [rows, hidden]
            && end - begin == rows * hidden * 4
            && 8 + header + end <= map.len();
        fits.then_some(Self::Mapped { map, start, rows })
    }

    fn rows(&self, hidden: usize) -> usize {
        match self {
            Self::Owned(values) => values.len() / hidden,
            Self::Mapped { rows, .. } => *rows,
        }
    }

    /// Copies row `token` into `out` (`hidden` values).
    fn row_into(&self, token: usize, out: &mut [f32]) {
        let hidden = out.len();
        match self {
            Self::Owned(values) => out.copy_from_slice(&values[token * hidden..][..hidden]),
            Self::Mapped { map, start, .. } => {
                let bytes = &map[start + token * hidden * 4..][..hidden * 4];
                for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }
}

impl BertEncoder {
    /// Loads the weights of a Hugging Face `BertModel` checkpoint (with or without a `bert.`
    /// prefix). With `weights`, the safetensors file `vb` reads, the token-embedding table is
    /// read from it in place rather than copied.
    pub fn load(
        vb: VarBuilder,
        config: &Config,
        weights: Option<&Path>,
    ) -> Result<Self, EmbeddingError> {
        if config.hidden_act != HiddenAct::Gelu {
            return Err(EmbeddingError::Unsupported(format!(
                "hidden_act {:?}: wenda's BERT encoder implements erf GELU only",
                config.hidden_act
            )));
        }
        if config.position_embedding_type != PositionEmbeddingType::Absolute {
            return Err(EmbeddingError::Unsupported(
                "only absolute position embeddings are supported".into(),
            ));
        }
        let (vb, prefix) = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            (vb, "")
        } else {
            (vb.pp("bert"), "bert.")
        };
        let hidden = config.hidden_size;
        let count = config.num_attention_heads;
        if count == 0 || !hidden.is_multiple_of(count) {
            return Err(EmbeddingError::Unsupported(format!(
                "hidden size {hidden} is not divisible by {count} heads"
            )));
        }
        let heads = Heads {
            count,
            dim: hidden / count,
        };
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let table = format!("{prefix}embeddings.word_embeddings.weight");
        let word_embeddings = match weights
            .and_then(|path| TokenTable::map(path, &table, config.vocab_size, hidden))
        {
            Some(mapped) => mapped,
            None => TokenTable::Owned(to_vec(
                emb.get((config.vocab_size, hidden), "word_embeddings.weight")?,
            )?),
        };
        let position_embeddings = to_vec(emb.get(
            (config.max_position_embeddings, hidden),
            "position_embeddings.weight",
        )?)?;
        let token_type_embedding = to_vec(
            emb.get(
                (config.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?
            .get(0)?,
        )?;
        let embedding_norm = Norm::load(emb.pp("LayerNorm"), hidden, eps)?;

        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layer.{i}"));
                let attn = vb.pp("attention");
                let this = attn.pp("self");
                let projection = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                    let p = this.pp(name);
                    Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
                };
                let (qw, qb) = projection("query")?;
                let (kw, kb) = projection("key")?;
                let (vw, vb_) = projection("value")?;
                let qkv = Linear::new(
                    Tensor::cat(&[qw, kw, vw], 0)?,
                    Tensor::cat(&[qb, kb, vb_], 0)?,
                )?;
                Ok(EncoderLayer {
                    qkv,
                    attention_out: Linear::load(attn.pp("output.dense"), hidden, hidden)?,
                    attention_norm: Norm::load(attn.pp("output.LayerNorm"), hidden, eps)?,
                    ffn_in: Linear::load(
                        vb.pp("intermediate.dense"),
                        hidden,
                        config.intermediate_size,
                    )?,
                    ffn_out: Linear::load(vb.pp("output.dense"), config.intermediate_size, hidden)?,
                    output_norm: Norm::load(vb.pp("output.LayerNorm"), hidden, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let block_stored = layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.attention_out, &l.ffn_in, &l.ffn_out])
            .filter(|linear| linear.weight.is_block_stored())
            .count();
        tracing::debug!(
            block_stored,
            total = layers.len() * 4,
            "linear weights held in exact block storage"
        );
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embedding_norm,
            layers,
            heads,
            intermediate: config.intermediate_size,
        })
    }

    fn hidden(&self) -> usize {
        self.heads.count * self.heads.dim
    }

    /// Last hidden states `[tokens, hidden]`, row-major, of the packed batch's tokens: each
    /// sequence attends only to itself, and no padding is computed.
    pub fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>, EmbeddingError> {
        let max_positions = self.position_embeddings.len() / self.hidden();
        if let Some(long) = batch.sequences().iter().find(|s| s.len() > max_positions) {
            return Err(EmbeddingError::Input(format!(
                "sequence of {} tokens exceeds the {max_positions} positions",
                long.len()
            )));
        }
        let vocab = self.word_embeddings.rows(self.hidden());
        if let Some(bad) = batch.ids().iter().find(|&&id| id as usize >= vocab) {
            return Err(EmbeddingError::Input(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        // On a thread of rayon's pool: the products fork and join a hundred times in a
        // question's forward pass, and from a thread outside the pool each join is a hand-off
        // through a lock and a context switch (`rayon::scope` runs its closure on a worker).
        Ok(rayon::scope(|_| {
            self.forward_packed(batch.ids(), batch.sequences())
        }))
    }

    /// Hidden states `[tokens, hidden]` of sequences packed back to back (`seqs` index `tokens`).
    fn forward_packed(&self, tokens: &[u32], seqs: &[Range<usize>]) -> Vec<f32> {
        let hidden = self.hidden();
        let n = tokens.len();
        let mut x = vec![0f32; n * hidden];
        let mut word = vec![0f32; hidden];
        for seq in seqs {
            for (position, t) in seq.clone().enumerate() {
                self.word_embeddings.row_into(tokens[t] as usize, &mut word);
                let pos = &self.position_embeddings[position * hidden..][..hidden];
                let row = &mut x[t * hidden..(t + 1) * hidden];
                for (i, v) in row.iter_mut().enumerate() {
                    *v = word[i] + pos[i] + self.token_type_embedding[i];
                }
            }
        }
        self.embedding_norm.apply(&mut x);
        // Buffers live across layers: every layer has the same shapes.
        let mut qkv = Vec::with_capacity(n * 3 * hidden);
        let mut context = vec![0f32; n * hidden];
        let mut attended = Vec::with_capacity(n * hidden);
        let mut intermediate = Vec::with_capacity(n * self.intermediate);
        for layer in &self.layers {
            layer.qkv.apply(&x, n, None, false, &mut qkv);
            attention(&qkv, seqs, self.heads, &mut context);
            layer
                .attention_out
                .apply(&context, n, Some(&x), false, &mut attended);
            layer.attention_norm.apply(&mut attended);
            layer
                .ffn_in
                .apply(&attended, n, None, true, &mut intermediate);
            layer
                .ffn_out
                .apply(&intermediate, n, Some(&attended), false, &mut x);
            layer.output_norm.apply(&mut x);
        }
        x
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// A tiny randomly initialised BERT, built in memory, for tests that need no download.
    pub(crate) fn tiny_config() -> Config {
        Config {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            ..Config::default()
        }
    }

    pub(crate) fn tiny_weights(config: &Config) -> VarMap {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        // Building candle-transformers' reference model registers every weight in the map.
        candle_transformers::models::bert::BertModel::load(vb, config).unwrap();
        varmap
    }

    #[test]
    fn matches_candle_transformers_bert_with_padding() {
        let config = tiny_config();
        let varmap = tiny_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let reference =
            candle_transformers::models::bert::BertModel::load(vb.clone(), &config).unwrap();
        let ours = BertEncoder::load(vb, &config, None).unwrap();

        let ids =
            Tensor::new(&[[0u32, 5, 9, 17, 2, 1], [0, 33, 2, 1, 1, 1]], &Device::Cpu).unwrap();
        let mask = Tensor::new(
            &[[1f32, 1., 1., 1., 1., 0.], [1., 1., 1., 0., 0., 0.]],
            &Device::Cpu,
        )
        .unwrap();
        let types = ids.zeros_like().unwrap();
        let expected = reference.forward(&ids, &types, Some(&mask)).unwrap();
        let batch = PackedBatch::new([&[0u32, 5, 9, 17, 2][..], &[0, 33, 2][..]]);
        let actual = ours.forward(&batch).unwrap();
        let hidden = config.hidden_size;
        // Compare real tokens only: padded positions carry no meaning in the reference.
        for (row, seq) in batch.sequences().iter().enumerate() {
            let e = expected.get(row).unwrap().narrow(0, 0, seq.len()).unwrap();
            let e = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let a = &actual[seq.start * hidden..seq.end * hidden];
            let diff = max_abs_difference(&e, a);
            assert!(diff < 1e-4, "row {row}: max abs difference {diff}");
        }
    }

    fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn packing_does_not_change_a_sequence() {
        let config = tiny_config();
        let varmap = tiny_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = BertEncoder::load(vb, &config, None).unwrap();
        let sequence = [0u32, 7, 8, 2];
        let alone = model.forward(&PackedBatch::new([&sequence[..]])).unwrap();
        let packed = model
            .forward(&PackedBatch::new([
                &[0u32, 40, 41, 42, 2][..],
                &sequence[..],
            ]))
            .unwrap();
        let diff = max_abs_difference(&alone, &packed[5 * config.hidden_size..]);
        assert!(diff < 1e-5, "max abs difference {diff}");
    }

    #[test]
    fn refuses_sequences_it_cannot_encode() {
        let config = tiny_config();
        let varmap = tiny_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = BertEncoder::load(vb, &config, None).unwrap();
        let too_long = vec![0u32; config.max_position_embeddings + 1];
        let error = model
            .forward(&PackedBatch::new([&too_long[..]]))
            .unwrap_err();
        assert!(error.to_string().contains("exceeds"), "{error}");
        let outside = [0u32, config.vocab_size as u32];
        let error = model
            .forward(&PackedBatch::new([&outside[..]]))
            .unwrap_err();
        assert!(error.to_string().contains("vocabulary"), "{error}");
    }
}
