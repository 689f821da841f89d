//! The JSON the API reads and writes. Kept apart from the domain types so the wire format changes
//! only on purpose.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::corpus::{Citation, Passage, Position};
use crate::embedding::Role;
use crate::search::{Context, Filter, IsoDate, Mode, Ranked};

/// `POST /v1/search` body. Only `query` is required; unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or search text, in any language the model knows (Chinese, English, …).
    /// Full questions work best.
    #[schema(
        example = "中央政治局集体学习时对人工智能发展提出了什么要求？",
        min_length = 1,
        pattern = r"\S"
    )]
    pub query: String,
    /// How many passages to return, 1 to 100 (default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100, example = 5)]
    pub top_k: Option<usize>,
    /// How to rank: `hybrid` (default, meaning and shared words), `dense` (meaning only:
    /// paraphrases, other languages) or `lexical` (shared words only: names, numbers).
    #[serde(default)]
    pub mode: Mode,
    /// Narrows the passages considered before ranking.
    #[serde(default, deserialize_with = "object")]
    pub filter: Filter,
    /// Leave out results whose cosine similarity to the query is below this (−1 to 1).
    #[serde(default)]
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub min_score: Option<f32>,
    /// Also return the results as a prompt-ready context block with numbered citations,
    /// filled up to this budget.
    #[serde(default, deserialize_with = "object")]
    pub context: Option<ContextBudget>,
    /// Mark where each result contains the query's words (`highlights`); default true.
    /// Turning it off saves about 0.05 ms per result.
    #[serde(default)]
    pub highlight: Option<bool>,
}

/// The size of a context block: characters or tokens (of the embedding model's tokenizer, a
/// close proxy for most LLMs' on Chinese text); exactly one.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct ContextBudget {
    /// Most characters of the block (1 to 1,000,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000, example = 1500, nullable = false)]
    pub max_chars: Option<usize>,
    /// Most tokens of the block (1 to 1,000,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000, nullable = false)]
    pub max_tokens: Option<usize>,
}

/// `GET /v1/search` query string: the POST body's fields, with the filter's fields inline.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The question or search text, in any language the model knows.
    #[param(example = "模速空间在哪个区？", min_length = 1, pattern = r"\S")]
    pub q: String,
    /// How many passages to return, 1 to 100 (default 5).
    #[param(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// `hybrid` (default), `dense` or `lexical`.
    pub mode: Option<Mode>,
    /// Leave out results whose cosine similarity to the query is below this (−1 to 1).
    #[param(minimum = -1.0, maximum = 1.0)]
    pub min_score: Option<f32>,
    /// Only passages of this document (its `path`, exactly as results show it).
    pub document: Option<String>,
    /// Only passages whose article title contains this text.
    pub title: Option<String>,
    /// Only passages dated on or after this day (`YYYY-MM-DD`).
    pub date_from: Option<IsoDate>,
    /// Only passages dated on or before this day (`YYYY-MM-DD`).
    pub date_to: Option<IsoDate>,
    /// Also return a context block of at most this many characters (not with
    /// `context_tokens`).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub context_chars: Option<usize>,
    /// Also return a context block of at most this many tokens (not with `context_chars`).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub context_tokens: Option<usize>,
    /// Mark where each result contains the query's words (`highlights`); default true.
    pub highlight: Option<bool>,
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
            highlight: query.highlight,
        }
    }
}

/// `GET /v1/passages/{id}/similar` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many passages to return, 1 to 100 (default 5).
    #[param(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// Leave out results whose cosine similarity is below this (−1 to 1).
    #[param(minimum = -1.0, maximum = 1.0)]
    pub min_score: Option<f32>,
}

/// The passages that best answer a query, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// The query, as received.
    pub query: String,
    /// The ranking used.
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

/// The passages closest in meaning to one passage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimilarResponse {
    /// The passage the results are related to.
    pub id: String,
    pub results: Vec<ScoredPassage>,
    /// Time spent answering, in milliseconds.
    pub took_ms: f64,
}

/// A result: a passage with its scores.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScoredPassage {
    /// What the ranking used: the cosine (dense), the normalised BM25 (lexical) or
    /// `(1 − w)·cosine + w·lexical` (hybrid).
    pub score: f32,
    /// The components behind `score`.
    pub scores: ComponentScores,
    #[serde(flatten)]
    pub passage: PassageView,
    /// Search results only: where the text contains the query's informative words, as
    /// `[start, end)` offsets in Unicode code points (not bytes, not UTF-16 units), sorted
    /// and disjoint. One-character words and words in more than half of the passages (的, the)
    /// are not marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<usize>>>, example = json!([[5, 9]]))]
    pub highlights: Option<Vec<[usize; 2]>>,
}

/// Scores that make up a result's `score`; each is present when the mode used it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
            highlights: None,
        }
    }
}

/// A passage as clients see it: its text, where it comes from and how to cite it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PassageView {
    /// Stable id: `<document path>~<article>.<paragraph>`, plus `.<piece>` when a long paragraph
    /// was split. Use it with `/v1/passages/{id}`.
    #[schema(example = "000_6b84f5fb9e9426be.txt~2.1")]
    pub id: String,
    /// The passage, whitespace-normalised on one line; Chinese text has no added spaces.
    pub text: String,
    pub document: DocumentRef,
    pub position: Position,
    pub citation: Citation,
}

/// The document (news article) a passage comes from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentRef {
    /// The file's path relative to its corpus directory.
    pub path: String,
    /// The article's headline.
    pub title: Option<String>,
    /// `YYYY-MM-DD` when the printed date is a recognised day, else the date as printed.
    pub date: Option<String>,
    /// The publisher, e.g. 新华网.
    pub source: Option<String>,
    /// The article's address, when the document gives one.
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

/// `GET /v1/info`: what is being served.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// wenda's version.
    pub version: String,
    pub model: ModelInfo,
    /// Passages in the index.
    pub passages: usize,
    /// Documents they come from.
    pub documents: usize,
    /// Memory held by the vectors.
    pub index_bytes: usize,
}

/// The embedding model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// Its Hugging Face id, e.g. `intfloat/multilingual-e5-small`.
    pub id: String,
    /// Length of its vectors.
    pub dimensions: usize,
    /// How token vectors become one sentence vector (`mean`).
    pub pooling: String,
    /// The model's window: longer texts are truncated.
    pub max_tokens: usize,
}

/// `GET /health` and `GET /ready` when all is well.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok` (health) or `ready`.
    pub status: String,
}

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
    pub input_type: Option<Role>,
}

/// One text or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsInput {
    One(NonBlank),
    /// 1 to 128 texts.
    Many(Vec<NonBlank>),
}

/// A text with something besides whitespace in it (checked by the handler).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, min_length = 1, pattern = r"\S")]
pub struct NonBlank(pub String);

impl EmbeddingsInput {
    pub fn into_texts(self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text.0],
            Self::Many(texts) => texts.into_iter().map(|text| text.0).collect(),
        }
    }
}

/// Deserializes a nested object, refusing the array form serde would otherwise accept for a
/// struct (`"filter": ["a.txt"]` would silently set the first field).
fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let value = serde_json::Value::deserialize(deserializer)?;
    if value.is_array() {
        return Err(D::Error::custom(
            "expected an object with named fields, found an array",
        ));
    }
    T::deserialize(value).map_err(D::Error::custom)
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
