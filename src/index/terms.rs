//! Text → index terms for lexical search. Chinese has no spaces, so it is segmented into words
//! with jieba in search mode, which also emits the shorter words inside long ones (`人工智能` gives
//! `人工`, `智能` and `人工智能`), so a question and a passage that word a term differently still
//! share terms. Latin words are lower-cased and reduced to their English stem (`Districts` →
//! `district`). Punctuation and whitespace are not terms.

use std::ops::Range;

use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};

/// A term and the characters (Unicode scalar values, not bytes) of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedTerm {
    pub term: String,
    pub chars: Range<usize>,
}

/// Splits text into the terms both the index and queries use.
pub struct Analyzer {
    jieba: Jieba,
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self {
            jieba: Jieba::new(),
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

impl Analyzer {
    /// Bumped whenever a change alters the terms of some text: stored [`TermCounts`] of another
    /// revision must be analysed again.
    pub const REVISION: u32 = 1;

    /// The distinct terms of `text` with how often each occurs: what a lexical index keeps of a
    /// passage.
    pub fn term_counts(&self, text: &str) -> TermCounts {
        let mut counts: Vec<(String, u32)> = Vec::new();
        let mut terms = self.terms(text);
        terms.sort_unstable();
        for term in terms {
            match counts.last_mut() {
                Some((last, count)) if *last == term => *count += 1,
                _ => counts.push((term, 1)),
            }
        }
        TermCounts(counts)
    }

    /// The terms of `text`, in order, repeats included (BM25 counts them).
    pub fn terms(&self, text: &str) -> Vec<String> {
        self.located_terms(text)
            .into_iter()
            .map(|located| located.term)
            .collect()
    }

    /// The terms of `text` with where each was found. Spans overlap where search-mode
    /// segmentation emits the words inside a longer one.
    pub fn located_terms(&self, text: &str) -> Vec<LocatedTerm> {
        self.jieba
            .cut_for_search(text, true)
            .into_iter()
            .filter(|token| token.word.chars().any(char::is_alphanumeric))
            .map(|token| LocatedTerm {
                term: self.normalise(token.word),
                chars: token.start..token.end,
            })
            .collect()
    }

    /// The words of `text` with jieba's part-of-speech tags (`nr` person, `ns` place, `t` time,
    /// `m` numeral, …), punctuation and whitespace left out.
    pub fn tagged_words<'t>(&'t self, text: &'t str) -> Vec<(&'t str, &'t str)> {
        self.jieba
            .tag(text, true)
            .into_iter()
            .filter(|tag| tag.word.chars().any(char::is_alphanumeric))
            .map(|tag| (tag.word, tag.tag))
            .collect()
    }

    fn normalise(&self, word: &str) -> String {
        let lower = word.to_lowercase();
        if lower.chars().any(|c| c.is_ascii_alphabetic()) {
            self.stemmer.stem(&lower).into_owned()
        } else {
            lower
        }
    }
}

/// The distinct terms of one text, sorted, with their number of occurrences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermCounts(Vec<(String, u32)>);

/// Why stored term counts cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored term counts are damaged at byte {0}")]
pub struct TermCountsDamaged(usize);

impl TermCounts {
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(term, count)| (term.as_str(), *count))
    }

    /// Terms in the text, repeats included: the text's length for BM25.
    pub fn length(&self) -> u32 {
        self.0.iter().map(|(_, count)| count).sum()
    }

    /// A compact form for storage: per term, its byte length and count as LEB128 varints, then
    /// its UTF-8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.0.iter().map(|(t, _)| t.len() + 2).sum());
        for (term, count) in &self.0 {
            put_varint(&mut bytes, term.len() as u32);
            put_varint(&mut bytes, *count);
            bytes.extend_from_slice(term.as_bytes());
        }
        bytes
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TermCountsDamaged> {
        let mut counts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let length = take_varint(bytes, &mut at)? as usize;
            let count = take_varint(bytes, &mut at)?;
            let term = bytes
                .get(at..at + length)
                .and_then(|term| std::str::from_utf8(term).ok())
                .ok_or(TermCountsDamaged(at))?;
            counts.push((term.to_owned(), count));
            at += length;
        }
        Ok(Self(counts))
    }
}

fn put_varint(bytes: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn take_varint(bytes: &[u8], at: &mut usize) -> Result<u32, TermCountsDamaged> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at).ok_or(TermCountsDamaged(*at))?;
        *at += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(TermCountsDamaged(*at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_segmented_with_the_words_inside_long_ones() {
        let terms = Analyzer::default().terms("推动人工智能健康有序发展。");
        for expected in ["推动", "人工", "智能", "人工智能", "健康", "发展"] {
            assert!(
                terms.iter().any(|t| t == expected),
                "{expected} in {terms:?}"
            );
        }
        assert!(!terms.iter().any(|t| t == "。"), "{terms:?}");
    }

    #[test]
    fn latin_words_are_lower_cased_and_stemmed() {
        let terms = Analyzer::default().terms("Which Districts host incubators? GPT-4, 2025");
        assert_eq!(
            terms,
            ["which", "district", "host", "incub", "gpt", "gpt-4", "2025"],
            "{terms:?}"
        );
    }

    #[test]
    fn located_terms_point_at_their_characters() {
        let text = "在徐汇区，Districts";
        let chars: Vec<char> = text.chars().collect();
        let found: Vec<(String, String)> = Analyzer::default()
            .located_terms(text)
            .into_iter()
            .map(|located| (chars[located.chars].iter().collect(), located.term))
            .collect();
        for (source, term) in [("徐汇", "徐汇"), ("Districts", "district")] {
            assert!(
                found.contains(&(source.into(), term.into())),
                "{source} → {term} in {found:?}"
            );
        }
        assert!(found.iter().all(|(source, _)| source != "，"), "{found:?}");
    }

    #[test]
    fn term_counts_round_trip_through_their_encoding() {
        let counts = Analyzer::default().term_counts("人工智能，人工智能！AI ai 200000 年");
        assert_eq!(
            counts.length(),
            Analyzer::default()
                .terms("人工智能，人工智能！AI ai 200000 年")
                .len() as u32
        );
        assert!(
            counts
                .iter()
                .any(|(term, count)| term == "ai" && count == 2),
            "{counts:?}"
        );
        let bytes = counts.encode();
        assert_eq!(TermCounts::decode(&bytes), Ok(counts));
        let long = TermCounts(vec![("x".repeat(300), 70_000)]);
        assert_eq!(TermCounts::decode(&long.encode()), Ok(long));
        assert!(TermCounts::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(TermCounts::decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80]).is_err());
    }

    #[test]
    fn nothing_to_index_gives_no_terms() {
        assert!(Analyzer::default().terms("  ，。！？ \n").is_empty());
        assert!(Analyzer::default().terms("").is_empty());
    }
}
