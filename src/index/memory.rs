//! The in-memory index: immutable segments plus deletion marks, published as snapshots.
//!
//! A change never edits what a reader may be looking at. Removing a document marks its rows
//! deleted in a fresh copy of the affected segments' marks (a bit per row); adding passages
//! builds a new segment from them; the new list of segments is then published with one pointer
//! swap. A reader holds the [`Snapshot`] it started with until it finishes, so a replaced
//! document is seen whole, before or after, never half-replaced. This is how tantivy and Lucene
//! let searches run while writes go on.
//!
//! Segments accumulate as documents arrive one by one, so they are merged as in a binary
//! counter: whenever the segment before the last holds at most twice the live passages of the
//! last, the two become one. That keeps the number of segments logarithmic in the passage count
//! and copies each passage a logarithmic number of times; a segment with more deleted rows than
//! live ones is rewritten alone. Merging drops deleted rows.
//!
//! A segment of at least [`DEFAULT_QUANTIZE_FROM`] passages (the switch-over size,
//! [`MemoryIndex::quantized_from`]) holds its vectors as int8 codes with 4-bit remainders, 580
//! bytes a passage instead of 1,536, searched by an integer scan whose candidates are re-scored
//! ([`QuantizedVectors`]); smaller segments stay exact, where exact search is fast anyway. A
//! merge that reaches the size quantises the rows it copies, and a quantised segment's rows stay
//! quantised through later merges (their f32 values are gone). Deletion marks, filters and the
//! passage to exclude apply to both kinds the same way, before ranking.
//!
//! BM25 statistics (passage count, average length, passages containing a term) are those of
//! the live passages of the snapshot, so scores do not depend on how passages are split into
//! segments.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::filter::{fold, CompiledFilter};
use super::lexical::{idf, term_score, Highlighter, Postings, K1};
use super::quantized::QuantizedVectors;
use super::topk::TopK;
use super::vector::{dot_product_kernel, DenseVectors};
use super::{
    Analyzer, Filter, Hit, Index, IndexChange, IndexError, IndexReader, IndexedPassage,
    LexicalScores, NearestQuery, ReadError, Slot,
};
use crate::corpus::{Passage, PassageId};

/// Rows from which a segment's vectors are held as int8 codes rather than f32 (the default of
/// [`MemoryIndex::quantized_from`]): below it exact search takes at most a few milliseconds
/// (measured with `wenda-bench index`), so nothing is traded for speed.
pub const DEFAULT_QUANTIZE_FROM: usize = 200_000;

/// A segment's vectors: exact below the switch-over size, quantised from it. Only one form is
/// kept, so a quantised segment holds no f32 copy.
#[derive(Debug)]
enum Vectors {
    Exact(DenseVectors),
    Quantized(QuantizedVectors),
}

impl Vectors {
    /// Room for `rows` rows, quantised or not.
    fn with_capacity(dimensions: usize, rows: usize, quantized: bool) -> Self {
        if quantized {
            Self::Quantized(QuantizedVectors::with_capacity(dimensions, rows))
        } else {
            Self::Exact(DenseVectors::with_capacity(dimensions, rows))
        }
    }

    fn is_quantized(&self) -> bool {
        matches!(self, Self::Quantized(_))
    }

    fn push(&mut self, vector: &[f32]) -> Result<usize, IndexError> {
        match self {
            Self::Exact(exact) => exact.push(vector),
            Self::Quantized(quantized) => quantized.push(vector),
        }
    }

    fn size_bytes(&self) -> usize {
        match self {
            Self::Exact(exact) => exact.size_bytes(),
            Self::Quantized(quantized) => quantized.size_bytes(),
        }
    }

