//! Keyword search: BM25 over the terms of an [`Analyzer`], kept in an inverted index.
//!
//! Scores are normalised by the most a row could score for the query (every query term present,
//! with unbounded frequency), so they lie in `[0, 1)` and say how much of the query's information
//! a passage contains. Query terms the corpus has never seen count in that maximum: a question
//! whose words the corpus lacks (an English question over Chinese text) scores near zero
//! everywhere, which is what lets hybrid ranking ignore lexical evidence when there is none.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use rayon::prelude::*;

use super::terms::Analyzer;
use super::topk::{Hit, TopK};

/// Term-frequency saturation (the usual BM25 value).
const K1: f32 = 1.2;
/// How much a long passage's frequencies are discounted.
const B: f32 = 0.75;
/// Terms in more than this share of the rows are not highlighted.
pub const HIGHLIGHT_MAX_ROW_SHARE: f32 = 0.5;
/// Terms in at most this many rows are always highlighted, whatever their share.
pub const HIGHLIGHT_ALWAYS_ROWS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Posting {
    row: u32,
    frequency: u32,
}

/// An inverted index with BM25 scoring.
pub struct LexicalIndex {
    analyzer: Analyzer,
    term_ids: HashMap<String, usize>,
    /// Per term, the rows containing it, in row order.
    postings: Vec<Vec<Posting>>,
    /// Terms per row.
    lengths: Vec<u32>,
    average_length: f32,
}

impl LexicalIndex {
    /// Indexes `texts`; text `i` is row `i`.
    pub fn build<S: AsRef<str> + Sync>(analyzer: Analyzer, texts: &[S]) -> Self {
        let analysed: Vec<Vec<String>> = texts
            .par_iter()
            .map(|text| analyzer.terms(text.as_ref()))
            .collect();
        let mut term_ids: HashMap<String, usize> = HashMap::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut lengths = Vec::with_capacity(texts.len());
        for (row, terms) in analysed.into_iter().enumerate() {
            lengths.push(terms.len() as u32);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for term in terms {
                *counts.entry(term).or_default() += 1;
            }
            for (term, frequency) in counts {
                let next = postings.len();
                let id = *term_ids.entry(term).or_insert(next);
                if id == next {
                    postings.push(Vec::new());
                }
                postings[id].push(Posting {
                    row: row as u32,
                    frequency,
                });
            }
        }
        let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
        let average_length = (total as f32 / lengths.len().max(1) as f32).max(1.0);
        Self {
            analyzer,
            term_ids,
            postings,
            lengths,
            average_length,
        }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn idf(&self, documents_with_term: usize) -> f32 {
        let n = self.len() as f32;
        let df = documents_with_term as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The normalised BM25 score of every row for `query` (0 where no term is shared).
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let mut scores = vec![0f32; self.len()];
        let mut maximum = 0f32;
        for term in self.analyzer.terms(query) {
            let postings = self.term_ids.get(&term).map(|&id| &self.postings[id]);
            let idf = self.idf(postings.map_or(0, Vec::len));
            maximum += idf * (K1 + 1.0);
            for posting in postings.into_iter().flatten() {
                let tf = posting.frequency as f32;
                let length = self.lengths[posting.row as usize] as f32;
                let saturation = tf + K1 * (1.0 - B + B * length / self.average_length);
                scores[posting.row as usize] += idf * tf * (K1 + 1.0) / saturation;
            }
        }
        if maximum > 0.0 {
            scores.iter_mut().for_each(|s| *s /= maximum);
        }
        scores
    }

    /// What to highlight for `query` in the texts of results. Terms in more than
    /// [`HIGHLIGHT_MAX_ROW_SHARE`] of the rows (的, "the") carry no information and would mark
    /// half of every passage, so they are left out (unless the corpus is so small that no term
    /// is in more than [`HIGHLIGHT_ALWAYS_ROWS`] rows). So are one-character terms: in Chinese
    /// they are mostly particles (了, 对, 时), whose count a small corpus cannot tell from a
    /// content word's.
    pub fn highlighter(&self, query: &str) -> Highlighter<'_> {
        let common = (self.len() as f32 * HIGHLIGHT_MAX_ROW_SHARE) as usize;
        let wanted = self
            .analyzer
            .terms(query)
            .into_iter()
            .filter(|term| {
                let rows = self
                    .term_ids
                    .get(term)
                    .map_or(0, |&id| self.postings[id].len());
                term.chars().count() > 1 && rows <= common.max(HIGHLIGHT_ALWAYS_ROWS)
            })
            .collect();
        Highlighter {
            analyzer: &self.analyzer,
            wanted,
        }
    }

