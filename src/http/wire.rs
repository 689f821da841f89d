//! The JSON the API reads and writes, and its translation to and from the service's domain
//! types. Kept apart from the domain so the wire format changes only on purpose: nothing in
//! `corpus`, `index`, `search` or `service` knows about serde field names or OpenAPI schemas.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::corpus::{Citation, Layout, Passage, Position};
use crate::embedding::Role;
use crate::index::{
    Bounds, Filter, IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar,
};
use crate::search::{self, Context, ContextCitation, Ranked};
use crate::service::{
    CollectionSummary, ContextBudget as DomainBudget, DocumentDetail, JobReport, ModelSummary,
    PutOutcome, SearchHit, SearchOutcome, SearchRequest as DomainSearch, SimilarOutcome,
};
use crate::store::DocumentRecord;

/// How passages are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cosine similarity of embeddings: paraphrases, other languages.
    Dense,
    /// BM25 over shared words: names, numbers, rare terms.
    Lexical,
    /// Both, blended.
    #[default]
    Hybrid,
}

impl From<Mode> for search::Mode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Dense => Self::Dense,
            Mode::Lexical => Self::Lexical,
            Mode::Hybrid => Self::Hybrid,
        }
    }
}

impl From<search::Mode> for Mode {
    fn from(mode: search::Mode) -> Self {
        match mode {
            search::Mode::Dense => Self::Dense,
            search::Mode::Lexical => Self::Lexical,
            search::Mode::Hybrid => Self::Hybrid,
        }
    }
}

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
    pub filter: FilterBody,
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
    /// With the PostgreSQL store: HNSW candidates to keep (1 to 1000; the server's
    /// `--ef-search` when absent). More finds more of the true nearest passages, slower.
    /// Searches in memory are exact and ignore it.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000, example = 100)]
    pub ef_search: Option<usize>,
}

impl SearchRequest {
    /// The service's request, or why the fields do not make one.
    pub fn into_domain(self) -> Result<DomainSearch, String> {
        Ok(DomainSearch {
            query: self.query,
            top_k: self.top_k,
            mode: self.mode.into(),
            filter: self.filter.into_domain()?,
            min_score: self.min_score,
            context: self.context.map(ContextBudget::into_domain).transpose()?,
            highlight: self.highlight.unwrap_or(true),
            ef_search: self.ef_search,
        })
    }
}

/// Conditions a passage must meet, all of them, to be ranked.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Filter)]
pub struct FilterBody {
    /// The passage's document: its id (for files, the path exactly as results show it).
    #[serde(default)]
    pub document: Option<String>,
    /// Text the article title must contain; letters match in either case.
    #[serde(default)]
    pub title: Option<String>,
    /// First day admitted, `YYYY-MM-DD`, inclusive. With either date bound, undated passages are
    /// excluded.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2025-04-26")]
    pub date_from: Option<String>,
    /// Last day admitted, `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub date_to: Option<String>,
    /// Conditions on document metadata, all of which must hold, by field: a value (equal to
    /// it; for a list field, containing it), a list of values (equal to one), or an object with
    /// one kind of test: `{"in": [...]}`, number bounds `{"gt"|"gte"|"lt"|"lte": n}`, day
    /// bounds `{"date_from"|"date_to": "YYYY-MM-DD"}` (inclusive; an ISO timestamp counts by
    /// its day), or `{"contains": "text"}` (either case).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"lang": "zh", "year": {"gte": 2024}, "tags": {"in": ["ai", "policy"]}}))]
    pub metadata: Option<Map<String, Value>>,
}

