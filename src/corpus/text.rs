//! Whitespace normalisation for mixed CJK and Latin text, keeping track of where every character
//! came from in the source file.
//!
//! Extracted text carries whitespace that means nothing: hard wraps, page-break indentation, and
//! spaces the extractor put between digits and Han characters (`4 月 25 日`). Chinese and Japanese
//! are written without spaces, Latin words need one. So a run of whitespace (line breaks included)
//! becomes a single space when the characters on both sides belong to space-separated scripts,
//! and disappears otherwise, with one exception: a space *within a line* between two Han (or kana)
//! characters was put there by the author, as in headlines (`学习时强调 坚持自立自强`) and
//! datelines (`25日电 中共中央`), and is kept. The rules serve within lines, across wrapped lines
//! and when paragraphs are merged, so the text never depends on how it happened to be wrapped.

use std::ops::Range;

/// Whether `c` belongs to a script written without spaces between words: Han ideographs, kana,
/// bopomofo, CJK punctuation and full-width forms. Hangul is not included: Korean uses spaces.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2FDF}'     // radicals
        | '\u{3000}'..='\u{303F}'   // CJK symbols and punctuation
        | '\u{3040}'..='\u{30FF}'   // hiragana, katakana
        | '\u{3100}'..='\u{312F}'   // bopomofo
        | '\u{31A0}'..='\u{31FF}'   // bopomofo extended, katakana extensions
        | '\u{3200}'..='\u{4DBF}'   // enclosed CJK, compatibility, extension A
        | '\u{4E00}'..='\u{9FFF}'   // unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{FE30}'..='\u{FE4F}'   // compatibility forms
        | '\u{FF00}'..='\u{FFEF}'   // half-width and full-width forms
        | '\u{20000}'..='\u{3FFFF}' // extensions B and later
    )
}

/// Columns `c` takes in a monospaced layout, the measure in which PDF extractors wrap lines.
pub(crate) fn columns(c: char) -> usize {
    let hangul = matches!(c, '\u{1100}'..='\u{115F}' | '\u{AC00}'..='\u{D7A3}');
    if is_cjk(c) || hangul {
        2
    } else {
        1
    }
}

/// What separated the next word from the previous one in the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    /// Nothing: the text continues.
    #[default]
    None,
    /// Spaces or tabs within a line.
    InLine,
    /// A line break (wrapped lines, separate lines or merged paragraphs).
    Break,
}

/// Whether whitespace of kind `gap` between `before` and `after` has to survive as a space.
fn needs_space(gap: Gap, before: char, after: char) -> bool {
    match gap {
        Gap::None => false,
        Gap::InLine if is_cjk_letter(before) && is_cjk_letter(after) => true,
        Gap::InLine | Gap::Break => !is_cjk(before) && !is_cjk(after),
    }
}

/// Whitespace that ends a line (page breaks and Unicode line separators included).
pub(crate) fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// CJK characters other than punctuation and full-width forms: what an author's space separates
/// in headlines and datelines.
pub fn is_cjk_letter(c: char) -> bool {
    is_cjk(c) && !matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FFEF}')
}

/// Whether most of the letters of `texts` are CJK: the language a question is answered in and
/// whether it is asked across languages ("What is 模速空间?" is English).
pub fn is_mostly_cjk<'t>(texts: impl IntoIterator<Item = &'t str>) -> bool {
    let (mut cjk, mut letters) = (0usize, 0usize);
    for c in texts.into_iter().flat_map(str::chars) {
        if c.is_alphabetic() {
            letters += 1;
            cjk += usize::from(is_cjk_letter(c));
        }
    }
    cjk * 2 > letters
}

/// Normalised text plus a map from its byte offsets back to byte offsets in the source file.
///
/// Every non-whitespace character is copied verbatim from the source, in order; only whitespace
/// is dropped or replaced by a single synthetic space. A range of the text that starts and ends
/// on non-whitespace therefore maps back to exactly the source bytes a citation should show.
#[derive(Debug, Clone, Default)]
pub(crate) struct MappedText {
    text: String,
    /// Start of each verbatim run of non-whitespace: (offset in `text`, offset in the source).
    /// Sorted by both; a run extends to the next one, less the synthetic space before it.
    runs: Vec<(usize, usize)>,
    /// Whitespace seen after the last character and not yet emitted (or dropped).
    gap: Gap,
}

impl MappedText {
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Appends `chunk`, which sits at byte `source_offset` of the source, normalising its
    /// whitespace. Consecutive calls are treated as separated by whitespace (line breaks).
    pub(crate) fn push(&mut self, source_offset: usize, chunk: &str) {
        let mut rest = chunk;
        let mut offset = source_offset;
        while !rest.is_empty() {
            let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if word_len > 0 {
                self.push_verbatim(offset, &rest[..word_len]);
            }
            let after_word = &rest[word_len..];
            let space_len = after_word
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(after_word.len());
            if space_len > 0 {
                let breaks = after_word[..space_len].contains(is_line_break);
                self.gap = self.gap.max(if breaks { Gap::Break } else { Gap::InLine });
            }
            offset += word_len + space_len;
            rest = &after_word[space_len..];
        }
        self.gap = Gap::Break;
    }

