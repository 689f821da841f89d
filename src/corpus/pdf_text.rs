//! Recognises text extracted from a PDF and puts its paragraphs back together.
//!
//! Such extractions hard-wrap every line at the page width, put an empty line after each line,
//! mark the end of a paragraph with trailing whitespace, and start the first line of a page with
//! a space. Blank lines therefore say nothing about paragraphs here; trailing whitespace does.
//!
//! The layout is told from ordinary text by its shape, not by the file name:
//! - most non-blank lines are followed by a blank line;
//! - the lines are short and of similar width: most come close to the wrap width (which the
//!   90th-percentile width estimates), and that width is a page's, not a paragraph's;
//! - most lines end mid-sentence. Ordinary text with one paragraph per line, blank lines between,
//!   passes the first test but fails these.

use crate::corpus::sentence::ends_sentence;
use crate::corpus::source::{join_lines, Line};
use crate::corpus::text::{columns, MappedText};

/// Fewer non-blank lines than this are too little evidence of a layout.
const MIN_LINES: usize = 4;
/// Widest wrap width, in columns, taken for a page rather than for unwrapped paragraphs.
const MAX_WRAP_COLUMNS: usize = 120;

/// The paragraphs of `lines` if they are laid out as PDF-wrapped text, `None` otherwise.
pub(crate) fn repair(lines: &[Line<'_>]) -> Option<Vec<MappedText>> {
    let wrap = wrap_width(lines)?;
    Some(join_lines(lines, false, |line| ends_paragraph(line, wrap)))
}

/// The wrap width of `lines` in columns, if they look PDF-wrapped.
fn wrap_width(lines: &[Line<'_>]) -> Option<usize> {
    let content: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].is_blank()).collect();
    let total = content.len();
    if total < MIN_LINES {
        return None;
    }
    let double_spaced = content
        .iter()
        .filter(|&&i| lines.get(i + 1).is_none_or(Line::is_blank))
        .count();
    let mut widths: Vec<usize> = content.iter().map(|&i| width(lines[i].text)).collect();
    widths.sort_unstable();
    let wrap = widths[total * 9 / 10];
    let near_wrap = widths.iter().filter(|&&w| w * 4 >= wrap * 3).count();
    let sentence_ends = content
        .iter()
        .filter(|&&i| ends_sentence(lines[i].text))
        .count();
    let wrapped = double_spaced * 4 >= total * 3
        && wrap <= MAX_WRAP_COLUMNS
        && near_wrap * 2 >= total
        && sentence_ends * 2 < total;
    wrapped.then_some(wrap)
}

/// A paragraph ends with trailing whitespace, the extractor's marker. A short line that ends a
/// sentence ends one too, for extractors that leave no marker: a wrapped line runs to the margin.
fn ends_paragraph(line: &Line<'_>, wrap: usize) -> bool {
    line.text.ends_with(char::is_whitespace)
        || (ends_sentence(line.text) && width(line.text) * 3 < wrap * 2)
}

fn width(text: &str) -> usize {
    text.trim().chars().map(columns).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::source::lines;

    fn repaired(text: &str) -> Option<Vec<String>> {
        let lines: Vec<_> = lines(text).collect();
        let paragraphs = repair(&lines)?;
        Some(paragraphs.iter().map(|p| p.as_str().to_owned()).collect())
    }

    #[test]
    fn wrapped_paragraphs_are_rejoined_across_page_breaks() {
        let text = "会议强调，要加紧实施更加积极有为的宏观政策，用好\n\n\
                    用足更加积极的财政政策和适度宽松的货币政策。加快地方\n\n\
                    工具，支持科技创新、扩大消费、稳定外贸等。强化政策取\n \
                    向一致性。 \n\n\
                    会议指出，要提高中低收入群体收入，大力发展服务消\n\n\
                    费，增强消费对经济增长的拉动作用。尽快清理消费领域限\n\n\
                    制性措施。 \n\n";
        let paragraphs = repaired(text).expect("detected as wrapped");
        assert_eq!(paragraphs.len(), 2);
        assert!(paragraphs[0].ends_with("稳定外贸等。强化政策取向一致性。"));
        assert!(paragraphs[1].starts_with("会议指出，要提高中低收入群体收入，大力发展服务消费，"));
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let one_paragraph_per_line = "第一段很长的内容，讲了一件事情。\n\n第二段也有内容。\n\n\
                                      第三段说完了。\n\nThe fourth one is English.\n\n";
        assert_eq!(repaired(one_paragraph_per_line), None);
        let hard_wrapped =
            "a plain text file wrapped\nat a fixed width with\nblank lines between\n\
                            paragraphs only.\n\nand a second\nparagraph here.\n";
        assert_eq!(repaired(hard_wrapped), None);
    }

    #[test]
    fn short_sentence_end_closes_a_paragraph_without_marker() {
        let text =
            "abcdefghij klmnopqrst uvwxyz abcdefgh\n\nijklmnopqrst uvwxyz abcdefghij klmno\n\n\
                    pqrstu vwx end.\n\nabcdefghij klmnopqrst uvwxyz abcdefgh\n\nijk done.\n\n";
        assert_eq!(
            repaired(text).expect("detected as wrapped"),
            [
                "abcdefghij klmnopqrst uvwxyz abcdefgh ijklmnopqrst uvwxyz abcdefghij klmno pqrstu vwx end.",
                "abcdefghij klmnopqrst uvwxyz abcdefgh ijk done.",
            ]
        );
    }
}
