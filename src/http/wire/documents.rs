//! Documents: the body that writes one, what writing did, and documents read back.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::corpus::Layout;
use crate::service::{DocumentDetail, PutOutcome};
use crate::store::DocumentRecord;

use super::milliseconds;
use super::search::{PassageView, SharedMetadata};

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
    /// The date: a calendar day, `YYYY-MM-DD` (also with `/` or `.`) or as printed in Chinese
    /// (`2025年04月29日`), kept as written; or an ISO timestamp, kept as its day. Filterable with
    /// `date_from` / `date_to`; anything else is refused (422 `invalid_request` naming `date`).
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

/// `PUT /v1/collections/{collection}/documents/{doc_id}` query string, for a document sent as a
/// file (any body that is not JSON): what the file does not say of itself.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentFileQuery {
    /// The title, as `title` of a JSON body.
    pub title: Option<String>,
    /// The date, as `date` of a JSON body.
    pub date: Option<String>,
    /// The publisher or origin.
    pub source: Option<String>,
    /// Where the document can be read.
    pub url: Option<String>,
    /// A JSON object, as `metadata` of a JSON body (percent-encoded).
    pub metadata: Option<String>,
    /// `plain`, `markdown` or `news`, instead of the file format's own (news for text,
    /// markdown for Markdown).
    pub format: Option<DocumentFormat>,
}

impl DocumentFileQuery {
    /// Whether any field is given.
    pub fn is_empty(&self) -> bool {
        let Self {
            title,
            date,
            source,
            url,
            metadata,
            format,
        } = self;
        [title, date, source, url, metadata]
            .iter()
            .all(|field| field.is_none())
            && format.is_none()
    }
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
        // Passages leave out the metadata the document gives once.
        let shared = SharedMetadata::document(&detail.record.id, &detail.record.metadata);
        let passages = detail
            .passages
            .iter()
            .map(|passage| PassageView::listed(passage, &shared))
            .collect();
        Self {
            summary: (&detail.record).into(),
            text: detail.record.text,
            passages,
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
