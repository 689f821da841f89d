//! Searches and similar passages: the requests, the results and the passages in them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::corpus::{Citation, Passage, Position};
use crate::search::{self, Context, ContextCitation, Ranked};
use crate::service::{
    ContextBudget as DomainBudget, SearchHit, SearchOutcome, SearchRequest as DomainSearch,
    SimilarOutcome,
};

use super::filters::FilterBody;
use super::milliseconds;

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
    /// The metadata of the documents the results come from, once per document, by
    /// `document.path` (see the results' `metadata`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub document_metadata: BTreeMap<String, Map<String, Value>>,
    /// When asked for: the results as a numbered context block with its citations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextView>,
    pub took_ms: f64,
}

impl From<SearchOutcome> for SearchResponse {
    fn from(outcome: SearchOutcome) -> Self {
        let shared = SharedMetadata::of(outcome.results.iter().map(|hit| &*hit.ranked.passage));
        let results = outcome
            .results
            .iter()
            .map(|hit| ScoredPassage::listed(hit, &shared))
            .collect();
        Self {
            query: outcome.query,
            mode: outcome.mode.into(),
            query_tokens: outcome.query_tokens,
            truncated: outcome.truncated,
            results,
            document_metadata: shared.into_map(),
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
    /// As in a search answer: the documents' metadata, once per document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub document_metadata: BTreeMap<String, Map<String, Value>>,
    /// Time spent answering, in milliseconds.
    pub took_ms: f64,
}

impl From<SimilarOutcome> for SimilarResponse {
    fn from(outcome: SimilarOutcome) -> Self {
        let shared = SharedMetadata::of(outcome.results.iter().map(|ranked| &*ranked.passage));
        let results = outcome
            .results
            .iter()
            .map(|ranked| {
                ScoredPassage::scored(ranked, PassageView::listed(&ranked.passage, &shared))
            })
            .collect();
        Self {
            id: outcome.id,
            results,
            document_metadata: shared.into_map(),
            took_ms: milliseconds(outcome.took),
        }
    }
}

/// The metadata of the documents a list of passages comes from, to be given once per document
/// rather than with each passage: a document's metadata may be 64 KiB and a list may hold a
/// hundred of its passages. A document's entry is the metadata of its first passage in the
/// list; a passage whose own metadata differs (a record of a JSON-lines file) carries it.
pub(crate) struct SharedMetadata<'p> {
    first: BTreeMap<&'p str, &'p Map<String, Value>>,
}

impl<'p> SharedMetadata<'p> {
    pub(crate) fn of(passages: impl Iterator<Item = &'p Passage>) -> Self {
        let mut first = BTreeMap::new();
        for passage in passages {
            first
                .entry(passage.citation.path.as_str())
                .or_insert(&passage.metadata);
        }
        Self { first }
    }

    /// The metadata of document `path`, as the document itself gives it.
    pub(crate) fn document(path: &'p str, metadata: &'p Map<String, Value>) -> Self {
        Self {
            first: BTreeMap::from([(path, metadata)]),
        }
    }

    /// The metadata `passage` must carry itself: none when its document's entry has it.
    fn own(&self, passage: &Passage) -> Option<Map<String, Value>> {
        let shared = self.first.get(passage.citation.path.as_str());
        (shared != Some(&&passage.metadata)).then(|| passage.metadata.clone())
    }

    /// The entries with any metadata, by document path.
    pub(crate) fn into_map(self) -> BTreeMap<String, Map<String, Value>> {
        self.first
            .into_iter()
            .filter(|(_, metadata)| !metadata.is_empty())
            .map(|(path, metadata)| (path.to_owned(), metadata.clone()))
            .collect()
    }
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

impl ScoredPassage {
    fn scored(ranked: &Ranked, passage: PassageView) -> Self {
        Self {
            score: ranked.score,
            scores: ComponentScores {
                dense: ranked.dense,
                lexical: ranked.lexical,
            },
            passage,
            highlights: None,
        }
    }

    /// A search hit in a list whose documents' metadata is `shared`.
    pub(super) fn listed(hit: &SearchHit, shared: &SharedMetadata<'_>) -> Self {
        Self {
            highlights: hit
                .highlights
                .as_ref()
                .map(|spans| spans.iter().map(|s| [s.start, s.end]).collect()),
            ..Self::scored(
                &hit.ranked,
                PassageView::listed(&hit.ranked.passage, shared),
            )
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
    /// The document's metadata (for JSON-lines records, the record's). In a list (search and
    /// similar results, a document's passages) it is absent when it is the metadata the list
    /// gives once for the whole document (`document_metadata`, or the document's own); a
    /// single passage has it when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
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
    /// 1-based pages, inclusive, when the document has pages (its text has form-feed page
    /// breaks, as text extracted from a PDF has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_start: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_end: Option<usize>,
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
            page_start: citation.page_start,
            page_end: citation.page_end,
        }
    }
}

impl From<&Passage> for DocumentRef {
    fn from(passage: &Passage) -> Self {
        let article = &passage.article;
        Self {
            path: passage.citation.path.clone(),
            title: article.title.clone(),
            date: article.date.as_ref().map(|d| d.label().to_owned()),
            source: article.source.clone(),
            url: article.url.clone(),
        }
    }
}

impl From<&Passage> for PassageView {
    fn from(passage: &Passage) -> Self {
        let metadata = (!passage.metadata.is_empty()).then(|| passage.metadata.clone());
        Self {
            metadata,
            ..Self::without_metadata(passage)
        }
    }
}

impl PassageView {
    /// `passage` in a list whose documents' metadata is `shared`.
    pub(crate) fn listed(passage: &Passage, shared: &SharedMetadata<'_>) -> Self {
        Self {
            metadata: shared.own(passage),
            ..Self::without_metadata(passage)
        }
    }

    fn without_metadata(passage: &Passage) -> Self {
        Self {
            id: passage.id.to_string(),
            text: passage.text.clone(),
            document: passage.into(),
            position: (&passage.position).into(),
            citation: (&passage.citation).into(),
            metadata: None,
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
    /// 1-based, inclusive, when the document has pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_start: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_end: Option<usize>,
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
            page_start: citation.page_start,
            page_end: citation.page_end,
        }
    }
}

/// Deserializes a nested object, refusing the array form serde would otherwise accept for a
/// struct (`"filter": ["a.txt"]` would silently set the first field).
pub(super) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
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