impl FilterBody {
    pub fn into_domain(self) -> Result<Filter, String> {
        let date = |text: Option<String>| text.map(IsoDate::try_from).transpose();
        Ok(Filter {
            document: self.document,
            title: self.title,
            date_from: date(self.date_from)?,
            date_to: date(self.date_to)?,
            metadata: self
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(key, test)| metadata_condition(key, test).map(MetadataFilter::Field))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One metadata condition as the wire writes it.
fn metadata_condition(key: String, test: Value) -> Result<MetadataCondition, String> {
    let scalar = |value: &Value| -> Result<Scalar, String> {
        match value {
            Value::String(text) => Ok(Scalar::Text(text.clone())),
            Value::Bool(flag) => Ok(Scalar::Bool(*flag)),
            Value::Number(number) => number
                .as_f64()
                .map(Scalar::Number)
                .ok_or_else(|| format!("metadata filter {key:?}: {number} is out of range")),
            other => Err(format!(
                "metadata filter {key:?}: expected a string, number or boolean, found {other}"
            )),
        }
    };
    let test = match &test {
        Value::Array(values) => {
            MetadataTest::In(values.iter().map(scalar).collect::<Result<_, _>>()?)
        }
        Value::Object(operators) => {
            let kinds: Vec<&str> = operators.keys().map(String::as_str).collect();
            match kinds.as_slice() {
                ["in"] => match &operators["in"] {
                    Value::Array(values) => {
                        MetadataTest::In(values.iter().map(scalar).collect::<Result<_, _>>()?)
                    }
                    _ => return Err(format!("metadata filter {key:?}: \"in\" takes a list")),
                },
                ["contains"] => match &operators["contains"] {
                    Value::String(text) => MetadataTest::Contains(text.clone()),
                    _ => {
                        return Err(format!(
                            "metadata filter {key:?}: \"contains\" takes a string"
                        ))
                    }
                },
                _ if !kinds.is_empty()
                    && kinds.iter().all(|k| ["gt", "gte", "lt", "lte"].contains(k)) =>
                {
                    let number = |name: &str| -> Result<Option<f64>, String> {
                        operators
                            .get(name)
                            .map(|v| {
                                v.as_f64().ok_or_else(|| {
                                    format!("metadata filter {key:?}: \"{name}\" takes a number")
                                })
                            })
                            .transpose()
                    };
                    MetadataTest::Range(
                        bounds(number("gt")?, number("gte")?, number("lt")?, number("lte")?)
                            .map_err(|e| format!("metadata filter {key:?}: {e}"))?,
                    )
                }
                _ if !kinds.is_empty()
                    && kinds.iter().all(|k| ["date_from", "date_to"].contains(k)) =>
                {
                    let day = |name: &str| -> Result<Option<IsoDate>, String> {
                        operators
                            .get(name)
                            .map(|v| match v {
                                Value::String(text) => IsoDate::try_from(text.clone()),
                                _ => Err(format!("\"{name}\" takes a date YYYY-MM-DD")),
                            })
                            .transpose()
                            .map_err(|e| format!("metadata filter {key:?}: {e}"))
                    };
                    MetadataTest::DateRange(Bounds {
                        lower: day("date_from")?.map(|d| (d, true)),
                        upper: day("date_to")?.map(|d| (d, true)),
                    })
                }
                _ => {
                    return Err(format!(
                        "metadata filter {key:?}: use one of \"in\", \"contains\", \
                         \"gt\"/\"gte\"/\"lt\"/\"lte\" or \"date_from\"/\"date_to\", not {kinds:?}"
                    ))
                }
            }
        }
        value => MetadataTest::Equals(scalar(value)?),
    };
    Ok(MetadataCondition { key, test })
}

/// Number bounds from the four comparison operators (at most one lower and one upper).
fn bounds(
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
) -> Result<Bounds<f64>, String> {
    let one =
        |exclusive: Option<f64>, inclusive: Option<f64>, side: &str| match (exclusive, inclusive) {
            (Some(_), Some(_)) => Err(format!("give one {side} bound, not both")),
            (Some(value), None) => Ok(Some((value, false))),
            (None, Some(value)) => Ok(Some((value, true))),
            (None, None) => Ok(None),
        };
    Ok(Bounds {
        lower: one(gt, gte, "lower")?,
        upper: one(lt, lte, "upper")?,
    })
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

impl ContextBudget {
    fn into_domain(self) -> Result<DomainBudget, String> {
        match (self.max_chars, self.max_tokens) {
            (Some(chars), None) => Ok(DomainBudget::Chars(chars)),
            (None, Some(tokens)) => Ok(DomainBudget::Tokens(tokens)),
            _ => Err("context takes exactly one of max_chars and max_tokens".into()),
        }
    }
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
    /// Only passages of this document (its id; for files, the path as results show it).
    pub document: Option<String>,
    /// Only passages whose article title contains this text.
    pub title: Option<String>,
    /// Only passages dated on or after this day (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    pub date_from: Option<String>,
    /// Only passages dated on or before this day (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    pub date_to: Option<String>,
    /// Also return a context block of at most this many characters (not with
    /// `context_tokens`).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub context_chars: Option<usize>,
    /// Also return a context block of at most this many tokens (not with `context_chars`).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub context_tokens: Option<usize>,
    /// Mark where each result contains the query's words (`highlights`); default true.
    pub highlight: Option<bool>,
    /// With the PostgreSQL store: HNSW candidates to keep (1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub ef_search: Option<usize>,
}

impl From<SearchQuery> for SearchRequest {
    fn from(query: SearchQuery) -> Self {
        Self {
            query: query.q,
            top_k: query.top_k,
            mode: query.mode.unwrap_or_default(),
            filter: FilterBody {
                document: query.document,
                title: query.title,
                date_from: query.date_from,
                date_to: query.date_to,
                metadata: None,
            },
            min_score: query.min_score,
            context: (query.context_chars.is_some() || query.context_tokens.is_some()).then_some(
                ContextBudget {
                    max_chars: query.context_chars,
                    max_tokens: query.context_tokens,
                },
            ),
            highlight: query.highlight,
            ef_search: query.ef_search,
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
    /// With the PostgreSQL store: HNSW candidates to keep (1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub ef_search: Option<usize>,
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
    pub context: Option<ContextView>,
    pub took_ms: f64,
}

impl From<SearchOutcome> for SearchResponse {
    fn from(outcome: SearchOutcome) -> Self {
        Self {
            query: outcome.query,
            mode: outcome.mode.into(),
            query_tokens: outcome.query_tokens,
            truncated: outcome.truncated,
            results: outcome
                .results
                .into_iter()
                .map(ScoredPassage::from)
                .collect(),
            context: outcome.context.map(ContextView::from),
            took_ms: milliseconds(outcome.took),
        }
    }
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

impl From<SimilarOutcome> for SimilarResponse {
    fn from(outcome: SimilarOutcome) -> Self {
        Self {
            id: outcome.id,
            results: outcome
                .results
                .into_iter()
                .map(ScoredPassage::from)
                .collect(),
            took_ms: milliseconds(outcome.took),
        }
    }
}

/// Milliseconds, rounded to the microsecond.
fn milliseconds(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
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

impl From<Ranked> for ScoredPassage {
    fn from(ranked: Ranked) -> Self {
        Self {
            score: ranked.score,
            scores: ComponentScores {
                dense: ranked.dense,
                lexical: ranked.lexical,
            },
            passage: PassageView::from(&*ranked.passage),
            highlights: None,
        }
    }
}

impl From<SearchHit> for ScoredPassage {
    fn from(hit: SearchHit) -> Self {
        Self {
            highlights: hit
                .highlights
                .map(|spans| spans.into_iter().map(|s| [s.start, s.end]).collect()),
            ..hit.ranked.into()
        }
    }
}

/// A passage as clients see it: its text, where it comes from and how to cite it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PassageView {
    /// Stable id: `<document>~<article>.<paragraph>`, plus `.<piece>` when a long paragraph
    /// was split (for JSON-lines records, the record's id). Use it with `/v1/passages/{id}`.
    #[schema(example = "000_6b84f5fb9e9426be.txt~2.1")]
    pub id: String,
    /// The passage, whitespace-normalised on one line; Chinese text has no added spaces.
    pub text: String,
    pub document: DocumentRef,
    pub position: PositionView,
    pub citation: CitationView,
    /// The document's metadata (for JSON-lines records, the record's), when it has any.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// The document (news article) a passage comes from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentRef {
    /// The document's id: for files of the corpus folder, the path relative to it.
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

/// Where a passage sits in its document. All numbers are 1-based.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionView {
    /// Article within the document (for JSON lines: the record's line number).
    pub article: usize,
    /// Paragraphs of the article the passage covers; more than one when small paragraphs were
    /// merged.
    pub first_paragraph: usize,
    pub last_paragraph: usize,
    /// Piece of those paragraphs, when they had to be split to fit the token budget.
    pub piece: usize,
    pub pieces: usize,
}

/// Where a passage's text is in its document, for a person to check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CitationView {
    /// The document's id (for files, the path).
    pub path: String,
    /// 1-based, inclusive.
    pub line_start: usize,
    pub line_end: usize,
    /// Byte offsets into the document's text, end exclusive. For JSON lines: the record's line.
    pub byte_start: usize,
    pub byte_end: usize,
}

impl From<&Position> for PositionView {
    fn from(position: &Position) -> Self {
        Self {
            article: position.article,
            first_paragraph: position.first_paragraph,
            last_paragraph: position.last_paragraph,
            piece: position.piece,
            pieces: position.pieces,
        }
    }
}

impl From<&Citation> for CitationView {
    fn from(citation: &Citation) -> Self {
        Self {
            path: citation.path.clone(),
            line_start: citation.line_start,
            line_end: citation.line_end,
            byte_start: citation.byte_start,
            byte_end: citation.byte_end,
        }
    }
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
            position: (&passage.position).into(),
            citation: (&passage.citation).into(),
            metadata: passage.metadata.clone(),
        }
    }
}

/// The context block and what its numbers cite.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Context)]
pub struct ContextView {
    /// Paste into a prompt; passages are separated by blank lines.
    pub text: String,
    /// One per number used in `text`, in order.
    pub citations: Vec<ContextCitationView>,
    /// Results left out because the budget was spent.
    pub omitted: usize,
    /// The last passage included was cut to fit the budget.
    pub cut: bool,
}

/// What `[number]` in the context refers to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ContextCitation)]
pub struct ContextCitationView {
    pub number: usize,
    pub id: String,
    pub title: Option<String>,
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    pub path: String,
    pub line_start: usize,
    pub line_end: usize,
}

impl From<Context> for ContextView {
    fn from(context: Context) -> Self {
        Self {
            text: context.text,
            citations: context
                .citations
                .into_iter()
                .map(ContextCitationView::from)
                .collect(),
            omitted: context.omitted,
            cut: context.cut,
        }
    }
}

impl From<ContextCitation> for ContextCitationView {
    fn from(citation: ContextCitation) -> Self {
        Self {
            number: citation.number,
            id: citation.id,
            title: citation.title,
            date: citation.date,
            source: citation.source,
            url: citation.url,
            path: citation.path,
            line_start: citation.line_start,
            line_end: citation.line_end,
        }
    }
}

/// `GET /v1/info`: what is being served.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// wenda's version.
    pub version: String,
    pub model: ModelInfo,
    /// Collections served.
    pub collections: usize,
    /// Passages in every collection.
    pub passages: usize,
    /// Documents they come from.
    pub documents: usize,
    /// Memory held by the vectors.
    pub index_bytes: usize,
    /// The CPU kernel level the encoder and the index run: `avx512-vnni`, `avx-vnni`, `avx2` or
    /// `portable`.
    #[schema(example = "avx512-vnni")]
    pub kernels: String,
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

impl From<&ModelSummary> for ModelInfo {
    fn from(model: &ModelSummary) -> Self {
        Self {
            id: model.id.clone(),
            dimensions: model.dimensions,
            pooling: model.pooling.clone(),
            max_tokens: model.max_tokens,
        }
    }
}

/// `GET /health` and `GET /ready` when all is well.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok` (health) or `ready`.
    pub status: String,
}

/// A named set of documents with its own indexes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionView {
    /// 1 to 64 of `a-z 0-9 _ -`.
    #[schema(example = "default")]
    pub name: String,
    pub documents: usize,
    pub passages: usize,
    /// Bytes of document text stored.
    pub text_bytes: u64,
    /// Bytes its vectors take in memory.
    pub vector_bytes: usize,
    /// The model its passages are embedded with.
    pub model: ModelInfo,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl CollectionView {
    pub fn new(summary: CollectionSummary, model: &ModelSummary) -> Self {
        Self {
            name: summary.name,
            documents: summary.documents,
            passages: summary.passages,
            text_bytes: summary.text_bytes,
            vector_bytes: summary.vector_bytes,
            model: model.into(),
            created_at: summary.created_at,
        }
    }
}

/// Every collection, by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionView>,
}

/// How a document's text is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    /// Blank lines separate paragraphs; lines within one are joined (no space is put between
    /// Chinese characters).
    #[default]
    Plain,
    /// As plain, with each `#` heading a paragraph of its own (its marker left out).
    Markdown,
    /// News text, possibly extracted from PDF: hard-wrapped lines are repaired, and each title
    /// followed by a date/source line (`（2025年04月25日来源：新华网）`) starts an article with
    /// that title, date and source.
    News,
}

impl From<DocumentFormat> for Layout {
    fn from(format: DocumentFormat) -> Self {
        match format {
            DocumentFormat::Plain => Self::Plain,
            DocumentFormat::Markdown => Self::Markdown,
            DocumentFormat::News => Self::News,
        }
    }
}

/// `PUT /v1/collections/{collection}/documents/{doc_id}`: a document to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// The document's text (UTF-8). It is cut into passages by `format`.
    #[schema(
        example = "模速空间是上海市打造的人工智能大模型专业孵化和加速平台。\n\n已入驻企业100余家。"
    )]
    pub text: String,
    /// The title, shown with results and embedded with each passage as context.
    #[serde(default)]
    pub title: Option<String>,
    /// The date, `YYYY-MM-DD` (or as printed, e.g. `2025年04月29日`); recognised dates are
    /// filterable with `date_from` / `date_to`.
    #[serde(default)]
    pub date: Option<String>,
    /// The publisher or origin.
    #[serde(default)]
    pub source: Option<String>,
    /// Where the document can be read.
    #[serde(default)]
    pub url: Option<String>,
    /// A flat object of strings, numbers, booleans and arrays of strings, filterable in search
    /// with `filter.metadata`.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"lang": "zh", "tags": ["ai"]}))]
    pub metadata: Option<Map<String, Value>>,
    /// `plain` (default), `markdown` or `news`.
    #[serde(default)]
    pub format: DocumentFormat,
}