    /// The `k` rows that score best for `query` among those `accept` admits, best first. Rows
    /// sharing no term with the query are never returned.
    pub fn search(&self, query: &str, k: usize, accept: &dyn Fn(usize) -> bool) -> Vec<Hit> {
        self.search_scores(&self.scores(query), k, accept)
    }

    /// Like [`search`](Self::search), over scores already computed with [`scores`](Self::scores).
    pub fn search_scores(
        &self,
        scores: &[f32],
        k: usize,
        accept: &dyn Fn(usize) -> bool,
    ) -> Vec<Hit> {
        let mut top = TopK::new(k);
        for (row, &score) in scores.iter().enumerate() {
            if score > 0.0 && accept(row) {
                top.offer(Hit { row, score });
            }
        }
        top.into_sorted()
    }
}

/// The informative terms of one query, ready to be found in result texts.
pub struct Highlighter<'a> {
    analyzer: &'a Analyzer,
    wanted: HashSet<String>,
}

impl Highlighter<'_> {
    /// Where `text` contains the query's terms, as sorted, disjoint character ranges.
    pub fn spans(&self, text: &str) -> Vec<Range<usize>> {
        if self.wanted.is_empty() {
            return Vec::new();
        }
        let mut spans: Vec<Range<usize>> = self
            .analyzer
            .located_terms(text)
            .into_iter()
            .filter(|located| self.wanted.contains(&located.term))
            .map(|located| located.chars)
            .collect();
        spans.sort_by_key(|span| (span.start, span.end));
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> LexicalIndex {
        LexicalIndex::build(
            Analyzer::default(),
            &[
                "上海模速空间是人工智能大模型孵化平台。",
                "会议强调要加紧实施更加积极有为的宏观政策。",
                "人工智能可以是造福人类的国际公共产品。人工智能治理。",
                "The incubator is in Xuhui district.",
            ],
        )
    }

    #[test]
    fn rows_sharing_rare_terms_rank_first() {
        let index = index();
        let hits = index.search("模速空间在哪里？", 10, &|_| true);
        assert_eq!(hits[0].row, 0, "{hits:?}");
        let hits = index.search("宏观政策", 10, &|_| true);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), [1]);
        let hits = index.search("incubators districts", 10, &|_| true);
        assert_eq!(hits[0].row, 3, "stemmed and lower-cased: {hits:?}");
    }

    #[test]
    fn highlights_mark_query_terms_as_disjoint_character_ranges() {
        let index = index();
        let text = "上海模速空间是人工智能大模型孵化平台。";
        let marked: Vec<String> = index
            .highlighter("人工智能孵化？")
            .spans(text)
            .into_iter()
            .map(|span| text.chars().skip(span.start).take(span.len()).collect())
            .collect();
        assert_eq!(marked, ["人工智能", "孵化"]);
        let text = "Incubators in Xuhui";
        let spans = index.highlighter("Which incubator?").spans(text);
        assert_eq!(
            spans,
            vec![Range { start: 0, end: 10 }],
            "stemmed match, marked as written"
        );
        assert!(index.highlighter("量子色动力学").spans(text).is_empty());
    }

    #[test]
    fn terms_in_most_rows_are_not_highlighted() {
        let texts: Vec<String> = (0..20)
            .map(|i| format!("第{i}条的新闻说明了发展"))
            .chain(["模速空间的发展".to_owned()])
            .collect();
        let index = LexicalIndex::build(Analyzer::default(), &texts);
        let text = "模速空间的发展";
        let spans = index.highlighter("模速空间的发展").spans(text);
        assert_eq!(
            spans,
            vec![Range { start: 0, end: 4 }],
            "的 and 发展 are in every row"
        );
    }

    #[test]
    fn scores_are_normalised_and_unknown_words_lower_them() {
        let index = index();
        let scores = index.scores("人工智能");
        assert!(
            scores.iter().all(|&s| (0.0..1.0).contains(&s)),
            "{scores:?}"
        );
        assert!(
            scores[2] > scores[0],
            "more occurrences score higher: {scores:?}"
        );
        let diluted = index.scores("人工智能 quantum chromodynamics lattice");
        assert!(diluted[2] < scores[2] / 2.0, "{diluted:?} vs {scores:?}");
    }

    #[test]
    fn filter_and_no_match() {
        let index = index();
        let hits = index.search("人工智能", 10, &|row| row != 2);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), [0]);
        assert!(index.search("banana qwerty", 10, &|_| true).is_empty());
        assert!(index.scores("").iter().all(|&s| s == 0.0));
    }
}
