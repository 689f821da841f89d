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

    fn normalise(&self, word: &str) -> String {
        let lower = word.to_lowercase();
        if lower.chars().any(|c| c.is_ascii_alphabetic()) {
            self.stemmer.stem(&lower).into_owned()
        } else {
            lower
        }
    }
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
    fn nothing_to_index_gives_no_terms() {
        assert!(Analyzer::default().terms("  ，。！？ \n").is_empty());
        assert!(Analyzer::default().terms("").is_empty());
    }
}