    /// The stored vector of `row`; a quantised row's is decoded, so its cosines are within
    /// rounding (about 10⁻³) of the vector it was made from.
    fn vector(&self, row: usize) -> Cow<'_, [f32]> {
        match self {
            Self::Exact(exact) => Cow::Borrowed(exact.vector(row)),
            Self::Quantized(quantized) => Cow::Owned(quantized.vector(row)),
        }
    }

    /// The cosine of `query` with `row`, as [`nearest`](Self::nearest) scores it.
    fn cosine(&self, query: &[f32], row: usize) -> f32 {
        match self {
            Self::Exact(exact) => dot_product_kernel()(query, exact.vector(row)),
            Self::Quantized(quantized) => quantized.cosine(query, row),
        }
    }

    fn nearest(
        &self,
        query: &[f32],
        k: usize,
        accept: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        match self {
            Self::Exact(exact) => exact.nearest(query, k, accept),
            Self::Quantized(quantized) => quantized.nearest(query, k, accept),
        }
    }

    /// Appends the rows of `other` that `keep` admits. Quantised rows are copied as codes, so
    /// `self` must be quantised when `other` is: decoded values would pass for exact ones.
    fn extend_from(&mut self, other: &Self, keep: impl Fn(usize) -> bool) {
        match (self, other) {
            (Self::Exact(to), Self::Exact(from)) => to.extend_from(from, keep),
            (Self::Quantized(to), Self::Quantized(from)) => to.extend_from(from, keep),
            (Self::Quantized(to), Self::Exact(from)) => {
                for row in (0..from.len()).filter(|&row| keep(row)) {
                    to.push_normalised(from.vector(row));
                }
            }
            (Self::Exact(_), Self::Quantized(_)) => {
                unreachable!("quantised rows merged into an exact segment")
            }
        }
    }
}

/// Passages of one change, or of several merged, never modified after it is built.
#[derive(Debug)]
struct Segment {
    passages: Vec<Arc<Passage>>,
    /// Titles folded for title filters, so a filter need not fold every title.
    folded_titles: Vec<Option<String>>,
    vectors: Vectors,
    postings: Postings,
    rows_by_id: HashMap<PassageId, u32>,
    /// Rows of each document (its `citation.path`).
    rows_by_document: HashMap<String, Vec<u32>>,
}

