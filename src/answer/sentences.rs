//! Passage text → sentences: the pieces an extractive answer quotes.
//!
//! A sentence ends at Chinese `。！？；…`, at Latin `.!?;` followed by a space or the end (so
//! `3.5` and `e.g.x` stay whole), or at a line break; closing quotes and brackets after the end
//! (`。」`, `?"`) belong to it. A sentence longer than [`MAX_SENTENCE_CHARS`] is cut at its last
//! comma that fits, or at the limit when it has none, so a quote stays readable. Sentences keep
//! the passage's exact text: nothing is inserted or dropped inside them, only the whitespace
//! between them is left out.

use std::ops::Range;

/// Most characters of one sentence.
pub const MAX_SENTENCE_CHARS: usize = 200;

/// Pieces of a long sentence shorter than this are not cut off at a comma: the cut goes to the
/// limit instead of leaving a fragment.
const MIN_PIECE_CHARS: usize = 20;

/// One sentence of a text, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceSpan {
    /// Byte offsets into the text.
    pub bytes: Range<usize>,
    /// Character (Unicode scalar value) offsets into the text, as highlights count them.
    pub chars: Range<usize>,
}

impl SentenceSpan {
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.bytes.clone()]
    }
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '…' | '!' | '?' | '\n')
}

/// Latin punctuation that ends a sentence only before whitespace or the end of the text.
fn ends_sentence_before_space(c: char) -> bool {
    matches!(c, '.' | ';')
}

fn closes(c: char) -> bool {
    matches!(
        c,
        '」' | '』' | '”' | '’' | '"' | '\'' | ')' | '）' | '】' | '》' | ']' | '〉'
    )
}

fn is_comma(c: char) -> bool {
    matches!(c, '，' | ',' | '、' | '：' | ':')
}

/// The sentences of `text`, in order, each at most [`MAX_SENTENCE_CHARS`] characters, leading
/// and trailing whitespace left out; pieces without a letter or digit are skipped.
pub fn split(text: &str) -> Vec<SentenceSpan> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at].1;
        let next = chars.get(at + 1).map(|&(_, c)| c);
        let end_here = ends_sentence(c)
            || (ends_sentence_before_space(c) && next.is_none_or(char::is_whitespace));
        at += 1;
        if end_here {
            while at < chars.len() && (closes(chars[at].1) || ends_sentence(chars[at].1)) {
                at += 1;
            }
            push_trimmed(&chars, text.len(), start..at, &mut sentences);
            start = at;
        }
    }
    push_trimmed(&chars, text.len(), start..chars.len(), &mut sentences);
    sentences
}

/// Adds the characters `range` of the text as sentences: trimmed, cut to the length limit.
fn push_trimmed(
    chars: &[(usize, char)],
    text_len: usize,
    range: Range<usize>,
    out: &mut Vec<SentenceSpan>,
) {
    let Range { mut start, mut end } = range;
    while start < end && chars[start].1.is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].1.is_whitespace() {
        end -= 1;
    }
    while end - start > MAX_SENTENCE_CHARS {
        let limit = start + MAX_SENTENCE_CHARS;
        let cut = (start + MIN_PIECE_CHARS..limit)
            .rev()
            .find(|&i| is_comma(chars[i - 1].1))
            .unwrap_or(limit);
        push_span(chars, text_len, start..cut, out);
        start = cut;
        while start < end && chars[start].1.is_whitespace() {
            start += 1;
        }
    }
    push_span(chars, text_len, start..end, out);
}

fn push_span(
    chars: &[(usize, char)],
    text_len: usize,
    range: Range<usize>,
    out: &mut Vec<SentenceSpan>,
) {
    let mut end = range.end;
    while end > range.start && chars[end - 1].1.is_whitespace() {
        end -= 1;
    }
    if !chars[range.start..end]
        .iter()
        .any(|(_, c)| c.is_alphanumeric())
    {
        return;
    }
    let byte = |i: usize| chars.get(i).map_or(text_len, |&(b, _)| b);
    out.push(SentenceSpan {
        bytes: byte(range.start)..byte(end),
        chars: range.start..end,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        split(text).iter().map(|s| s.text(text)).collect()
    }

    #[test]
    fn chinese_sentences_end_at_their_punctuation_with_closing_quotes_kept() {
        assert_eq!(
            texts("他说：「明天见。」然后走了！真的吗？是的；再见…"),
            vec![
                "他说：「明天见。」",
                "然后走了！",
                "真的吗？",
                "是的；",
                "再见…"
            ]
        );
        assert_eq!(texts("“你好。”她笑了。"), vec!["“你好。”", "她笑了。"]);
    }

    #[test]
    fn latin_full_stops_end_a_sentence_only_before_a_space_or_the_end() {
        assert_eq!(
            texts("Growth was 3.5 percent. Prices rose! Did they? Yes."),
            vec![
                "Growth was 3.5 percent.",
                "Prices rose!",
                "Did they?",
                "Yes."
            ]
        );
        assert_eq!(texts("见系列1.由于他"), vec!["见系列1.由于他"]);
    }

    #[test]
    fn mixed_text_and_line_breaks() {
        assert_eq!(
            texts("上海GDP增长5.2%。Shanghai grew. 第二行\n第三行"),
            vec!["上海GDP增长5.2%。", "Shanghai grew.", "第二行", "第三行"]
        );
    }

    #[test]
    fn spans_point_at_the_exact_text_in_bytes_and_characters() {
        let text = "  第一句。 second one.  ";
        let spans = split(text);
        assert_eq!(spans.len(), 2);
        let chars: Vec<char> = text.chars().collect();
        for span in &spans {
            let by_chars: String = chars[span.chars.clone()].iter().collect();
            assert_eq!(by_chars, span.text(text));
        }
        assert_eq!(spans[0].chars, 2..6);
    }

    #[test]
    fn long_sentences_are_cut_at_a_comma_and_lose_no_character() {
        let clause = "这是一个相当长的分句，";
        let text = clause.repeat(40) + "结束。";
        let pieces = texts(&text);
        assert!(pieces.len() > 1);
        assert!(pieces
            .iter()
            .all(|p| p.chars().count() <= MAX_SENTENCE_CHARS));
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.ends_with('，')));
        assert_eq!(pieces.concat(), text);

        let unbroken = "字".repeat(450);
        let pieces = texts(&unbroken);
        assert_eq!(
            pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![200, 200, 50]
        );
    }

    #[test]
    fn empty_and_punctuation_only_text_has_no_sentences() {
        assert!(split("").is_empty());
        assert!(split("  。！？ \n ").is_empty());
    }
}
