//! What a model directory says about how to run it: architecture, dimensions, pooling and prompts.
//!
//! The files read are the ones sentence-transformers writes (`config.json`, `1_Pooling/config.json`,
//! `config_sentence_transformers.json`), so any BERT-family sentence model from the hub loads without
//! wenda-specific metadata. Where a model family needs prompts that its files do not declare (the e5
//! models predate the `prompts` field), a small built-in table supplies them.

use std::path::Path;

use serde::Deserialize;

use super::resolve::ModelFiles;
use super::EmbeddingError;

/// Which encoder implementation a checkpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    XlmRoberta,
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the last hidden states over real (unpadded) tokens.
    Mean,
    /// The hidden state of the first token (`[CLS]` / `<s>`).
    Cls,
}

/// Text prepended to inputs by role, as the model was trained to expect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts {
    pub query: String,
    pub passage: String,
}

/// Everything wenda needs to know about a model before loading its weights.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub hidden_size: usize,
    /// Longest input the encoder accepts, special tokens included.
    pub max_tokens: usize,
    pub pad_token_id: u32,
    pub pooling: Pooling,
    pub prompts: Prompts,
    /// `config.json` as read, for the architecture-specific loaders.
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
struct CommonFields {
    model_type: Option<String>,
    hidden_size: usize,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<u32>,
    #[serde(default, rename = "_name_or_path")]
    name_or_path: Option<String>,
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceTransformersFile {
    #[serde(default)]
    prompts: std::collections::HashMap<String, String>,
}

/// Hard ceiling: absolute position tables of BERT-family sentence models stop at 512.
const MAX_MODEL_TOKENS: usize = 512;

impl ModelConfig {
    /// Reads the configuration files of a resolved model.
    pub fn read(files: &ModelFiles) -> Result<Self, EmbeddingError> {
        let raw: serde_json::Value = read_json(&files.config)?;
        let common: CommonFields = serde_json::from_value(raw.clone())
            .map_err(|e| EmbeddingError::config(&files.config, e))?;
        let architecture = match common.model_type.as_deref() {
            Some("bert") | None => Architecture::Bert,
            Some("xlm-roberta") | Some("roberta") => Architecture::XlmRoberta,
            Some(other) => {
                return Err(EmbeddingError::config(
                    &files.config,
                    format!("model_type {other:?} is not supported (bert, xlm-roberta)"),
                ))
            }
        };
        // RoBERTa-style position ids start after the padding index, which costs two table rows.
        let position_offset = match architecture {
            Architecture::Bert => 0,
            Architecture::XlmRoberta => common.pad_token_id.unwrap_or(1) as usize + 1,
        };
        let max_tokens = common
            .max_position_embeddings
            .saturating_sub(position_offset)
            .min(MAX_MODEL_TOKENS);
        let pooling =
            match &files.pooling_config {
                Some(path) => {
                    let file: PoolingFile = read_json(path)?;
                    match (file.pooling_mode_mean_tokens, file.pooling_mode_cls_token) {
                        (true, _) => Pooling::Mean,
                        (false, true) => Pooling::Cls,
                        (false, false) => return Err(EmbeddingError::config(
                            path,
                            "neither mean nor CLS pooling is enabled; wenda supports only these",
                        )),
                    }
                }
                None => Pooling::Mean,
            };
        let declared = match &files.sentence_transformers_config {
            Some(path) => read_json::<SentenceTransformersFile>(path)?.prompts,
            None => Default::default(),
        };
        let prompts = match (declared.get("query"), declared.get("passage")) {
            (Some(query), Some(passage)) => Prompts {
                query: query.clone(),
                passage: passage.clone(),
            },
            _ => known_family_prompts(common.name_or_path.as_deref().unwrap_or(&files.name)),
        };
        Ok(Self {
            architecture,
            hidden_size: common.hidden_size,
            max_tokens,
            pad_token_id: common.pad_token_id.unwrap_or(0),
            pooling,
            prompts,
            raw,
        })
    }
}

/// Prompts of model families whose published files do not declare them.
fn known_family_prompts(name: &str) -> Prompts {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    if base.contains("e5-") && !base.contains("instruct") {
        Prompts {
            query: "query: ".into(),
            passage: "passage: ".into(),
        }
    } else {
        Prompts::default()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbeddingError> {
    let bytes = std::fs::read(path).map_err(|e| EmbeddingError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| EmbeddingError::config(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e5_family_gets_its_prompts_and_others_none() {
        let e5 = known_family_prompts("intfloat/multilingual-e5-small");
        assert_eq!(e5.query, "query: ");
        assert_eq!(e5.passage, "passage: ");
        assert_eq!(
            known_family_prompts("sentence-transformers/all-MiniLM-L6-v2"),
            Prompts::default()
        );
    }
}