impl Segment {
    fn empty(vectors: Vectors) -> Self {
        Self {
            passages: Vec::new(),
            folded_titles: Vec::new(),
            vectors,
            postings: Postings::default(),
            rows_by_id: HashMap::new(),
            rows_by_document: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.passages.len()
    }

    /// Registers `passage` as the next row (its vector and terms are added by the caller).
    fn push_passage(&mut self, passage: Arc<Passage>) {
        let row = self.passages.len() as u32;
        self.rows_by_id.insert(passage.id.clone(), row);
        self.rows_by_document
            .entry(passage.citation.path.clone())
            .or_default()
            .push(row);
        self.folded_titles
            .push(passage.article.title.as_deref().map(fold));
        self.passages.push(passage);
    }

    /// A segment of `added`, quantised when they are at least `quantize_from`.
    fn build(
        added: Vec<IndexedPassage>,
        dimensions: usize,
        quantize_from: usize,
    ) -> Result<Self, IndexError> {
        let quantized = added.len() >= quantize_from;
        let vectors = Vectors::with_capacity(dimensions, added.len(), quantized);
        let mut segment = Self::empty(vectors);
        for IndexedPassage {
            passage,
            vector,
            terms,
        } in added
        {
            segment.vectors.push(&vector)?;
            segment.postings.push(&terms);
            segment.push_passage(Arc::new(passage));
        }
        Ok(segment)
    }

    /// One segment holding the live rows of `parts`, in order: quantised when they are at
    /// least `quantize_from` or any part already is (its f32 values are gone).
    fn merge(parts: &[Part], dimensions: usize, quantize_from: usize) -> Self {
        let live: usize = parts.iter().map(|part| part.live).sum();
        let quantized =
            live >= quantize_from || parts.iter().any(|part| part.segment.vectors.is_quantized());
        let mut merged = Self::empty(Vectors::with_capacity(dimensions, live, quantized));
        for part in parts {
            let segment = &part.segment;
            let mut next = merged.len() as u32;
            let new_row: Vec<Option<u32>> = (0..segment.len())
                .map(|row| {
                    part.is_live(row).then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            merged
                .vectors
                .extend_from(&segment.vectors, |row| part.is_live(row));
            merged.postings.extend_from(&segment.postings, &new_row);
            for (row, passage) in segment.passages.iter().enumerate() {
                if part.is_live(row) {
                    merged.push_passage(Arc::clone(passage));
                }
            }
        }
        merged
    }
}

/// Deleted rows of one segment, a bit each.
#[derive(Debug, Clone, Default)]
struct Tombstones(Vec<u64>);

impl Tombstones {
    fn contains(&self, row: usize) -> bool {
        self.0
            .get(row / 64)
            .is_some_and(|word| word & (1 << (row % 64)) != 0)
    }

    /// Marks `row`; false when it already was.
    fn insert(&mut self, row: usize) -> bool {
        if self.0.len() <= row / 64 {
            self.0.resize(row / 64 + 1, 0);
        }
        let word = &mut self.0[row / 64];
        let bit = 1 << (row % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
}

/// A segment as one snapshot sees it.
#[derive(Debug, Clone)]
struct Part {
    segment: Arc<Segment>,
    deleted: Arc<Tombstones>,
    /// Slot of the segment's first row in the snapshot.
    base: usize,
    live: usize,
    live_documents: usize,
    /// Terms in the live rows.
    live_length: u64,
}

impl Part {
    fn new(segment: Segment) -> Self {
        let live_length = (0..segment.len())
            .map(|row| u64::from(segment.postings.length(row)))
            .sum();
        Self {
            live: segment.len(),
            live_documents: segment.rows_by_document.len(),
            live_length,
            deleted: Arc::default(),
            base: 0,
            segment: Arc::new(segment),
        }
    }

    fn is_live(&self, row: usize) -> bool {
        !self.deleted.contains(row)
    }

    fn live_row(&self, id: &PassageId) -> Option<usize> {
        let row = *self.segment.rows_by_id.get(id)? as usize;
        self.is_live(row).then_some(row)
    }

    /// Marks the rows of `document` deleted.
    fn remove_document(&mut self, document: &str) {
        let Some(rows) = self.segment.rows_by_document.get(document) else {
            return;
        };
        let deleted = Arc::make_mut(&mut self.deleted);
        let mut removed = false;
        for &row in rows {
            if deleted.insert(row as usize) {
                removed = true;
                self.live -= 1;
                self.live_length -= u64::from(self.segment.postings.length(row as usize));
            }
        }
        self.live_documents -= usize::from(removed);
    }
}

/// A consistent state of a [`MemoryIndex`].
pub struct Snapshot {
    dimensions: usize,
    analyzer: Arc<Analyzer>,
    parts: Vec<Part>,
}

impl Snapshot {
    fn new(dimensions: usize, analyzer: Arc<Analyzer>, mut parts: Vec<Part>) -> Self {
        let mut base = 0;
        for part in &mut parts {
            part.base = base;
            base += part.segment.len();
        }
        Self {
            dimensions,
            analyzer,
            parts,
        }
    }

    /// Slots in the snapshot, deleted rows included.
    fn slots(&self) -> usize {
        self.parts
            .last()
            .map_or(0, |part| part.base + part.segment.len())
    }

    fn locate(&self, slot: Slot) -> (&Part, usize) {
        let index = self.parts.partition_point(|part| part.base <= slot) - 1;
        let part = &self.parts[index];
        (part, slot - part.base)
    }

    /// Segments in the snapshot (for tests of the merge policy).
    pub fn segment_count(&self) -> usize {
        self.parts.len()
    }

    fn stored_vector(&self, slot: Slot) -> Cow<'_, [f32]> {
        let (part, row) = self.locate(slot);
        part.segment.vectors.vector(row)
    }

    /// Whether `filter` admits the passage at `slot`.
    pub(crate) fn admits_slot(&self, filter: &CompiledFilter<'_>, slot: Slot) -> bool {
        let (part, row) = self.locate(slot);
        Self::admits(filter, part, row)
    }

    /// Whether the filter admits `row` of `part`.
    fn admits(filter: &CompiledFilter<'_>, part: &Part, row: usize) -> bool {
        filter.accepts(
            &part.segment.passages[row],
            part.segment.folded_titles[row].as_deref(),
        )
    }

    /// Passages containing `term`, and its inverted lists per part.
    fn with_term<'s>(
        &'s self,
        term: &str,
    ) -> (usize, Vec<(&'s Part, &'s [super::lexical::Posting])>) {
        let lists: Vec<_> = self
            .parts
            .iter()
            .map(|part| (part, part.segment.postings.list(term)))
            .filter(|(_, list)| !list.is_empty())
            .collect();
        let count = lists
            .iter()
            .map(|(part, list)| {
                list.iter()
                    .filter(|posting| part.is_live(posting.row as usize))
                    .count()
            })
            .sum();
        (count, lists)
    }
}

impl IndexReader for Snapshot {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn passage_count(&self) -> usize {
        self.parts.iter().map(|part| part.live).sum()
    }

    fn document_count(&self) -> usize {
        self.parts.iter().map(|part| part.live_documents).sum()
    }

    fn vector_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|part| part.segment.vectors.size_bytes())
            .sum()
    }

    fn slot_of(&self, id: &PassageId) -> Option<Slot> {
        self.parts
            .iter()
            .find_map(|part| Some(part.base + part.live_row(id)?))
    }

    fn passage(&self, slot: Slot) -> &Arc<Passage> {
        let (part, row) = self.locate(slot);
        &part.segment.passages[row]
    }

    fn vector(&self, slot: Slot) -> Result<Cow<'_, [f32]>, ReadError> {
        Ok(self.stored_vector(slot))
    }

