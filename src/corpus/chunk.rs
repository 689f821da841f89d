//! Sizes passages to the embedding model's token budget.
//!
//! Paragraphs too small to stand alone are merged with a neighbour of the same article; those
//! too large are split between sentences, each piece repeating the last sentence (or
//! `overlap_sentences` of them) of the piece before it. A sentence
//! that is itself too large is split between clauses, and a clause that still is, at the last
//! character boundary that fits (between words when there is a space to cut at). Nothing is ever
//! dropped: a piece exceeds the budget only when a single character does.
//!
//! Token counts come from the model's tokenizer, which is not additive (merges across a boundary
//! change the count), so every candidate piece is counted whole. Probing piece lengths
//! exponentially, then bisecting, keeps that to a logarithmic number of counts per piece.

use std::ops::Range;

use crate::corpus::sentence::{clauses, push_trimmed, sentences};
use crate::corpus::text::MappedText;
use crate::corpus::{embedding_text, ChunkConfig};

/// The budget for the passages of one article.
pub(crate) struct Budget<'a> {
    config: &'a ChunkConfig<'a>,
    title: Option<&'a str>,
}

impl<'a> Budget<'a> {
    /// Embeds `title` with each passage when it takes at most a quarter of the budget, leaving
    /// the passage text most of the room.
    pub(crate) fn new(config: &'a ChunkConfig<'a>, title: Option<&'a str>) -> Self {
        let title = title.filter(|title| {
            config
                .count_tokens(&embedding_text(Some(title), ""))
                .saturating_mul(4)
                <= config.max_tokens
        });
        Self { config, title }
    }

    /// The title embedded with the passages, if any.
    pub(crate) fn title(&self) -> Option<&'a str> {
        self.title
    }

    fn fits(&self, text: &str) -> bool {
        self.config.count_tokens(&embedding_text(self.title, text)) <= self.config.max_tokens
    }

    fn is_small(&self, text: &str) -> bool {
        self.config.count_tokens(text) < self.config.min_tokens
    }
}

/// Consecutive paragraphs of an article that form one passage, or the pieces of one.
#[derive(Debug)]
pub(crate) struct Group {
    /// Indices of the first and last paragraph, 0-based.
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) text: MappedText,
}

/// Merges each small paragraph into the group before it, or the one after when it comes first,
/// as long as the merged text fits the budget.
pub(crate) fn merge_small(paragraphs: Vec<MappedText>, budget: &Budget<'_>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (index, paragraph) in paragraphs.into_iter().enumerate() {
        if let Some(group) = groups.last_mut() {
            if budget.is_small(group.text.as_str()) || budget.is_small(paragraph.as_str()) {
                let mut merged = group.text.clone();
                merged.append(&paragraph);
                if budget.fits(merged.as_str()) {
                    group.text = merged;
                    group.last = index;
                    continue;
                }
            }
        }
        groups.push(Group {
            first: index,
            last: index,
            text: paragraph,
        });
    }
    groups
}

/// A piece of a text: `range` in the text, whose first `overlap` bytes repeat the end of the
/// previous piece.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) range: Range<usize>,
    pub(crate) overlap: usize,
}

/// Splits `text` into pieces that fit the budget. The pieces start and end on non-whitespace,
/// and without their overlaps they hold every non-whitespace character of `text`, in order.
pub(crate) fn split(text: &str, budget: &Budget<'_>) -> Vec<Piece> {
    let units = units(text, budget);
    let span = |first: usize, end: usize| units[first].start..units[end - 1].end;
    let fits = |first: usize, end: usize| budget.fits(&text[span(first, end)]);
    let mut pieces = Vec::new();
    let (mut first, mut fresh) = (0, 0);
    while fresh < units.len() {
        let longest = longest_fit(units.len() - first, |count| fits(first, first + count));
        // At least one new unit, even when it does not fit on its own (a single character).
        let end = first + longest.unwrap_or(1).max(fresh + 1 - first);
        pieces.push(Piece {
            range: span(first, end),
            overlap: units[fresh].start - units[first].start,
        });
        let previous = first;
        fresh = end;
        first = (1..=budget.config.overlap_sentences)
            .rev()
            .filter_map(|back| fresh.checked_sub(back))
            .find(|&start| start > previous && fresh < units.len() && fits(start, fresh + 1))
            .unwrap_or(fresh);
    }
    pieces
}

/// Sentences of `text`, with those that do not fit the budget cut into clauses, and clauses
/// that do not fit cut into the longest pieces that do.
fn units(text: &str, budget: &Budget<'_>) -> Vec<Range<usize>> {
    let mut units = Vec::new();
    for sentence in sentences(text) {
        if budget.fits(&text[sentence.clone()]) {
            units.push(sentence);
            continue;
        }
        for clause in clauses(&text[sentence.clone()]) {
            let clause = sentence.start + clause.start..sentence.start + clause.end;
            if budget.fits(&text[clause.clone()]) {
                units.push(clause);
            } else {
                cut_to_fit(text, clause, budget, &mut units);
            }
        }
    }
    units
}

/// Cuts `range` of `text` into the longest pieces that fit, preferring to cut before a space.
fn cut_to_fit(text: &str, range: Range<usize>, budget: &Budget<'_>, units: &mut Vec<Range<usize>>) {
    let mut start = range.start;
    loop {
        let rest = &text[start..range.end];
        start += rest.len() - rest.trim_start().len();
        if start == range.end {
            break;
        }
        let end_after = |bytes: usize| ceil_char_boundary(text, start + bytes);
        let longest = longest_fit(range.end - start, |bytes| {
            budget.fits(&text[start..end_after(bytes)])
        });
        let mut end = end_after(longest.unwrap_or(1));
        if end < range.end {
            if let Some(space) = text[start..end].rfind(char::is_whitespace) {
                end = start + space;
            }
        }
        push_trimmed(units, text, start..end);
        start = end;
    }
}

