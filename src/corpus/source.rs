//! Lines of a source file with their numbers and byte offsets (the coordinates citations use),
//! and their joining into paragraphs.

use crate::corpus::text::MappedText;

/// One line of a source file, without its line terminator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub(crate) number: usize,
    /// Byte offset of the line's first byte in the file.
    pub(crate) start: usize,
    pub(crate) text: &'a str,
}

impl Line<'_> {
    pub(crate) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// Splits `text` into lines at `\n`, dropping a `\r` before it. A byte-order mark is not part of
/// the first line's text, but offsets stay those of the file.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut start = 0;
    text.split_inclusive('\n')
        .enumerate()
        .map(move |(index, raw)| {
            let line_start = start;
            start += raw.len();
            let skip = if index == 0 { bom } else { 0 };
            let content = raw.strip_suffix('\n').unwrap_or(raw);
            Line {
                number: index + 1,
                start: line_start + skip,
                text: &content.strip_suffix('\r').unwrap_or(content)[skip..],
            }
        })
}

/// Joins lines into paragraphs. A paragraph ends at a blank line when `blank_lines_separate`,
/// and after each line for which `ends_paragraph` holds. Blank lines never add text.
pub(crate) fn join_lines(
    lines: &[Line<'_>],
    blank_lines_separate: bool,
    ends_paragraph: impl Fn(&Line<'_>) -> bool,
) -> Vec<MappedText> {
    let mut paragraphs = Vec::new();
    let mut current = MappedText::default();
    for line in lines {
        let blank = line.is_blank();
        if !blank {
            current.push(line.start, line.text);
        }
        let ends = if blank {
            blank_lines_separate
        } else {
            ends_paragraph(line)
        };
        if ends && !current.is_empty() {
            paragraphs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// Finds the line number of a byte offset.
#[derive(Debug)]
pub(crate) struct SectionIndex {
    /// Byte offset at which each section after the first starts.
    starts: Vec<usize>,
}

/// Ends a page: a form feed, as text extracted from paged documents marks page breaks
/// (`pdftotext` does, and so does wenda's own extraction).
pub const PAGE_BREAK: char = '\u{c}';

impl SectionIndex {
    /// The lines of `text`.
    pub(crate) fn lines(text: &str) -> Self {
        Self::split_by(text, '\n')
    }

    /// The pages of `text`, or `None` when it has no page break.
    pub(crate) fn pages(text: &str) -> Option<Self> {
        text.contains(PAGE_BREAK)
            .then(|| Self::split_by(text, PAGE_BREAK))
    }

    fn split_by(text: &str, separator: char) -> Self {
        let starts = text
            .match_indices(separator)
            .map(|(at, _)| at + separator.len_utf8())
            .collect();
        Self { starts }
    }

    /// 1-based number of the section containing byte `offset`.
    pub(crate) fn number_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_file_offsets() {
        let text = "\u{feff}一\r\ntwo\n\nlast";
        let lines: Vec<_> = lines(text).map(|l| (l.number, l.start, l.text)).collect();
        assert_eq!(
            lines,
            [(1, 3, "一"), (2, 8, "two"), (3, 12, ""), (4, 13, "last")]
        );
        let index = SectionIndex::lines(text);
        assert_eq!(index.number_of(3), 1);
        assert_eq!(index.number_of(8), 2);
        assert_eq!(index.number_of(13), 4);
    }

    #[test]
    fn blank_lines_separate_paragraphs_when_asked() {
        let text = "one\ntwo\n\n\nthree.\nfour";
        let lines: Vec<_> = lines(text).collect();
        let joined = |blank, ends: fn(&Line<'_>) -> bool| -> Vec<String> {
            join_lines(&lines, blank, ends)
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        assert_eq!(joined(true, |_| false), ["one two", "three. four"]);
        assert_eq!(
            joined(false, |l| l.text.ends_with('.')),
            ["one two three.", "four"]
        );
    }
}
