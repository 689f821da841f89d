//! Keyword search: BM25 over the terms of an [`Analyzer`], kept per segment in inverted lists.
//!
//! A segment holds only its own [`Postings`]; the statistics BM25 needs (how many passages, their
//! average length, how many contain a term) are those of the live passages of the whole
//! snapshot, computed when a question is scored (see `memory`), so a passage scores the same
//! whichever segment holds it.
//!
//! Scores are normalised by the most a passage could score for the query (every query term
//! present, with unbounded frequency), so they lie in `[0, 1)` and say how much of the query's
//! information a passage contains. Query terms the collection has never seen count in that
//! maximum: a question whose words the collection lacks (an English question over Chinese text)
//! scores near zero everywhere, which is what lets hybrid ranking ignore lexical evidence when
//! there is none.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::terms::{Analyzer, TermCounts};

/// Term-frequency saturation (the usual BM25 value).
pub(crate) const K1: f32 = 1.2;
/// How much a long passage's frequencies are discounted.
pub(crate) const B: f32 = 0.75;
/// Terms in more than this share of the passages are not highlighted.
pub const HIGHLIGHT_MAX_ROW_SHARE: f32 = 0.5;
/// Terms in at most this many passages are always highlighted, whatever their share.
pub const HIGHLIGHT_ALWAYS_ROWS: usize = 8;

/// The inverse document frequency of a term found in `with_term` of `passages` passages.
pub(crate) fn idf(passages: usize, with_term: usize) -> f32 {
    let n = passages as f32;
    let df = with_term as f32;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// BM25's contribution of one term occurring `frequency` times in a passage of `length` terms.
pub(crate) fn term_score(idf: f32, frequency: u32, length: u32, average_length: f32) -> f32 {
    let tf = frequency as f32;
    let saturation = tf + K1 * (1.0 - B + B * length as f32 / average_length);
    idf * tf * (K1 + 1.0) / saturation
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Posting {
    pub(crate) row: u32,
    pub(crate) frequency: u32,
}

/// One segment's inverted lists: per term, the rows containing it in row order.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    lists: HashMap<String, Vec<Posting>>,
    /// Terms per row, repeats included.
    lengths: Vec<u32>,
}

impl Postings {
    /// Adds the next row.
    pub(crate) fn push(&mut self, counts: &TermCounts) {
        let row = self.lengths.len() as u32;
        for (term, frequency) in counts.iter() {
            let posting = Posting { row, frequency };
            match self.lists.get_mut(term) {
                Some(list) => list.push(posting),
                None => {
                    self.lists.insert(term.to_owned(), vec![posting]);
                }
            }
        }
        self.lengths.push(counts.length());
    }

    /// Appends the rows of `other` that `new_row` maps, renumbered; rows must map in increasing
    /// order, after every row already here.
    pub(crate) fn extend_from(&mut self, other: &Self, new_row: &[Option<u32>]) {
        for (term, list) in &other.lists {
            let kept = list.iter().filter_map(|posting| {
                Some(Posting {
                    row: new_row[posting.row as usize]?,
                    frequency: posting.frequency,
                })
            });
            match self.lists.get_mut(term) {
                Some(existing) => existing.extend(kept),
                None => {
                    let kept: Vec<Posting> = kept.collect();
                    if !kept.is_empty() {
                        self.lists.insert(term.clone(), kept);
                    }
                }
            }
        }
        self.lengths.extend(
            other
                .lengths
                .iter()
                .zip(new_row)
                .filter(|(_, row)| row.is_some())
                .map(|(length, _)| *length),
        );
    }

    pub(crate) fn list(&self, term: &str) -> &[Posting] {
        self.lists.get(term).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn length(&self, row: usize) -> u32 {
        self.lengths[row]
    }
}

/// The informative terms of one query, ready to be found in result texts.
pub struct Highlighter<'a> {
    analyzer: &'a Analyzer,
    wanted: HashSet<String>,
}

impl<'a> Highlighter<'a> {
    /// Keeps the terms of `query` worth marking. Terms in more than [`HIGHLIGHT_MAX_ROW_SHARE`]
    /// of the `passages` (的, "the") carry no information and would mark half of every passage,
    /// so they are left out (unless the collection is so small that no term is in more than
    /// [`HIGHLIGHT_ALWAYS_ROWS`] passages). So are one-character terms: in Chinese they are
    /// mostly particles (了, 对, 时), whose count a small collection cannot tell from a content
    /// word's. `with_term` counts the passages containing a term.
    pub(crate) fn new(
        analyzer: &'a Analyzer,
        query: &str,
        passages: usize,
        with_term: impl Fn(&str) -> usize,
    ) -> Self {
        let common = (passages as f32 * HIGHLIGHT_MAX_ROW_SHARE) as usize;
        let wanted = analyzer
            .terms(query)
            .into_iter()
            .filter(|term| {
                term.chars().count() > 1 && with_term(term) <= common.max(HIGHLIGHT_ALWAYS_ROWS)
            })
            .collect();
        Self { analyzer, wanted }
    }

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
