//! The JSON the API reads and writes. Kept apart from the domain types so the wire format changes
//! only on purpose.

use serde::{Deserialize, Serialize};

use crate::corpus::{Citation, Passage, Position};
use crate::embedding::Role;
use crate::search::{Context, Filter, IsoDate, Mode, Ranked};

/// `POST /v1/search` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Also return a prompt-ready context block of the results, within this budget.
    #[serde(default)]
    pub context: Option<ContextBudget>,
}

/// The size of a context block: characters or tokens (of the embedding model's tokenizer, a
/// close proxy for most LLMs' on Chinese text); exactly one.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextBudget {
    #[serde(default)]
    pub max_chars: Option<usize>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

/// `GET /v1/search` query string: the POST body's fields, with the filter's fields inline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub min_score: Option<f32>,
    pub document: Option<String>,
    pub title: Option<String>,
    pub date_from: Option<IsoDate>,
    pub date_to: Option<IsoDate>,
    pub context_chars: Option<usize>,
    pub context_tokens: Option<usize>,
}

impl From<SearchQuery> for SearchRequest {
    fn from(query: SearchQuery) -> Self {
        Self {
            query: query.q,
            top_k: query.top_k,
            mode: query.mode.unwrap_or_default(),
            filter: Filter {
                document: query.document,
                title: query.title,
                date_from: query.date_from,
                date_to: query.date_to,
            },
            min_score: query.min_score,
            context: (query.context_chars.is_some() || query.context_tokens.is_some()).then_some(
                ContextBudget {
                    max_chars: query.context_chars,
                    max_tokens: query.context_tokens,
                },
            ),
        }
    }
}

/// `GET /v1/passages/{id}/similar` query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarQuery {
    pub top_k: Option<usize>,
    pub min_score: Option<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SearchResponse {
    pub query: String,
    pub mode: Mode,
    /// Tokens the model read of the query (prompt and special tokens included); absent in
    /// lexical mode, which does not run the model.
    pub query_tokens: Option<usize>,
    /// The query was longer than the model's window; only its beginning was used.
    pub truncated: bool,
    pub results: Vec<ScoredPassage>,
    /// When asked for: the results as a numbered context block with its citations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    pub took_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SimilarResponse {
    /// The passage the results are related to.
    pub id: String,
    pub results: Vec<ScoredPassage>,
    pub took_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ScoredPassage {
    /// What the ranking used: the cosine (dense), the normalised BM25 (lexical) or
    /// `(1 − w)·cosine + w·lexical` (hybrid).
    pub score: f32,
    /// The components behind `score`.
    pub scores: ComponentScores,
    #[serde(flatten)]
    pub passage: PassageView,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ComponentScores {
    /// Cosine similarity of question and passage embeddings, in [-1, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<f32>,
    /// BM25 over shared words divided by the most the question could score, in [0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<f32>,
}

impl From<Ranked<'_>> for ScoredPassage {
    fn from(ranked: Ranked<'_>) -> Self {
        Self {
            score: ranked.score,
            scores: ComponentScores {
                dense: ranked.dense,
                lexical: ranked.lexical,
            },
            passage: ranked.passage.into(),
        }
    }
}

/// A passage as clients see it: its text, where it comes from and how to cite it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PassageView {
    pub id: String,
    pub text: String,
    pub document: DocumentRef,
    pub position: Position,
    pub citation: Citation,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DocumentRef {
    pub path: String,
    pub title: Option<String>,
    /// `YYYY-MM-DD` when the printed date is a recognised day, else the date as printed.
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
}

impl From<&Passage> for PassageView {
    fn from(passage: &Passage) -> Self {
        let article = &passage.article;
        Self {
            id: passage.id.to_string(),
            text: passage.text.clone(),
            document: DocumentRef {
                path: passage.citation.path.clone(),
                title: article.title.clone(),
                date: article.date.as_ref().map(|d| d.label().to_owned()),
                source: article.source.clone(),
                url: article.url.clone(),
            },
            position: passage.position.clone(),
            citation: passage.citation.clone(),
        }
    }
}

/// `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub version: String,
    pub model: ModelInfo,
    pub passages: usize,
    pub documents: usize,
    pub index_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub dimensions: usize,
    pub pooling: String,
    /// The model's window: longer texts are truncated.
    pub max_tokens: usize,
}

/// `GET /health` and `GET /ready` when all is well.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
}

/// `POST /v1/embeddings`, as OpenAI's embeddings API takes it. `model`, `user` and other fields
/// OpenAI clients send are accepted; `model` does not select anything (one model is served).
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub input: EmbeddingsInput,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Must equal the model's dimensions when given (wenda does not shorten vectors).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// `"passage"` (default: texts to index) or `"query"` (questions): decides the model's
    /// prompt. The name follows the `input_type` convention of other embedding APIs.
    #[serde(default)]
    pub input_type: Option<Role>,
}

/// One text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingsInput {
    One(String),
    Many(Vec<String>),
}

impl EmbeddingsInput {
    pub fn into_texts(self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text],
            Self::Many(texts) => texts,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes (what the official OpenAI clients ask for).
    Base64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// Always `"list"`.
    pub object: String,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingData {
    /// Always `"embedding"`.
    pub object: String,
    pub index: usize,
    pub embedding: EmbeddingVector,
    /// The input was longer than the model's window and only its beginning was embedded.
    pub truncated: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens the model read, prompts and special tokens included.
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}