    fn nearest(&self, query: &NearestQuery<'_>) -> Result<Vec<Hit>, ReadError> {
        let filter = query.filter.compile();
        let mut top = TopK::new(query.k);
        for part in &self.parts {
            let accept = |row: usize| {
                part.is_live(row)
                    && Some(part.base + row) != query.exclude
                    && Self::admits(&filter, part, row)
            };
            for hit in part.segment.vectors.nearest(query.vector, query.k, &accept) {
                top.offer(Hit {
                    slot: part.base + hit.slot,
                    score: hit.score,
                });
            }
        }
        Ok(top.into_sorted())
    }

    fn cosines(&self, query: &[f32], slots: &[Slot]) -> Result<Vec<f32>, ReadError> {
        Ok(slots
            .iter()
            .map(|&slot| {
                let (part, row) = self.locate(slot);
                part.segment.vectors.cosine(query, row)
            })
            .collect())
    }

    fn lexical_scores(&self, question: &str) -> LexicalScores {
        let mut scores = vec![0f32; self.slots()];
        let passages = self.passage_count();
        let total_length: u64 = self.parts.iter().map(|part| part.live_length).sum();
        let average_length = (total_length as f32 / passages.max(1) as f32).max(1.0);
        let mut maximum = 0f32;
        // Repeated query terms count again, as a repeated word weighs more in the question.
        for term in self.analyzer.terms(question) {
            let (with_term, lists) = self.with_term(&term);
            let idf = idf(passages, with_term);
            maximum += idf * (K1 + 1.0);
            for (part, list) in lists {
                for posting in list {
                    let row = posting.row as usize;
                    if part.is_live(row) {
                        let length = part.segment.postings.length(row);
                        scores[part.base + row] +=
                            term_score(idf, posting.frequency, length, average_length);
                    }
                }
            }
        }
        if maximum > 0.0 {
            scores.iter_mut().for_each(|score| *score /= maximum);
        }
        LexicalScores(scores)
    }

    fn best_lexical(&self, scores: &LexicalScores, k: usize, filter: &Filter) -> Vec<Hit> {
        let filter = filter.compile();
        let mut top = TopK::new(k);
        for part in &self.parts {
            for row in 0..part.segment.len() {
                let slot = part.base + row;
                let score = scores.get(slot);
                if score > 0.0 && part.is_live(row) && Self::admits(&filter, part, row) {
                    top.offer(Hit { slot, score });
                }
            }
        }
        top.into_sorted()
    }

    fn highlighter(&self, question: &str) -> Highlighter<'_> {
        Highlighter::new(&self.analyzer, question, self.passage_count(), |term| {
            self.with_term(term).0
        })
    }

    fn term_idf(&self, term: &str) -> f32 {
        idf(self.passage_count(), self.with_term(term).0)
    }
}

