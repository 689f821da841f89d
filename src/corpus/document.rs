//! Text documents (`.txt`, `.md`): one file's paragraphs, articles and passages.

use crate::corpus::article::articles;
use crate::corpus::chunk::{self, Budget};
use crate::corpus::id::DocumentKey;
use crate::corpus::source::{join_lines, lines, Line, LineIndex};
use crate::corpus::text::MappedText;
use crate::corpus::{pdf_text, ArticleMeta, ChunkConfig, Citation, Format, Passage, Position};

/// What a text file yields.
#[derive(Debug)]
pub(crate) struct TextDocument {
    pub(crate) format: Format,
    /// Every article recognised, including any whose text was all title and date/source line.
    pub(crate) articles: Vec<ArticleMeta>,
    /// Passages, grouped by the paragraphs they were cut from.
    pub(crate) passages: Vec<Vec<Passage>>,
}

/// Cuts `text`, the contents of the file at `path` (relative to its root), into passages.
pub(crate) fn parse(path: &str, text: &str, config: &ChunkConfig<'_>) -> TextDocument {
    let lines: Vec<Line<'_>> = lines(text).collect();
    let (format, paragraphs) = match pdf_text::repair(&lines) {
        Some(paragraphs) => (Format::WrappedText, paragraphs),
        None => (Format::Text, join_lines(&lines, true, |_| false)),
    };
    let key = DocumentKey::new(path);
    let line_index = LineIndex::new(text);
    let cite = |paragraphs: &MappedText, range| {
        let bytes = paragraphs.source_range(range);
        Citation {
            path: path.to_owned(),
            line_start: line_index.line_of(bytes.start),
            line_end: line_index.line_of(bytes.end - 1),
            byte_start: bytes.start,
            byte_end: bytes.end,
        }
    };
    let mut metas = Vec::new();
    let mut passages = Vec::new();
    for (index, article) in articles(paragraphs).into_iter().enumerate() {
        let number = index + 1;
        let budget = Budget::new(config, article.meta.title.as_deref());
        for group in chunk::merge_small(article.paragraphs, &budget) {
            let pieces = chunk::split(group.text.as_str(), &budget);
            let count = pieces.len();
            let group_passages = pieces.into_iter().enumerate().map(|(i, piece)| Passage {
                id: key.passage(number, group.first + 1, i + 1),
                text: group.text.as_str()[piece.range.clone()].to_owned(),
                overlap: piece.overlap,
                article: article.meta.clone(),
                position: Position {
                    article: number,
                    first_paragraph: group.first + 1,
                    last_paragraph: group.last + 1,
                    piece: i + 1,
                    pieces: count,
                },
                source_id: None,
                metadata: serde_json::Map::new(),
                citation: cite(&group.text, piece.range),
                embeds_title: budget.title().is_some(),
            });
            passages.push(group_passages.collect());
        }
        metas.push(article.meta);
    }
    TextDocument {
        format,
        articles: metas,
        passages,
    }
}
