//! Sentence and clause boundaries in Chinese and Latin text.
//!
//! Full-width terminators (`。！？；…`) end a sentence wherever they stand. ASCII ones are also
//! decimal points, abbreviations and times (`3.5`, `e.g.`, `10:30`), so they count only when
//! whitespace or the end of the text follows. Closing quotes and brackets right after a
//! terminator belong to the sentence it ends: `他说：“好。”` is one sentence.

use std::ops::Range;

const SENTENCE_ENDS: &[char] = &[
    '。', '｡', '．', '！', '？', '；', '…', '‥', '!', '?', ';', '.', '﹒', '﹗', '﹖', '﹔',
];
const CLAUSE_ENDS: &[char] = &['，', '、', '：', '﹐', '﹑', '﹕', ',', ':'];
const CLOSERS: &[char] = &[
    '”', '’', '"', '\'', '」', '』', '）', ')', '】', '》', '〉', '］', ']', '｝', '}', '〕', '〗',
];

/// Whether `text` ends a sentence, ignoring trailing whitespace and closing quotes.
pub(crate) fn ends_sentence(text: &str) -> bool {
    text.trim_end()
        .trim_end_matches(CLOSERS)
        .ends_with(SENTENCE_ENDS)
}

/// Sentences of `text`, as ranges trimmed of whitespace; together they hold every
/// non-whitespace character of `text`, in order.
pub(crate) fn sentences(text: &str) -> Vec<Range<usize>> {
    split_after(text, SENTENCE_ENDS)
}

/// Clauses of `text`: sentences further split after commas, enumeration commas and colons.
pub(crate) fn clauses(text: &str) -> Vec<Range<usize>> {
    split_after(text, &[SENTENCE_ENDS, CLAUSE_ENDS].concat())
}

fn split_after(text: &str, ends: &[char]) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if !ends.contains(&c) {
            continue;
        }
        let mut end_of_run = None;
        while let Some(&(at, next)) = chars.peek() {
            if ends.contains(&next) || CLOSERS.contains(&next) {
                chars.next();
            } else {
                end_of_run = Some(at);
                break;
            }
        }
        let end = end_of_run.unwrap_or(text.len());
        let ascii_needs_space = c.is_ascii() && !text[end..].starts_with(char::is_whitespace);
        if end < text.len() && ascii_needs_space {
            continue;
        }
        push_trimmed(&mut pieces, text, start..end);
        start = end;
    }
    push_trimmed(&mut pieces, text, start..text.len());
    pieces
}

/// Pushes `range` without its surrounding whitespace, unless nothing else is left.
pub(crate) fn push_trimmed(pieces: &mut Vec<Range<usize>>, text: &str, range: Range<usize>) {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    let end = range.start + slice.trim_end().len();
    if start < end {
        pieces.push(start..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, f: fn(&str) -> Vec<Range<usize>>) -> Vec<&str> {
        f(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn chinese_sentences_keep_their_closing_quotes() {
        assert_eq!(
            split("他说：“好。”然后走了！真的？？是；否", sentences),
            ["他说：“好。”", "然后走了！", "真的？？", "是；", "否"]
        );
    }

    #[test]
    fn ascii_terminators_need_following_whitespace() {
        assert_eq!(
            split("Pi is 3.14, e.g. here. Next one!\"Quoted.\" End", sentences),
            ["Pi is 3.14, e.g.", "here.", "Next one!\"Quoted.\"", "End"]
        );
    }

    #[test]
    fn clauses_split_at_commas() {
        assert_eq!(
            split("一，二、三：四。a, b,c", clauses),
            ["一，", "二、", "三：", "四。", "a,", "b,c"]
        );
    }

    #[test]
    fn sentence_ends_are_recognised() {
        assert!(ends_sentence("会议还研究了其他事项。 "));
        assert!(ends_sentence("他说：“好。”"));
        assert!(!ends_sentence("学习时强调 坚持自立自强"));
    }
}