/// Passages in memory, changed by whole documents while readers keep their snapshots.
pub struct MemoryIndex {
    current: RwLock<Arc<Snapshot>>,
    /// Rows from which a segment is quantised.
    quantize_from: usize,
    /// Serialises changes: each builds on the snapshot the previous one published.
    writer: Mutex<()>,
}

impl MemoryIndex {
    pub fn new(dimensions: usize, analyzer: Arc<Analyzer>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::new(dimensions, analyzer, Vec::new()))),
            quantize_from: DEFAULT_QUANTIZE_FROM,
            writer: Mutex::new(()),
        }
    }

    /// Holds segments of at least `rows` passages as int8 codes, searched by an integer scan
    /// and re-scored (see [`quantized`](super::quantized)); smaller ones stay exact. `usize::MAX`
    /// keeps every segment exact.
    pub fn quantized_from(mut self, rows: usize) -> Self {
        self.quantize_from = rows;
        self
    }

    /// An index of passages and terms without vectors, for when the vectors live elsewhere
    /// ([`RemoteIndex`](super::RemoteIndex)): the vectors of changes must then be empty.
    pub fn lexical_only(analyzer: Arc<Analyzer>) -> Self {
        Self::new(0, analyzer)
    }

    /// The current state, with its concrete type (tests, benchmarks).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Index for MemoryIndex {
    fn reader(&self) -> Arc<dyn IndexReader> {
        self.snapshot()
    }

    fn apply(&self, change: IndexChange) -> Result<(), IndexError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let dimensions = current.dimensions;
        let mut parts = current.parts.clone();
        for document in &change.remove_documents {
            for part in &mut parts {
                part.remove_document(document);
            }
        }
        let mut adding = HashSet::new();
        for added in &change.add {
            let id = &added.passage.id;
            if !adding.insert(id) || parts.iter().any(|part| part.live_row(id).is_some()) {
                return Err(IndexError::DuplicatePassage(id.to_string()));
            }
        }
        if !change.add.is_empty() {
            parts.push(Part::new(Segment::build(
                change.add,
                dimensions,
                self.quantize_from,
            )?));
        }
        parts.retain(|part| part.live > 0);
        compact(&mut parts, dimensions, self.quantize_from);
        let next = Snapshot::new(dimensions, Arc::clone(&current.analyzer), parts);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }
}

