//! Text documents: one document's paragraphs, articles and passages, by [`Layout`].

use crate::corpus::article::{articles, Article};
use crate::corpus::chunk::{self, Budget};
use crate::corpus::id::DocumentKey;
use crate::corpus::source::{join_lines, lines, Line, SectionIndex};
use crate::corpus::text::MappedText;
use crate::corpus::{pdf_text, ArticleMeta, ChunkConfig, Citation, Layout, Passage, Position};

/// What a text file yields.
#[derive(Debug)]
pub(crate) struct TextDocument {
    /// Whether its lines were hard-wrapped (as text extracted from PDF is) and were rejoined.
    pub(crate) rewrapped: bool,
    /// Every article recognised, including any whose text was all title and date/source line.
    pub(crate) articles: Vec<ArticleMeta>,
    /// Passages, grouped by the paragraphs they were cut from.
    pub(crate) passages: Vec<Vec<Passage>>,
}

/// Cuts `text`, the document `path` (a file's path relative to its root, or a document id), into
/// passages. `defaults` describe the document; for news, each article's own title, date and
/// source lines take precedence and `defaults` fill in what an article lacks.
pub(crate) fn parse(
    path: &str,
    text: &str,
    layout: Layout,
    defaults: &ArticleMeta,
    config: &ChunkConfig<'_>,
) -> TextDocument {
    let lines: Vec<Line<'_>> = lines(text).collect();
    let (rewrapped, found) = match layout {
        Layout::News => match pdf_text::repair(&lines) {
            Some(paragraphs) => (true, articles(paragraphs)),
            None => (false, articles(join_lines(&lines, true, |_| false))),
        },
        Layout::Plain => (false, one_article(join_lines(&lines, true, |_| false))),
        Layout::Markdown => (false, one_article(markdown_paragraphs(&lines))),
        Layout::Jsonl => unreachable!("JSON lines are records, not text"),
    };
    let key = DocumentKey::new(path);
    let line_index = SectionIndex::lines(text);
    let page_index = SectionIndex::pages(text);
    let cite = |paragraphs: &MappedText, range| {
        let bytes = paragraphs.source_range(range);
        Citation {
            path: path.to_owned(),
            line_start: line_index.number_of(bytes.start),
            line_end: line_index.number_of(bytes.end - 1),
            byte_start: bytes.start,
            byte_end: bytes.end,
            page_start: page_index
                .as_ref()
                .map(|pages| pages.number_of(bytes.start)),
            page_end: page_index
                .as_ref()
                .map(|pages| pages.number_of(bytes.end - 1)),
        }
    };
    let mut metas = Vec::new();
    let mut passages = Vec::new();
    for (index, mut article) in found.into_iter().enumerate() {
        article.meta.fill_from(defaults);
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
        rewrapped,
        articles: metas,
        passages,
    }
}

/// The whole text as one article without metadata of its own.
fn one_article(paragraphs: Vec<MappedText>) -> Vec<Article> {
    vec![Article {
        meta: ArticleMeta::default(),
        paragraphs,
    }]
}

/// Paragraphs of Markdown: blank lines separate them, and an ATX heading (`# …` to `###### …`)
/// is a paragraph of its own, its `#` marker left out of the text (but not of the citation's
/// line range).
fn markdown_paragraphs(lines: &[Line<'_>]) -> Vec<MappedText> {
    let mut paragraphs = Vec::new();
    let mut current = MappedText::default();
    for line in lines {
        let heading = heading_text_start(line.text);
        if (line.is_blank() || heading.is_some()) && !current.is_empty() {
            paragraphs.push(std::mem::take(&mut current));
        }
        match heading {
            Some(start) => {
                let mut heading = MappedText::default();
                heading.push(line.start + start, &line.text[start..]);
                if !heading.is_empty() {
                    paragraphs.push(heading);
                }
            }
            None if !line.is_blank() => current.push(line.start, line.text),
            None => {}
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// Where the text of an ATX heading line starts: after up to three spaces, one to six `#` and
/// a space (or nothing: `#` alone is an empty heading).
fn heading_text_start(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let after = &rest[hashes..];
    if after.is_empty() {
        return Some(line.len());
    }
    after
        .starts_with([' ', '\t'])
        .then(|| line.len() - after.trim_start().len())
}
