//! The corpus stage: turns the files a user brings into passages ready to embed, show and cite.
//!
//! A file's bytes become a document's text through its format (`formats`: the one registry of
//! the formats read, by extension, media type or signature, with character-set detection).
//! Text documents (handled by `document`) go through source lines (`source`) →
//! paragraphs, blank-line separated or repaired when the layout is PDF-wrapped (`pdf_text`), with
//! whitespace normalised (`text`) → news articles with titles and dates (`article`, `date`) →
//! passages sized to the embedding model's budget (`chunk`, `sentence`). JSON-lines files bring
//! ready passages (`jsonl`). `load` walks the paths given, keeps ids (`id`) unique and reports
//! what it skipped (`problem`).

mod article;
mod chunk;
mod date;
mod document;
pub mod formats;
mod id;
mod input;
mod jsonl;
mod load;
mod pdf_text;
mod problem;
mod sentence;
mod source;
#[cfg(test)]
mod tests;
mod text;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use date::{checked_date, ArticleDate};
pub use id::PassageId;
pub use input::{parse_document, DocumentInput, Layout, ParsedDocument};
pub use load::{
    load, read_files, FileScan, LoadReport, ReadOptions, SourceFile, DEFAULT_MAX_FILE_BYTES,
};
pub use problem::{Problem, ProblemKind};
pub use source::PAGE_BREAK;
pub use text::{is_cjk_letter, is_mostly_cjk};

/// Counts the tokens the embedding model sees for a passage, including whatever the model adds
/// (the `passage: ` prefix, special tokens). Sizing must use the model's own tokenizer: the
/// model silently truncates whatever exceeds its window.
pub trait TokenCounter {
    fn count_tokens(&self, text: &str) -> usize;
}

/// How passages are sized.
#[derive(Clone, Copy)]
pub struct ChunkConfig<'a> {
    pub counter: &'a dyn TokenCounter,
    /// Most tokens a passage may take, as counted by `counter` on its embedding text.
    pub max_tokens: usize,
    /// Paragraphs with fewer tokens than this are merged into a neighbouring paragraph of the
    /// same article: a near-empty passage retrieves badly and tells the reader nothing.
    pub min_tokens: usize,
    /// Sentences a piece of a split paragraph repeats from the end of the previous piece, so that
    /// a statement straddling the cut is whole in at least one of them.
    pub overlap_sentences: usize,
}

impl<'a> ChunkConfig<'a> {
    /// The window of the multilingual E5 models.
    pub const DEFAULT_MAX_TOKENS: usize = 512;
    pub const DEFAULT_MIN_TOKENS: usize = 32;
    pub const DEFAULT_OVERLAP_SENTENCES: usize = 1;

    pub fn new(counter: &'a dyn TokenCounter) -> Self {
        Self {
            counter,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
            min_tokens: Self::DEFAULT_MIN_TOKENS,
            overlap_sentences: Self::DEFAULT_OVERLAP_SENTENCES,
        }
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.counter.count_tokens(text)
    }
}

/// A file that was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Path relative to the root it was found under, with `/` separators.
    pub path: String,
    pub layout: Layout,
    /// Whether its lines were hard-wrapped (as text extracted from PDF is) and were rejoined.
    pub rewrapped: bool,
    /// Articles recognised in it (for JSON lines: records loaded).
    pub articles: usize,
    /// Passages loaded from it.
    pub passages: usize,
}

/// What is known about the article a passage belongs to. Empty for text without
/// date/source lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleMeta {
    /// The title, its wrapped lines rejoined.
    pub title: Option<String>,
    /// The date/source line as printed, e.g. `（2025年04月25日来源：新华网）`.
    pub dateline: Option<String>,
    pub date: Option<ArticleDate>,
    /// Publisher named on the date/source line, e.g. `新华网`.
    pub source: Option<String>,
    pub url: Option<String>,
}

