//! Prompt-ready context for chatbots: ranked passages numbered `[1]`, `[2]`, … with title, date
//! and source, within a length budget, and the citation list that the numbers refer to.

use super::Ranked;
use crate::corpus::{page_label, ArticleDate};

/// The context block and what its numbers cite.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Paste into a prompt; passages are separated by blank lines.
    pub text: String,
    /// One per number used in `text`, in order.
    pub citations: Vec<ContextCitation>,
    /// Results left out because the budget was spent.
    pub omitted: usize,
    /// The last passage included was cut to fit the budget.
    pub cut: bool,
}

/// What `[number]` in the context refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextCitation {
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
    pub page_start: Option<usize>,
    pub page_end: Option<usize>,
}

/// Builds the context from `ranked` (best first), adding whole passages while `measure` of the
/// text stays within `budget`. When not even the first passage fits, it is cut (at a character
/// boundary, marked `…`) so the block is never empty for a non-empty result list.
pub fn context(ranked: &[Ranked], budget: usize, measure: &dyn Fn(&str) -> usize) -> Context {
    let mut text = String::new();
    let mut citations = Vec::new();
    let mut cut = false;
    for ranked in ranked {
        let number = citations.len() + 1;
        let entry = entry(number, ranked);
        let separator = if text.is_empty() { "" } else { "\n\n" };
        let candidate = format!("{text}{separator}{entry}");
        if measure(&candidate) <= budget {
            text = candidate;
        } else if text.is_empty() {
            text = longest_prefix_within(&entry, budget, measure);
            if text.is_empty() {
                break;
            }
            cut = true;
        } else {
            break;
        }
        citations.push(citation(number, ranked));
        if cut {
            break;
        }
    }
    Context {
        text,
        omitted: ranked.len() - citations.len(),
        citations,
        cut,
    }
}

/// `[n] title (date, source, p. 3)` on one line, the passage text on the next.
fn entry(number: usize, ranked: &Ranked) -> String {
    let passage = &ranked.passage;
    let article = &passage.article;
    let date = article.date.as_ref().map(ArticleDate::label);
    let pages = page_label(passage.citation.page_start, passage.citation.page_end);
    let heading = heading(
        Some(number),
        article.title.as_deref(),
        date,
        article.source.as_deref(),
        pages.as_deref(),
    );
    format!("{heading}\n{}", ranked.passage.text)
}

/// How a cited passage is introduced to a language model: `[n] title (date, source, pages)`,
/// each part only when known.
pub fn heading(
    number: Option<usize>,
    title: Option<&str>,
    date: Option<&str>,
    source: Option<&str>,
    pages: Option<&str>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(number.map(|n| format!("[{n}]")));
    parts.extend(title.map(str::to_owned));
    let about: Vec<&str> = [date, source, pages].into_iter().flatten().collect();
    if !about.is_empty() {
        parts.push(format!("({})", about.join(", ")));
    }
    parts.join(" ")
}

fn citation(number: usize, ranked: &Ranked) -> ContextCitation {
    let passage = &ranked.passage;
    let article = &passage.article;
    ContextCitation {
        number,
        id: passage.id.to_string(),
        title: article.title.clone(),
        date: article.date.as_ref().map(|d| d.label().to_owned()),
        source: article.source.clone(),
        url: article.url.clone(),
        path: passage.citation.path.clone(),
        line_start: passage.citation.line_start,
        line_end: passage.citation.line_end,
        page_start: passage.citation.page_start,
        page_end: passage.citation.page_end,
    }
}

/// The longest prefix of `text`, plus `…`, that `measure` keeps within `budget` (binary search
/// over character counts; empty if not even `…` fits).
fn longest_prefix_within(text: &str, budget: usize, measure: &dyn Fn(&str) -> usize) -> String {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let with_ellipsis = |chars: usize| format!("{}…", &text[..boundaries[chars]]);
    let (mut low, mut high) = (0, boundaries.len() - 1);
    if measure(&with_ellipsis(0)) > budget {
        return String::new();
    }
    while low < high {
        let middle = (low + high).div_ceil(2);
        if measure(&with_ellipsis(middle)) <= budget {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    with_ellipsis(low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{ArticleMeta, Passage};

    fn passage(id: &str, text: &str) -> Passage {
        let mut passage = crate::corpus::passage_for_tests("news.txt", id, text);
        passage.article = ArticleMeta {
            title: Some("标题".into()),
            dateline: None,
            date: Some(ArticleDate::parse("2025年04月29日")),
            source: Some("新华网".into()),
            url: None,
        };
        passage.citation.line_start = 3;
        passage.citation.line_end = 4;
        passage
    }

    fn ranked(passages: &[Passage]) -> Vec<Ranked> {
        passages
            .iter()
            .map(|passage| Ranked {
                passage: std::sync::Arc::new(passage.clone()),
                score: 0.9,
                dense: None,
                lexical: None,
            })
            .collect()
    }

    fn chars(text: &str) -> usize {
        text.chars().count()
    }

    #[test]
    fn numbers_passages_with_their_provenance_within_the_budget() {
        let passages = [
            passage("a", "第一段。"),
            passage("b", "第二段。"),
            passage("c", "第三段。"),
        ];
        let ranked = ranked(&passages);
        let block = context(&ranked, 1000, &chars);
        assert_eq!(
            block.text,
            "[1] 标题 (2025-04-29, 新华网)\n第一段。\n\n[2] 标题 (2025-04-29, 新华网)\n第二段。\n\n[3] 标题 (2025-04-29, 新华网)\n第三段。"
        );
        assert_eq!(block.citations.len(), 3);
        assert_eq!(block.citations[1].id, "b");
        assert_eq!(block.citations[1].line_start, 3);
        assert_eq!((block.omitted, block.cut), (0, false));

        let two = chars(
            "[1] 标题 (2025-04-29, 新华网)\n第一段。\n\n[2] 标题 (2025-04-29, 新华网)\n第二段。",
        );
        let block = context(&ranked, two + 5, &chars);
        assert_eq!(block.citations.len(), 2);
        assert_eq!(block.omitted, 1);
        assert!(chars(&block.text) <= two + 5);
    }

    #[test]
    fn a_first_passage_too_long_is_cut_at_a_character_boundary() {
        let passages = [passage("a", &"长".repeat(100)), passage("b", "短。")];
        let ranked = ranked(&passages);
        let block = context(&ranked, 40, &chars);
        assert_eq!(chars(&block.text), 40);
        assert!(block.text.ends_with("长…"), "{}", block.text);
        assert!(block.cut);
        assert_eq!((block.citations.len(), block.omitted), (1, 1));
        assert_eq!(context(&ranked, 0, &chars).text, "");
        assert_eq!(context(&[], 100, &chars).citations, []);
    }
}
