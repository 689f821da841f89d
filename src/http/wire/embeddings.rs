//! `POST /v1/embeddings`, in the shapes of OpenAI's embeddings API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::embedding::Role;

/// `POST /v1/embeddings`, as OpenAI's embeddings API takes it. `model`, `user` and other fields
/// OpenAI clients send are accepted; `model` does not select anything (one model is served).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// One text or up to 128; none may be empty.
    pub input: EmbeddingsInput,
    /// Accepted and ignored: the served model answers.
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Must equal the model's dimensions when given (wenda does not shorten vectors).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// `"passage"` (default: texts to index) or `"query"` (questions): decides the model's
    /// prompt. The name follows the `input_type` convention of other embedding APIs.
    #[serde(default)]
    pub input_type: Option<InputType>,
}

/// What embedded texts are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// A question or search text.
    Query,
    /// Text that is indexed and retrieved.
    Passage,
}

impl From<InputType> for Role {
    fn from(input: InputType) -> Self {
        match input {
            InputType::Query => Self::Query,
            InputType::Passage => Self::Passage,
        }
    }
}

/// One text or several. OpenAI's API also takes token ids (one array or several), which
/// LangChain's `OpenAIEmbeddings` sends by default; they are read only to be refused with a
/// message naming the fix, since ids from the client's tokenizer mean nothing to this model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsInput {
    One(NonBlank),
    /// 1 to 128 texts.
    Many(Vec<NonBlank>),
    /// Refused: 422 `token_ids_not_supported`.
    TokenIds(Vec<u32>),
    /// Refused: 422 `token_ids_not_supported`.
    ManyTokenIds(Vec<Vec<u32>>),
}

/// A text with something besides whitespace in it (checked by the service).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, min_length = 1, pattern = r"\S")]
pub struct NonBlank(pub String);

impl EmbeddingsInput {
    /// The texts, or `None` when the input is token ids.
    pub fn into_texts(self) -> Option<Vec<String>> {
        match self {
            Self::One(text) => Some(vec![text.0]),
            Self::Many(texts) => Some(texts.into_iter().map(|text| text.0).collect()),
            Self::TokenIds(_) | Self::ManyTokenIds(_) => None,
        }
    }
}

/// How vectors are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes (what the official OpenAI clients ask for).
    Base64,
}

/// The vectors, in input order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `"list"`.
    pub object: String,
    pub data: Vec<EmbeddingData>,
    /// The model that embedded the inputs.
    pub model: String,
    pub usage: Usage,
}

/// One input's vector.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingData {
    /// Always `"embedding"`.
    pub object: String,
    /// Position of the input.
    pub index: usize,
    /// L2-normalised: the dot product of two vectors is their cosine similarity.
    pub embedding: EmbeddingVector,
    /// The input was longer than the model's window and only its beginning was embedded.
    pub truncated: bool,
}

/// Numbers (`float`) or base64 of little-endian f32 (`base64`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

/// What the request cost.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Tokens the model read, prompts and special tokens included.
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}
