//! Text → index terms for lexical search. Chinese has no spaces, so it is segmented into words
//! with jieba in search mode, which also emits the shorter words inside long ones (`人工智能` gives
//! `人工`, `智能` and `人工智能`), so a question and a passage that word a term differently still
//! share terms. Latin words are lower-cased and reduced to their English stem (`Districts` →
//! `district`). Punctuation and whitespace are not terms.

use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};

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
        self.jieba
            .cut_for_search(text, true)
            .into_iter()
            .map(|token| token.word)
            .filter(|word| word.chars().any(char::is_alphanumeric))
            .map(|word| self.normalise(word))
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
    fn nothing_to_index_gives_no_terms() {
        assert!(Analyzer::default().terms("  ，。！？ \n").is_empty());
        assert!(Analyzer::default().terms("").is_empty());
    }
}