/// Rewrites mostly deleted segments and merges the newest ones while they are of similar size.
fn compact(parts: &mut Vec<Part>, dimensions: usize, quantize_from: usize) {
    for part in parts.iter_mut() {
        if part.segment.len() - part.live > part.live {
            let rewritten = Segment::merge(std::slice::from_ref(part), dimensions, quantize_from);
            *part = Part::new(rewritten);
        }
    }
    while parts.len() >= 2 {
        let n = parts.len();
        if parts[n - 2].live > 2 * parts[n - 1].live {
            break;
        }
        let merged = Segment::merge(&parts[n - 2..], dimensions, quantize_from);
        parts.truncate(n - 2);
        parts.push(Part::new(merged));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::passage_for_tests as passage;

    fn near<'a>(
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
        exclude: Option<Slot>,
    ) -> NearestQuery<'a> {
        NearestQuery {
            vector,
            k,
            filter,
            exclude,
            ef_search: None,
        }
    }

    fn analyzer() -> Arc<Analyzer> {
        static ANALYZER: std::sync::OnceLock<Arc<Analyzer>> = std::sync::OnceLock::new();
        Arc::clone(ANALYZER.get_or_init(|| Arc::new(Analyzer::default())))
    }

    /// A passage of `document` whose vector points along `axis` (of 4) and whose text is `text`.
    fn indexed(document: &str, id: &str, text: &str, axis: usize) -> IndexedPassage {
        let mut vector = vec![0.1f32; 4];
        vector[axis] = 1.0;
        IndexedPassage {
            passage: passage(document, id, text),
            vector,
            terms: analyzer().term_counts(text),
        }
    }

    fn add(index: &MemoryIndex, remove: &[&str], added: Vec<IndexedPassage>) {
        index
            .apply(IndexChange {
                remove_documents: remove.iter().map(|d| d.to_string()).collect(),
                add: added,
            })
            .unwrap();
    }

    fn ids(reader: &dyn IndexReader, hits: &[Hit]) -> Vec<String> {
        hits.iter()
            .map(|hit| reader.passage(hit.slot).id.to_string())
            .collect()
    }

    const TEXTS: [&str; 4] = [
        "上海模速空间是人工智能大模型孵化平台。",
        "会议强调要加紧实施更加积极有为的宏观政策。",
        "人工智能可以是造福人类的国际公共产品。人工智能治理。",
        "The incubator is in Xuhui district.",
    ];

    fn four_documents() -> MemoryIndex {
        four_documents_quantized_from(DEFAULT_QUANTIZE_FROM)
    }

    fn four_documents_quantized_from(rows: usize) -> MemoryIndex {
        let index = MemoryIndex::new(4, analyzer()).quantized_from(rows);
        for (i, text) in TEXTS.iter().enumerate() {
            add(
                &index,
                &[],
                vec![indexed(&format!("d{i}"), &format!("p{i}"), text, i)],
            );
        }
        index
    }

    #[test]
    fn rows_sharing_rare_terms_rank_first() {
        let index = four_documents();
        let reader = index.reader();
        let best = |question: &str| {
            let scores = reader.lexical_scores(question);
            ids(
                &*reader,
                &reader.best_lexical(&scores, 10, &Filter::default()),
            )
        };
        assert_eq!(best("模速空间在哪里？")[0], "p0");
        assert_eq!(best("宏观政策"), ["p1"]);
        assert_eq!(
            best("incubators districts")[0],
            "p3",
            "stemmed and lower-cased"
        );
        assert!(best("banana qwerty").is_empty());
    }

    #[test]
    fn scores_are_normalised_and_unknown_words_lower_them() {
        let index = four_documents();
        let reader = index.reader();
        let scores = reader.lexical_scores("人工智能");
        let all: Vec<f32> = (0..4).map(|slot| scores.get(slot)).collect();
        assert!(all.iter().all(|&s| (0.0..1.0).contains(&s)), "{all:?}");
        let slot = |id: &str| reader.slot_of(&PassageId::new(id)).unwrap();
        assert!(
            scores.get(slot("p2")) > scores.get(slot("p0")),
            "more occurrences score higher"
        );
        let diluted = reader.lexical_scores("人工智能 quantum chromodynamics lattice");
        assert!(diluted.get(slot("p2")) < scores.get(slot("p2")) / 2.0);
        assert!((0..4).all(|s| reader.lexical_scores("").get(s) == 0.0));
    }

    /// BM25 of a collection must not depend on how its passages are split into segments.
    #[test]
    fn scores_do_not_depend_on_segments() {
        let one = MemoryIndex::new(4, analyzer());
        add(
            &one,
            &[],
            TEXTS
                .iter()
                .enumerate()
                .map(|(i, t)| indexed(&format!("d{i}"), &format!("p{i}"), t, i))
                .collect(),
        );
        let many = four_documents();
        // Churn: add and remove a document so that `many` carries deleted rows.
        add(&many, &[], vec![indexed("x", "px", "人工智能人工智能", 0)]);
        add(&many, &["x"], vec![]);
        for question in ["人工智能", "宏观政策 district", "平台"] {
            let (a, b) = (one.reader(), many.reader());
            let (sa, sb) = (a.lexical_scores(question), b.lexical_scores(question));
            for i in 0..4 {
                let id = PassageId::new(format!("p{i}"));
                let left = sa.get(a.slot_of(&id).unwrap());
                let right = sb.get(b.slot_of(&id).unwrap());
                assert!(
                    (left - right).abs() < 1e-6,
                    "{question} p{i}: {left} vs {right}"
                );
            }
        }
    }

    #[test]
    fn highlights_mark_query_terms_as_disjoint_character_ranges() {
        let index = four_documents();
        let reader = index.reader();
        let text = TEXTS[0];
        let marked: Vec<String> = reader
            .highlighter("人工智能孵化？")
            .spans(text)
            .into_iter()
            .map(|span| text.chars().skip(span.start).take(span.len()).collect())
            .collect();
        assert_eq!(marked, ["人工智能", "孵化"]);
        let text = "Incubators in Xuhui";
        let spans = reader.highlighter("Which incubator?").spans(text);
        assert_eq!(spans, vec![0..10], "stemmed match, marked as written");
        assert!(reader.highlighter("量子色动力学").spans(text).is_empty());
    }

    #[test]
    fn terms_in_most_passages_are_not_highlighted() {
        let index = MemoryIndex::new(4, analyzer());
        let mut added: Vec<IndexedPassage> = (0..20)
            .map(|i| {
                indexed(
                    "d",
                    &format!("p{i}"),
                    &format!("第{i}条的新闻说明了发展"),
                    0,
                )
            })
            .collect();
        added.push(indexed("d", "last", "模速空间的发展", 0));
        add(&index, &[], added);
        let text = "模速空间的发展";
        let spans = index.reader().highlighter(text).spans(text);
        assert_eq!(spans, vec![0..4], "的 and 发展 are in every passage");
    }

    /// Exact segments, then every segment quantised.
    #[test]
    fn nearest_filters_before_ranking_and_excludes() {
        for quantize_from in [DEFAULT_QUANTIZE_FROM, 1] {
            filters_before_ranking_and_excludes(&four_documents_quantized_from(quantize_from));
        }
    }

    fn filters_before_ranking_and_excludes(index: &MemoryIndex) {
        let reader = index.reader();
        let query = [1.0, 0.0, 0.0, 0.0];
        let all = ids(
            &*reader,
            &reader
                .nearest(&near(&query, 4, &Filter::default(), None))
                .unwrap(),
        );
        assert_eq!(all[0], "p0");
        assert_eq!(all.len(), 4);
        let only = Filter {
            document: Some("d2".into()),
            ..Filter::default()
        };
        assert_eq!(
            ids(
                &*reader,
                &reader.nearest(&near(&query, 4, &only, None)).unwrap()
            ),
            ["p2"]
        );
        let first = reader.slot_of(&PassageId::new("p0"));
        let rest = ids(
            &*reader,
            &reader
                .nearest(&near(&query, 4, &Filter::default(), first))
                .unwrap(),
        );
        assert_eq!(rest.len(), 3);
        assert!(!rest.contains(&"p0".to_string()));
    }

    #[test]
    fn a_replaced_document_is_seen_whole_before_or_after() {
        let index = MemoryIndex::new(4, analyzer());
        add(
            &index,
            &[],
            vec![
                indexed("doc", "old1", "旧的第一段", 0),
                indexed("doc", "old2", "旧的第二段", 1),
            ],
        );
        let before = index.reader();
        add(
            &index,
            &["doc"],
            vec![indexed("doc", "new1", "新的一段", 2)],
        );
        let after = index.reader();
        let has =
            |reader: &Arc<dyn IndexReader>, id: &str| reader.slot_of(&PassageId::new(id)).is_some();
        assert!(has(&before, "old1") && has(&before, "old2") && !has(&before, "new1"));
        assert!(!has(&after, "old1") && !has(&after, "old2") && has(&after, "new1"));
        assert_eq!((before.passage_count(), before.document_count()), (2, 1));
        assert_eq!((after.passage_count(), after.document_count()), (1, 1));
        // The old reader still resolves and ranks its own passages.
        let hits = before
            .nearest(&near(&[1.0, 0.0, 0.0, 0.0], 2, &Filter::default(), None))
            .unwrap();
        assert_eq!(ids(&*before, &hits), ["old1", "old2"]);
    }

    #[test]
    fn refused_changes_leave_the_index_as_it_was() {
        let index = four_documents();
        let duplicate = index.apply(IndexChange {
            remove_documents: vec!["d0".into()],
            add: vec![indexed("new", "p1", "重复", 0)],
        });
        assert_eq!(duplicate, Err(IndexError::DuplicatePassage("p1".into())));
        let mut wrong = indexed("new", "q", "维度", 0);
        wrong.vector.pop();
        let dimensions = index.apply(IndexChange {
            remove_documents: vec!["d0".into()],
            add: vec![wrong],
        });
        assert!(matches!(dimensions, Err(IndexError::Dimensions { .. })));
        let reader = index.reader();
        assert_eq!(reader.passage_count(), 4, "d0 is still there");
        // Replacing a document by passages with the same ids is not a duplicate.
        add(
            &index,
            &["d1"],
            vec![indexed("d1", "p1", "新的宏观政策", 1)],
        );
        assert_eq!(index.reader().passage_count(), 4);
    }

    /// With every segment exact, and with merges crossing the switch-over size into quantised
    /// segments (which later merges then keep quantised).
    #[test]
    fn segments_stay_few_and_merges_keep_every_live_passage() {
        let exact = merged_passages(DEFAULT_QUANTIZE_FROM);
        assert!(exact
            .parts
            .iter()
            .all(|p| !p.segment.vectors.is_quantized()));
        assert_eq!(exact.vector_bytes(), exact.slots() * 4 * 4);
        let crossing = merged_passages(64);
        let (quantized, small): (Vec<&Part>, Vec<&Part>) = crossing
            .parts
            .iter()
            .partition(|p| p.segment.vectors.is_quantized());
        assert!(!quantized.is_empty() && !small.is_empty(), "both kinds");
        // Four codes, two remainders a byte, a scale: 10 bytes a row against 16.
        let rows = |parts: &[&Part]| parts.iter().map(|p| p.segment.len()).sum::<usize>();
        assert_eq!(
            crossing.vector_bytes(),
            rows(&quantized) * 10 + rows(&small) * 16
        );
    }

    /// Adds 300 one-passage documents to an index quantising from `quantize_from` rows,
    /// deleting one in three as it goes, and checks every live passage is found with its vector.
    fn merged_passages(quantize_from: usize) -> Arc<Snapshot> {
        let index = MemoryIndex::new(4, analyzer()).quantized_from(quantize_from);
        for i in 0..300 {
            add(
                &index,
                &[],
                vec![indexed(&format!("d{i}"), &format!("p{i}"), "文本", i % 4)],
            );
            if i % 3 == 0 {
                add(&index, &[&format!("d{}", i / 2)], vec![]);
            }
        }
        let snapshot = index.snapshot();
        assert!(
            snapshot.segment_count() <= 12,
            "{} segments",
            snapshot.segment_count()
        );
        let removed: HashSet<usize> = (0..300).filter(|i| i % 3 == 0).map(|i| i / 2).collect();
        assert_eq!(snapshot.passage_count(), 300 - removed.len());
        assert_eq!(snapshot.document_count(), 300 - removed.len());
        for i in 0..300 {
            let found = snapshot.slot_of(&PassageId::new(format!("p{i}")));
            assert_eq!(found.is_some(), !removed.contains(&i), "p{i}");
            if let Some(slot) = found {
                assert_eq!(snapshot.passage(slot).id.as_str(), format!("p{i}"));
                let mut expected = [0.1f32; 4];
                expected[i % 4] = 1.0;
                let norm = expected.iter().map(|v| v * v).sum::<f32>().sqrt();
                // A quantised value is within half a remainder step, 1/127/14/2 of the largest.
                let within = 3e-4;
                let stored = snapshot.stored_vector(slot);
                assert!(
                    (stored[i % 4] - 1.0 / norm).abs() < within,
                    "p{i} vector moved with it"
                );
                let query = [0.0, 0.0, 0.0, 1.0];
                let cosine = snapshot.cosines(&query, &[slot]).unwrap()[0];
                assert!((cosine - expected[3] / norm).abs() < within, "p{i} cosine");
            }
        }
        let hits = snapshot
            .nearest(&near(&[0.0, 0.0, 0.0, 1.0], 1000, &Filter::default(), None))
            .unwrap();
        assert_eq!(hits.len(), snapshot.passage_count());
        let cosines = snapshot
            .cosines(
                &[0.0, 0.0, 0.0, 1.0],
                &hits.iter().map(|h| h.slot).collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(
            cosines,
            hits.iter().map(|h| h.score).collect::<Vec<_>>(),
            "cosines are the scores nearest ranks by"
        );
        snapshot
    }
}
