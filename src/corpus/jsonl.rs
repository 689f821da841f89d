//! JSON-lines files of ready passages, one record per line:
//! `{"id": …, "text": …, "title"?, "date"?, "source"?, "url"?, "metadata"?: {…}}`.
//!
//! Benchmarks refer to passages by their ids, so ids are kept as given (`_id`, as in BEIR
//! corpora, is accepted too; numbers are taken as their decimal text). The text is taken as is,
//! not re-normalised, and is only split when it exceeds the token budget: the first piece keeps
//! the id, later ones get `#2`, `#3`…, and every piece names the record in `source_id`. Fields not
//! listed above are kept in the passage metadata rather than dropped.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::corpus::chunk::{self, Budget};
use crate::corpus::date::ArticleDate;
use crate::corpus::problem::ProblemKind;
use crate::corpus::source::{lines, Line};
use crate::corpus::{ArticleMeta, ChunkConfig, Citation, Passage, PassageId, Position};

/// What a JSON-lines file yields.
#[derive(Debug, Default)]
pub(crate) struct JsonlDocument {
    /// Passages, grouped by record.
    pub(crate) records: Vec<Vec<Passage>>,
    /// Lines skipped, with why.
    pub(crate) problems: Vec<(usize, ProblemKind)>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(alias = "_id")]
    id: Option<RecordId>,
    text: Option<String>,
    title: Option<String>,
    date: Option<String>,
    source: Option<String>,
    url: Option<String>,
    metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RecordId {
    Text(String),
    Number(serde_json::Number),
}

/// Reads the records of `text`, the contents of the file at `path` (relative to its root).
pub(crate) fn parse(path: &str, text: &str, config: &ChunkConfig<'_>) -> JsonlDocument {
    let mut document = JsonlDocument::default();
    for line in lines(text).filter(|line| !line.is_blank()) {
        match record_passages(path, &line, config) {
            Ok(passages) => document.records.push(passages),
            Err(kind) => document.problems.push((line.number, kind)),
        }
    }
    document
}

fn record_passages(
    path: &str,
    line: &Line<'_>,
    config: &ChunkConfig<'_>,
) -> Result<Vec<Passage>, ProblemKind> {
    let record: Record = serde_json::from_str(line.text)
        .map_err(|error| ProblemKind::MalformedJson(error.to_string()))?;
    let id = match record.id {
        Some(RecordId::Text(id)) if !id.trim().is_empty() => PassageId::new(id),
        Some(RecordId::Number(id)) => PassageId::new(id.to_string()),
        _ => return Err(ProblemKind::MissingField("id")),
    };
    let text = record
        .text
        .filter(|text| !text.trim().is_empty())
        .ok_or(ProblemKind::MissingField("text"))?;
    let mut metadata = record.metadata.unwrap_or_default();
    for (key, value) in record.other {
        metadata.entry(key).or_insert(value);
    }
    let article = ArticleMeta {
        title: record.title,
        dateline: None,
        date: record.date.as_deref().map(ArticleDate::parse),
        source: record.source,
        url: record.url,
    };
    let citation = Citation {
        path: path.to_owned(),
        line_start: line.number,
        line_end: line.number,
        byte_start: line.start,
        byte_end: line.start + line.text.len(),
        page_start: None,
        page_end: None,
    };
    let budget = Budget::new(config, article.title.as_deref());
    let pieces = chunk::split(&text, &budget);
    let count = pieces.len();
    let passages = pieces.into_iter().enumerate().map(|(i, piece)| Passage {
        id: id.piece(i + 1),
        text: text[piece.range].to_owned(),
        overlap: piece.overlap,
        article: article.clone(),
        position: Position {
            article: line.number,
            first_paragraph: 1,
            last_paragraph: 1,
            piece: i + 1,
            pieces: count,
        },
        source_id: Some(id.clone()),
        metadata: metadata.clone(),
        citation: citation.clone(),
        embeds_title: budget.title().is_some(),
    });
    Ok(passages.collect())
}