impl ArticleMeta {
    /// Takes from `defaults` what this article does not say itself.
    pub fn fill_from(&mut self, defaults: &ArticleMeta) {
        let fill = |own: &mut Option<String>, default: &Option<String>| {
            if own.is_none() {
                own.clone_from(default);
            }
        };
        fill(&mut self.title, &defaults.title);
        fill(&mut self.dateline, &defaults.dateline);
        fill(&mut self.source, &defaults.source);
        fill(&mut self.url, &defaults.url);
        if self.date.is_none() {
            self.date.clone_from(&defaults.date);
        }
    }
}

/// Where a passage sits in its document. All numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// The document: a file's path as in [`Document::path`], or the id a document was given.
    pub path: String,
    /// 1-based, inclusive.
    pub line_start: usize,
    pub line_end: usize,
    /// Byte offsets into the file, end exclusive. For JSON lines: the whole record's line.
    pub byte_start: usize,
    pub byte_end: usize,
    /// 1-based pages, inclusive, for documents that have pages (text with form-feed page
    /// breaks, as extracted from paged documents). Absent from passages stored before pages
    /// were kept, and from documents without pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_start: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_end: Option<usize>,
}

impl Citation {
    /// `path:first-last`, and the pages when the document has them: `news.txt:3-5 p. 2`.
    pub fn location(&self) -> String {
        let lines = format!("{}:{}-{}", self.path, self.line_start, self.line_end);
        match page_label(self.page_start, self.page_end) {
            Some(pages) => format!("{lines} {pages}"),
            None => lines,
        }
    }
}

/// How a citation's pages are written for people: `p. 3`, `pp. 3–4`; `None` without pages.
pub fn page_label(start: Option<usize>, end: Option<usize>) -> Option<String> {
    let start = start?;
    Some(match end.filter(|&end| end != start) {
        Some(end) => format!("pp. {start}–{end}"),
        None => format!("p. {start}"),
    })
}

/// A unit of retrieval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    pub id: PassageId,
    /// The text shown to users: whitespace-normalised, on one line.
    pub text: String,
    /// Length in bytes of the start of `text` that repeats the end of the previous piece.
    pub overlap: usize,
    pub article: ArticleMeta,
    pub position: Position,
    /// For JSON-lines records: the record's id, shared by all the pieces it was split into.
    pub source_id: Option<PassageId>,
    /// For JSON-lines records: the `metadata` object and any fields not otherwise understood.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub citation: Citation,
    /// Whether the embedding text leads with the article title (left out when it would take
    /// more than a quarter of the budget).
    pub embeds_title: bool,
}

impl Passage {
    /// The text the embedding model sees; the passage text sized to fit, with the article title
    /// as context when there is one.
    pub fn embedding_text(&self) -> Cow<'_, str> {
        let title = self.article.title.as_deref().filter(|_| self.embeds_title);
        embedding_text(title, &self.text)
    }

    /// The text that no earlier piece of the same paragraphs contains.
    pub fn fresh_text(&self) -> &str {
        &self.text[self.overlap..]
    }
}

/// Puts the title before the text on its own line. A line break reads as a heading to the model
/// (its tokenizer treats it as plain whitespace), whereas punctuation such as `：` would fuse the
/// title into the first sentence, and it suits Chinese and Latin titles alike.
fn embedding_text<'t>(title: Option<&str>, text: &'t str) -> Cow<'t, str> {
    match title {
        Some(title) => Cow::Owned(format!("{title}\n{text}")),
        None => Cow::Borrowed(text),
    }
}

/// A one-paragraph passage of `document` with no article metadata, for tests of the stages
/// that take passages.
#[cfg(test)]
pub(crate) fn passage_for_tests(document: &str, id: &str, text: &str) -> Passage {
    Passage {
        id: PassageId::new(id),
        text: text.into(),
        overlap: 0,
        article: ArticleMeta::default(),
        position: Position {
            article: 1,
            first_paragraph: 1,
            last_paragraph: 1,
            piece: 1,
            pieces: 1,
        },
        source_id: None,
        metadata: serde_json::Map::new(),
        citation: Citation {
            path: document.into(),
            line_start: 1,
            line_end: 1,
            byte_start: 0,
            byte_end: text.len(),
            page_start: None,
            page_end: None,
        },
        embeds_title: false,
    }
}