    /// Appends another mapped text, as a separate line would be.
    pub(crate) fn append(&mut self, other: &MappedText) {
        // `other` starts on a new line.
        self.gap = Gap::Break;
        for (i, &(start, source)) in other.runs.iter().enumerate() {
            let end = other
                .runs
                .get(i + 1)
                .map_or(other.text.len(), |&(next, _)| next);
            // Runs were separated by whitespace in the source. A space `other` kept ends the run;
            // kept, it was one the rules keep within a line, so the gap is decided again as one.
            let run = &other.text[start..end];
            let word = run.trim_end_matches(' ');
            self.push_verbatim(source, word);
            self.gap = if word.len() < run.len() {
                Gap::InLine
            } else {
                Gap::Break
            };
        }
        self.gap = Gap::Break;
    }

    /// Appends `word`, which contains no whitespace and sits at byte `source_offset`.
    fn push_verbatim(&mut self, source_offset: usize, word: &str) {
        let Some(first) = word.chars().next() else {
            return;
        };
        let spaced = self
            .text
            .chars()
            .next_back()
            .is_some_and(|last| needs_space(self.gap, last, first));
        if spaced {
            self.text.push(' ');
        }
        self.runs.push((self.text.len(), source_offset));
        self.text.push_str(word);
        self.gap = Gap::None;
    }

    /// Source byte range of `range`, a range of the text that starts and ends on non-whitespace.
    pub(crate) fn source_range(&self, range: Range<usize>) -> Range<usize> {
        let locate = |offset: usize| {
            let run = self.runs.partition_point(|&(start, _)| start <= offset) - 1;
            let (start, source) = self.runs[run];
            source + (offset - start)
        };
        let last_char = self.text[..range.end]
            .chars()
            .next_back()
            .map_or(0, char::len_utf8);
        locate(range.start)..locate(range.end - last_char) + last_char
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(lines: &[&str]) -> String {
        let mut text = MappedText::default();
        for line in lines {
            text.push(0, line);
        }
        text.as_str().to_owned()
    }

    #[test]
    fn spaces_survive_only_between_space_separated_scripts() {
        assert_eq!(
            normalised(&["新华社北京 4 月 25 日电"]),
            "新华社北京4月25日电"
        );
        assert_eq!(normalised(&["已入驻企业 100 余家"]), "已入驻企业100余家");
        assert_eq!(normalised(&["  hello \t world  "]), "hello world");
        assert_eq!(normalised(&["支持 GPU 推理"]), "支持GPU推理");
        assert_eq!(normalised(&["한국어 문장"]), "한국어 문장");
    }

    #[test]
    fn an_authors_space_between_han_characters_within_a_line_is_kept() {
        assert_eq!(
            normalised(&["学习时强调 坚持自立自强 突出应用导向  "]),
            "学习时强调 坚持自立自强 突出应用导向"
        );
        assert_eq!(
            normalised(&["（2025 年 04 月 25 日 来源：新华网） "]),
            "（2025年04月25日 来源：新华网）"
        );
        assert_eq!(normalised(&["稳就业、 稳企业"]), "稳就业、稳企业");
        assert_eq!(normalised(&["集体 ", "学习时强调"]), "集体学习时强调");
    }

    #[test]
    fn wrapped_lines_rejoin_by_the_same_rule() {
        assert_eq!(
            normalised(&["分析研究当前经", " 济形势"]),
            "分析研究当前经济形势"
        );
        assert_eq!(normalised(&["a wrapped", "sentence"]), "a wrapped sentence");
        assert_eq!(normalised(&["数字 2025", "年"]), "数字2025年");
    }

    #[test]
    fn ranges_map_back_to_source_bytes() {
        let source = "ab  cd\n 中 文\n";
        let mut text = MappedText::default();
        text.push(0, &source[..6]);
        text.push(7, &source[7..15]);
        assert_eq!(text.as_str(), "ab cd中 文");
        let mapped = text.source_range(3..text.as_str().len());
        assert_eq!(&source[mapped], "cd\n 中 文");
        let han = text.as_str().find('文').unwrap();
        assert_eq!(&source[text.source_range(han..han + 3)], "文");
    }

    #[test]
    fn appending_keeps_the_map() {
        let source = "one two\nthree 四";
        let mut first = MappedText::default();
        first.push(0, "one two");
        let mut second = MappedText::default();
        second.push(8, "three 四");
        first.append(&second);
        assert_eq!(first.as_str(), "one two three四");
        let mut title = MappedText::default();
        title.push(0, "学习时强调 坚持");
        let mut joined = MappedText::default();
        joined.push(0, "集体");
        joined.append(&title);
        assert_eq!(joined.as_str(), "集体学习时强调 坚持");
        let start = first.as_str().find("two").unwrap();
        let mapped = first.source_range(start..first.as_str().len());
        assert_eq!(&source[mapped], "two\nthree 四");
    }
}
