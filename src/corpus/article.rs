//! Recognises news articles in a sequence of paragraphs.
//!
//! A news article is printed as a title, a date/source line such as
//! `（2025 年 04 月 25 日 来源：新华网）`, then its paragraphs. The date/source line is the reliable
//! anchor: a paragraph that is a date, optionally followed by `来源：<publisher>`, and bracketed
//! unless it names a publisher (a bare date is more often a letter's signature than a
//! dateline). The title is the run of paragraphs right before it that do not end a sentence:
//! page breaks and the extractor's markers split titles into several such fragments. A cap on
//! the title's length keeps the end of a previous article that lacks final punctuation from being
//! swallowed whole. Text before the first date/source line, or a file without any, forms an
//! article without metadata.

use crate::corpus::date::{self, ArticleDate};
use crate::corpus::sentence::ends_sentence;
use crate::corpus::text::MappedText;
use crate::corpus::ArticleMeta;

/// Titles longer than this, in characters, are not titles.
const MAX_TITLE_CHARS: usize = 120;
/// Fragments a title may have been broken into.
const MAX_TITLE_PARTS: usize = 6;

#[derive(Debug, Default)]
pub(crate) struct Article {
    pub(crate) meta: ArticleMeta,
    pub(crate) paragraphs: Vec<MappedText>,
}

impl Article {
    /// Whether the article holds anything: only the implicit one before the first date/source
    /// line can be empty.
    fn is_empty(&self) -> bool {
        self.meta.dateline.is_none() && self.paragraphs.is_empty()
    }
}

/// Groups `paragraphs` into articles, taking titles and date/source lines out of the text.
pub(crate) fn articles(paragraphs: Vec<MappedText>) -> Vec<Article> {
    let mut articles = Vec::new();
    let mut current = Article::default();
    for paragraph in paragraphs {
        let Some((date, source)) = parse_dateline(paragraph.as_str()) else {
            current.paragraphs.push(paragraph);
            continue;
        };
        let title = take_title(&mut current.paragraphs);
        let next = Article {
            meta: ArticleMeta {
                title,
                dateline: Some(paragraph.as_str().to_owned()),
                date: Some(date),
                source,
                url: None,
            },
            paragraphs: Vec::new(),
        };
        let finished = std::mem::replace(&mut current, next);
        if !finished.is_empty() {
            articles.push(finished);
        }
    }
    if !current.is_empty() {
        articles.push(current);
    }
    articles
}

/// Removes the title fragments from the end of `paragraphs` and joins them.
fn take_title(paragraphs: &mut Vec<MappedText>) -> Option<String> {
    let mut chars = 0;
    let mut parts = 0;
    for paragraph in paragraphs.iter().rev().take(MAX_TITLE_PARTS) {
        chars += paragraph.as_str().chars().count();
        if ends_sentence(paragraph.as_str()) || chars > MAX_TITLE_CHARS {
            break;
        }
        parts += 1;
    }
    let fragments = paragraphs.split_off(paragraphs.len() - parts);
    let title = fragments
        .iter()
        .fold(MappedText::default(), |mut title, fragment| {
            title.append(fragment);
            title
        });
    (!title.is_empty()).then(|| title.as_str().to_owned())
}

/// The date and publisher of a date/source line.
fn parse_dateline(text: &str) -> Option<(ArticleDate, Option<String>)> {
    let (inner, bracketed) = match strip_brackets(text) {
        Some(inner) => (inner, true),
        None => (text, false),
    };
    let (iso, rest) = date::parse_prefix(inner)?;
    let date = ArticleDate {
        text: inner[..inner.len() - rest.len()].trim().to_owned(),
        iso: Some(iso),
    };
    let rest = rest.trim();
    let source = match rest.strip_prefix("来源") {
        Some(source) => Some(source.trim_start().strip_prefix(['：', ':'])?.trim()),
        None if rest.is_empty() => None,
        None => return None,
    }
    .filter(|source| !source.is_empty());
    (bracketed || source.is_some()).then(|| (date, source.map(str::to_owned)))
}

fn strip_brackets(text: &str) -> Option<&str> {
    [('（', '）'), ('(', ')'), ('【', '】'), ('[', ']')]
        .into_iter()
        .find_map(|(open, close)| text.strip_prefix(open)?.strip_suffix(close))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraphs(texts: &[&str]) -> Vec<MappedText> {
        texts
            .iter()
            .map(|text| {
                let mut paragraph = MappedText::default();
                paragraph.push(0, text);
                paragraph
            })
            .collect()
    }

    #[test]
    fn datelines_start_articles_and_titles_come_before_them() {
        let articles = articles(paragraphs(&[
            "前言没有标题。",
            "习近平在中共中央政治局第二十次集体",
            "学习时强调 坚持自立自强",
            "（2025 年 04 月 26 日 来源：新华网）",
            "正文第一段。",
            "正文第二段。",
        ]));
        assert_eq!(articles.len(), 2);
        assert_eq!(articles[0].meta, ArticleMeta::default());
        assert_eq!(articles[0].paragraphs.len(), 1);
        let meta = &articles[1].meta;
        assert_eq!(
            meta.title.as_deref(),
            Some("习近平在中共中央政治局第二十次集体学习时强调 坚持自立自强")
        );
        assert_eq!(
            meta.dateline.as_deref(),
            Some("（2025年04月26日 来源：新华网）")
        );
        let date = meta.date.as_ref().unwrap();
        assert_eq!(
            (date.text.as_str(), date.iso.as_deref()),
            ("2025年04月26日", Some("2025-04-26"))
        );
        assert_eq!(meta.source.as_deref(), Some("新华网"));
        assert_eq!(articles[1].paragraphs.len(), 2);
    }

    #[test]
    fn only_whole_datelines_count() {
        for text in [
            "2025年4月25日，会议召开。",
            "2025年4月25日",
            "2025年4月25日 来源：",
        ] {
            assert_eq!(parse_dateline(text), None, "{text}");
        }
        assert!(parse_dateline("（2025-04-25）").is_some());
        assert!(parse_dateline("（2025年4月25日 来源：）").is_some());
        assert!(parse_dateline("2025年4月25日 来源: Reuters").is_some());
    }

    #[test]
    fn overlong_titles_are_left_to_the_previous_article() {
        let long = "没有句号的长段落".repeat(20);
        let articles = articles(paragraphs(&[&long, "标题", "（2025年04月26日）"]));
        assert_eq!(articles[0].paragraphs.len(), 1);
        assert_eq!(articles[1].meta.title.as_deref(), Some("标题"));
    }
}