fn ceil_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset += 1;
    }
    offset
}

/// The largest `n` in `1..=max` with `fits(n)`, assuming that a text that fits still fits when
/// shortened. Probes exponentially, then bisects.
fn longest_fit(max: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if max == 0 || !fits(1) {
        return None;
    }
    let (mut fitting, mut step) = (1, 1);
    let mut too_long = loop {
        let probe = fitting + step;
        if probe > max {
            break max + 1;
        }
        if !fits(probe) {
            break probe;
        }
        fitting = probe;
        step *= 2;
    };
    while too_long - fitting > 1 {
        let middle = fitting + (too_long - fitting) / 2;
        if fits(middle) {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }
    Some(fitting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tests::SimpleCounter;
    use crate::corpus::TokenCounter;

    fn config(counter: &SimpleCounter, max_tokens: usize) -> ChunkConfig<'_> {
        ChunkConfig {
            max_tokens,
            ..ChunkConfig::new(counter)
        }
    }

    fn pieces<'t>(text: &'t str, budget: &Budget<'_>) -> Vec<(&'t str, &'t str)> {
        split(text, budget)
            .into_iter()
            .map(|piece| {
                let fresh = piece.range.start + piece.overlap;
                (
                    &text[piece.range.start..fresh],
                    &text[fresh..piece.range.end],
                )
            })
            .collect()
    }

    #[test]
    fn longest_fit_finds_the_boundary() {
        for limit in 0..40 {
            assert_eq!(
                longest_fit(33, |n| n <= limit),
                (limit > 0).then_some(limit.min(33))
            );
        }
    }

    #[test]
    fn long_paragraph_splits_at_sentence_ends_with_overlap() {
        let sentence = |i: usize| format!("第{i}句话讲了一件事情，“还说了别的。”");
        let text: String = (1..=12).map(sentence).collect();
        let counter = SimpleCounter;
        let config = config(&counter, 64);
        let budget = Budget::new(&config, None);
        let pieces = pieces(&text, &budget);
        assert!(pieces.len() > 2);
        let mut rebuilt = String::new();
        for (i, (overlap, fresh)) in pieces.iter().enumerate() {
            let whole = format!("{overlap}{fresh}");
            assert!(counter.count_tokens(&whole) <= 64, "{whole}");
            assert!(whole.ends_with("还说了别的。”"), "{whole}");
            if i > 0 {
                assert!(!overlap.is_empty(), "piece {i} has no overlap");
                assert!(
                    rebuilt.ends_with(overlap),
                    "overlap repeats the previous piece"
                );
            }
            rebuilt.push_str(fresh);
        }
        assert_eq!(rebuilt, text);
    }

    #[test]
    fn overlong_sentences_split_at_clauses_then_characters() {
        let counter = SimpleCounter;
        let config = config(&counter, 16);
        let budget = Budget::new(&config, None);
        let text = "一二三四五六七八九十，一二三四五六七八九十一二三四五六七八九十。";
        let pieces = pieces(text, &budget);
        let texts: Vec<String> = pieces.iter().map(|(o, f)| format!("{o}{f}")).collect();
        assert_eq!(texts[0], "一二三四五六七八九十，");
        assert!(
            texts.iter().all(|t| counter.count_tokens(t) <= 16),
            "{texts:?}"
        );
        let fresh: String = pieces.iter().map(|(_, f)| *f).collect();
        assert_eq!(fresh, text);
    }

    #[test]
    fn latin_words_are_not_cut_when_a_space_allows() {
        let counter = SimpleCounter;
        let config = config(&counter, 6);
        let budget = Budget::new(&config, None);
        let text = "alpha beta gamma delta epsilon zeta eta theta";
        let fresh: Vec<&str> = pieces(text, &budget).into_iter().map(|(_, f)| f).collect();
        assert_eq!(fresh, ["alpha beta gamma delta", "epsilon zeta eta theta"]);
    }

    #[test]
    fn titles_count_against_the_budget_unless_too_long() {
        let counter = SimpleCounter;
        let config = config(&counter, 40);
        assert_eq!(Budget::new(&config, Some("短标题")).title(), Some("短标题"));
        let long_title = "很长的标题".repeat(3);
        assert_eq!(Budget::new(&config, Some(&long_title)).title(), None);
        let budget = Budget::new(&config, Some("短标题"));
        let text = "这是正文。".repeat(12);
        for piece in split(&text, &budget) {
            let embedded = embedding_text(budget.title(), &text[piece.range]);
            assert!(counter.count_tokens(&embedded) <= 40);
        }
    }

    #[test]
    fn small_paragraphs_merge_with_a_neighbour() {
        let counter = SimpleCounter;
        let config = ChunkConfig::new(&counter);
        let budget = Budget::new(&config, None);
        let paragraph = |text: &str| {
            let mut mapped = MappedText::default();
            mapped.push(0, text);
            mapped
        };
        let long = "这一段足够长，可以单独成为一个段落，不需要和别的段落合并在一起。".repeat(2);
        let groups = merge_small(
            vec![
                paragraph("开头。"),
                paragraph(&long),
                paragraph(&long),
                paragraph("会议还研究了其他事项。"),
            ],
            &budget,
        );
        let spans: Vec<_> = groups.iter().map(|g| (g.first, g.last)).collect();
        assert_eq!(spans, [(0, 1), (2, 3)]);
        assert!(groups[1]
            .text
            .as_str()
            .ends_with("合并在一起。会议还研究了其他事项。"));
    }
}
