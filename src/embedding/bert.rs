//! wenda's own BERT encoder forward pass, written on candle-core ops for CPU inference speed.
//!
//! It computes exactly what Hugging Face's `BertModel` computes (absolute positions, post-LayerNorm,
//! erf GELU), with the work arranged for a CPU: the query, key and value projections are one fused
//! matrix multiplication, the attention scale is folded into the query weights at load time, linear
//! layers run on the flattened `[tokens, hidden]` matrix, and LayerNorm and softmax use candle-nn's
//! fused kernels. Padding is masked with an additive bias, so a batch gives the same vectors as its
//! inputs one at a time.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};

use super::EmbeddingError;

/// A loaded BERT encoder.
pub struct BertEncoder {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    /// Row 0 of the token-type table: sentence models embed single segments.
    token_type_embedding: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    heads: usize,
    head_dim: usize,
}

struct EncoderLayer {
    /// Query, key and value projections stacked into one `[3 * hidden, hidden]` matrix.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: LayerNorm,
}

impl BertEncoder {
    /// Loads the weights of a Hugging Face `BertModel` checkpoint (with or without a `bert.` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self, EmbeddingError> {
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
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if hidden % heads != 0 {
            return Err(EmbeddingError::Unsupported(format!(
                "hidden size {hidden} is not divisible by {heads} heads"
            )));
        }
        let head_dim = hidden / heads;
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let word_embeddings = emb.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let position_embeddings = emb.get(
            (config.max_position_embeddings, hidden),
            "position_embeddings.weight",
        )?;
        let token_type_embedding = emb
            .get(
                (config.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?
            .get(0)?;
        let embedding_norm = candle_nn::layer_norm(hidden, eps, emb.pp("LayerNorm"))?;

        let query_scale = 1.0 / (head_dim as f64).sqrt();
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
                // softmax(q·k / sqrt(d)) == softmax((q / sqrt(d))·k): scale once, here.
                let qkv_weight = Tensor::cat(&[(qw * query_scale)?, kw, vw], 0)?;
                let qkv_bias = Tensor::cat(&[(qb * query_scale)?, kb, vb_], 0)?;
                Ok(EncoderLayer {
                    qkv: Linear::new(qkv_weight, Some(qkv_bias)),
                    attention_out: candle_nn::linear(hidden, hidden, attn.pp("output.dense"))?,
                    attention_norm: candle_nn::layer_norm(
                        hidden,
                        eps,
                        attn.pp("output.LayerNorm"),
                    )?,
                    ffn_in: candle_nn::linear(
                        hidden,
                        config.intermediate_size,
                        vb.pp("intermediate.dense"),
                    )?,
                    ffn_out: candle_nn::linear(
                        config.intermediate_size,
                        hidden,
                        vb.pp("output.dense"),
                    )?,
                    output_norm: candle_nn::layer_norm(hidden, eps, vb.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embedding_norm,
            layers,
            heads,
            head_dim,
        })
    }

    /// Last hidden states `[batch, seq, hidden]` for `input_ids` `[batch, seq]` (u32) with
    /// `attention_mask` `[batch, seq]` (f32, 1 for real tokens, 0 for padding).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        let hidden = self.heads * self.head_dim;
        let words = self
            .word_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?;
        let positions = self.position_embeddings.narrow(0, 0, seq)?;
        let x = words
            .reshape((batch, seq, hidden))?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_embedding)?;
        let mut x = self
            .embedding_norm
            .forward(&x)?
            .reshape((batch * seq, hidden))?;
        // 0 where attended, a large negative number on padding; broadcast over heads and queries.
        let mask_bias =
            ((attention_mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &mask_bias, batch, seq)?;
        }
        x.reshape((batch, seq, hidden))
    }

    fn layer_forward(
        &self,
        layer: &EncoderLayer,
        x: &Tensor,
        mask_bias: &Tensor,
        batch: usize,
        seq: usize,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.heads * self.head_dim;
        let qkv = layer
            .qkv
            .forward(x)?
            .reshape((batch, seq, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?; // [3, batch, heads, seq, head_dim]
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * seq, hidden))?;
        let attended = layer
            .attention_norm
            .forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let ffn = layer
            .ffn_out
            .forward(&layer.ffn_in.forward(&attended)?.gelu_erf()?)?;
        layer.output_norm.forward(&(ffn + attended)?)
    }
}

/// Loads a `BertEncoder` from safetensors files on the CPU.
pub fn load_from_safetensors(
    weights: &std::path::Path,
    config: &Config,
) -> Result<BertEncoder, EmbeddingError> {
    // Safety: the file is memory-mapped read-only; wenda never writes model files it has loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu)? };
    BertEncoder::load(vb, config)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
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
        let ours = BertEncoder::load(vb, &config).unwrap();

        let ids =
            Tensor::new(&[[0u32, 5, 9, 17, 2, 1], [0, 33, 2, 1, 1, 1]], &Device::Cpu).unwrap();
        let mask = Tensor::new(
            &[[1f32, 1., 1., 1., 1., 0.], [1., 1., 1., 0., 0., 0.]],
            &Device::Cpu,
        )
        .unwrap();
        let types = ids.zeros_like().unwrap();
        let expected = reference.forward(&ids, &types, Some(&mask)).unwrap();
        let actual = ours.forward(&ids, &mask).unwrap();
        // Compare real tokens only: padded positions carry no meaning in either model.
        for (row, len) in [(0usize, 5usize), (1, 3)] {
            let e = expected.get(row).unwrap().narrow(0, 0, len).unwrap();
            let a = actual.get(row).unwrap().narrow(0, 0, len).unwrap();
            let diff: f32 = (e - a)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-4, "row {row}: max abs difference {diff}");
        }
    }

    #[test]
    fn padding_does_not_change_real_tokens() {
        let config = tiny_config();
        let varmap = tiny_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = BertEncoder::load(vb, &config).unwrap();
        let alone = model
            .forward(
                &Tensor::new(&[[0u32, 7, 8, 2]], &Device::Cpu).unwrap(),
                &Tensor::new(&[[1f32, 1., 1., 1.]], &Device::Cpu).unwrap(),
            )
            .unwrap();
        let padded = model
            .forward(
                &Tensor::new(&[[0u32, 7, 8, 2, 1, 1, 1]], &Device::Cpu).unwrap(),
                &Tensor::new(&[[1f32, 1., 1., 1., 0., 0., 0.]], &Device::Cpu).unwrap(),
            )
            .unwrap()
            .narrow(1, 0, 4)
            .unwrap();
        let diff: f32 = (alone - padded)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "max abs difference {diff}");
    }
}
