//! One document given as text, through the API or as a file of a corpus folder, cut into
//! passages by its [`Layout`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::corpus::problem::ProblemKind;
use crate::corpus::{document, jsonl, ArticleMeta, ChunkConfig, Passage, PassageId};

/// How a document's text is laid out, which decides how it is cut into paragraphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Ordinary text: blank lines separate paragraphs; lines within one are joined (without a
    /// space between Chinese characters).
    Plain,
    /// Markdown: as plain text, with each `#` heading a paragraph of its own.
    Markdown,
    /// News articles, possibly extracted from PDF: hard-wrapped lines are repaired, and each
    /// title with its date/source line (`（2025年04月25日来源：新华网）`) starts an article with
    /// that metadata.
    News,
    /// JSON lines, one ready passage per line with its own id (`.jsonl` files).
    Jsonl,
}

impl Layout {
    pub const ALL: [Layout; 4] = [Layout::Plain, Layout::Markdown, Layout::News, Layout::Jsonl];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Markdown => "markdown",
            Self::News => "news",
            Self::Jsonl => "jsonl",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|layout| layout.as_str() == text)
            .ok_or_else(|| format!("unknown document format {text:?}"))
    }
}

/// A document to cut into passages.
#[derive(Debug, Clone, Copy)]
pub struct DocumentInput<'a> {
    /// The document's id: the path part of its passages' ids and their citation's `path`.
    pub id: &'a str,
    pub text: &'a str,
    pub layout: Layout,
    /// What is known of the document (title, date, source, url); for news, what an article's
    /// own lines do not say.
    pub meta: &'a ArticleMeta,
    /// Metadata every passage of a text document carries (JSON-lines records carry their own).
    pub metadata: &'a Map<String, Value>,
}

/// What a document yields.
#[derive(Debug)]
pub struct ParsedDocument {
    /// Whether its lines were hard-wrapped (as text extracted from PDF is) and were rejoined.
    pub rewrapped: bool,
    /// Articles recognised (for JSON lines: records loaded).
    pub articles: usize,
    /// Passages, grouped by the paragraphs (or record) they were cut from.
    pub groups: Vec<Vec<Passage>>,
    /// Lines skipped, with why.
    pub problems: Vec<(usize, ProblemKind)>,
}

impl ParsedDocument {
    pub fn passage_count(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    pub fn into_passages(self) -> Vec<Passage> {
        self.groups.into_iter().flatten().collect()
    }
}

/// Cuts `input` into passages sized by `config`. A record whose id repeats an earlier one of
/// the same document is skipped and reported.
pub fn parse_document(input: &DocumentInput<'_>, config: &ChunkConfig<'_>) -> ParsedDocument {
    let mut parsed = match input.layout {
        Layout::Jsonl => {
            let records = jsonl::parse(input.id, input.text, config);
            ParsedDocument {
                rewrapped: false,
                articles: records.records.len(),
                groups: records.records,
                problems: records.problems,
            }
        }
        layout => {
            let document = document::parse(input.id, input.text, layout, input.meta, config);
            let mut groups = document.passages;
            for passage in groups.iter_mut().flatten() {
                passage.metadata = input.metadata.clone();
            }
            ParsedDocument {
                rewrapped: document.rewrapped,
                articles: document.articles.len(),
                groups,
                problems: Vec::new(),
            }
        }
    };
    let mut first_line: HashMap<PassageId, usize> = HashMap::new();
    let mut kept = Vec::with_capacity(parsed.groups.len());
    for group in std::mem::take(&mut parsed.groups) {
        let repeated = group
            .iter()
            .find_map(|p| Some((p, *first_line.get(&p.id)?)));
        if let Some((passage, first)) = repeated {
            let kind = ProblemKind::DuplicateId {
                id: passage.id.to_string(),
                first_path: input.id.to_owned(),
                first_line: first,
            };
            parsed.problems.push((passage.citation.line_start, kind));
            continue;
        }
        for passage in &group {
            first_line.insert(passage.id.clone(), passage.citation.line_start);
        }
        kept.push(group);
    }
    if input.layout == Layout::Jsonl {
        parsed.articles = kept.len();
    }
    parsed.groups = kept;
    parsed
}