/// What writing a document did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PutDocumentResponse {
    /// The document's id.
    pub id: String,
    /// Passages it was cut into (each is searchable now).
    pub passages: usize,
    /// Passages the model embedded.
    pub embedded: usize,
    /// Passages whose vector was reused: the same text was embedded before.
    pub reused: usize,
    pub took_ms: f64,
}

impl From<PutOutcome> for PutDocumentResponse {
    fn from(outcome: PutOutcome) -> Self {
        Self {
            id: outcome.id,
            passages: outcome.passages,
            embedded: outcome.embedded,
            reused: outcome.reused,
            took_ms: milliseconds(outcome.took),
        }
    }
}

/// A document's fields, without its text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentSummary {
    pub id: String,
    pub title: Option<String>,
    /// As given.
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// `plain`, `markdown`, `news` or `jsonl` (files of the corpus folder).
    pub format: String,
    /// Passages it was cut into.
    pub passages: usize,
    /// `api` (written through the API) or `corpus` (a file of the start-up corpus folder).
    pub origin: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&DocumentRecord> for DocumentSummary {
    fn from(record: &DocumentRecord) -> Self {
        Self {
            id: record.id.clone(),
            title: record.title.clone(),
            date: record.date.clone(),
            source: record.source.clone(),
            url: record.url.clone(),
            metadata: record.metadata.clone(),
            format: record.layout.as_str().into(),
            passages: record.passages,
            origin: match record.origin {
                crate::store::Origin::Api => "api",
                crate::store::Origin::Corpus => "corpus",
            }
            .into(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A document with its text and passages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    pub summary: DocumentSummary,
    /// The text as given.
    pub text: String,
    pub passages: Vec<PassageView>,
}

impl From<DocumentDetail> for DocumentView {
    fn from(detail: DocumentDetail) -> Self {
        Self {
            summary: (&detail.record).into(),
            text: detail.record.text,
            passages: detail.passages.iter().map(PassageView::from).collect(),
        }
    }
}

/// One page of a collection's documents.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentSummary>,
    /// Pass as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/collections/{collection}/documents` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentListQuery {
    /// Documents per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A deletion that happened.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// What was deleted: a document id or a collection name.
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// Passages removed with it (documents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passages: Option<usize>,
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

/// An import job: where it is and what it did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Give it to `GET /v1/jobs/{id}`.
    pub id: String,
    /// The collection the documents go to.
    pub collection: String,
    /// `queued`, `running`, `completed` or `failed` (stopped early; see `error`).
    pub status: String,
    pub documents: JobDocuments,
    /// Passages written so far.
    pub passages: usize,
    /// Passages the model embedded.
    pub embedded: usize,
    /// Passages whose vector was reused (their text was embedded before).
    pub reused: usize,
    /// Tokens the model read for the embedded passages.
    pub tokens: u64,
    /// Tokens embedded per second of the job's working time.
    pub tokens_per_second: f64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why a failed job stopped.
    pub error: Option<String>,
    /// The first 100 refused lines, in order.
    pub errors: Vec<JobLineError>,
}

/// Documents (lines) of an import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobDocuments {
    pub total: usize,
    /// Written and searchable.
    pub done: usize,
    /// Refused; see `errors`.
    pub failed: usize,
}

/// A line of an import that was not written.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobLineError {
    /// The uploaded file, for multipart uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line number in the body or file.
    pub line: usize,
    /// As in API errors: `invalid_request`, `invalid_name`, `no_passages`, …
    pub code: String,
    pub message: String,
}

impl From<JobReport> for JobView {
    fn from(report: JobReport) -> Self {
        let record = report.record;
        Self {
            id: record.id,
            collection: record.collection,
            status: record.status.as_str().into(),
            documents: JobDocuments {
                total: record.documents,
                done: record.done,
                failed: record.failed,
            },
            passages: record.passages,
            embedded: record.embedded,
            reused: record.reused,
            tokens: record.tokens,
            tokens_per_second: if record.working_ms == 0 {
                0.0
            } else {
                (record.tokens as f64 * 1000.0 / record.working_ms as f64).round()
            },
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            error: record.error,
            errors: report
                .errors
                .into_iter()
                .map(|error| JobLineError {
                    file: error.file,
                    line: error.line,
                    code: error.code,
                    message: error.message,
                })
                .collect(),
        }
    }
}
