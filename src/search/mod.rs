//! Question → ranked passages: the passages of a corpus, their two indexes, and the rules that
//! turn a question into what a user sees (ranking mode, filters, `top_k`, `min_score`, one result
//! per paragraph, related passages).
//!
//! Three ranking modes ([`Mode`]): `dense` ranks by the cosine between question and passage
//! embeddings; `lexical` by BM25 over shared words, normalised to `[0, 1)`; `hybrid` (the default)
//! by `(1 − w)·cosine + w·lexical`, computed exactly for every passage in one pass over the
//! vectors. Because the lexical score is normalised by what the question could score, a question
//! sharing no words with the corpus adds nothing, and hybrid falls back to dense ranking.
//!
//! The engine does not run the model: callers embed the question (the HTTP layer through the
//! batching [`EmbedQueue`](crate::embedding::EmbedQueue), the CLI directly) and hand over the
//! vector. [`build`] assembles an engine from a loaded corpus, embedding only what the vector
//! cache does not already hold.

mod build;
mod context;
mod filter;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use build::{build, BuildError, BuildStats};
pub use context::{context, heading, Context, ContextCitation};
pub use filter::{Filter, IsoDate};

use filter::CompiledFilter;

use crate::corpus::{Document, Passage, PassageId};
use crate::index::{dot, Analyzer, Highlighter, Hit, LexicalIndex, VectorIndex};

/// Most results one search may ask for.
pub const MAX_TOP_K: usize = 100;
/// Results returned when the caller does not say.
pub const DEFAULT_TOP_K: usize = 5;

/// Weight of the lexical score in hybrid ranking, chosen on CMRC 2018 dev (`wenda eval`).
pub const DEFAULT_LEXICAL_WEIGHT: f32 = 0.2;

/// How passages are ranked.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cosine similarity of embeddings: paraphrases, other languages.
    Dense,
    /// BM25 over shared words: names, numbers, rare terms.
    Lexical,
    /// Both, blended.
    #[default]
    Hybrid,
}

impl Mode {
    /// Whether the question's embedding is needed.
    pub fn needs_embedding(self) -> bool {
        self != Self::Lexical
    }
}

/// A question as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// For lexical ranking.
    pub text: &'a str,
    /// The question's normalised embedding, for dense and hybrid ranking.
    pub vector: Option<&'a [f32]>,
}

/// What a search should return.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// How many passages, at most.
    pub top_k: usize,
    pub mode: Mode,
    pub filter: Filter,
    /// Passages scoring below this are left out, even if fewer than `top_k` remain.
    pub min_score: Option<f32>,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            top_k: DEFAULT_TOP_K,
            mode: Mode::default(),
            filter: Filter::default(),
            min_score: None,
        }
    }
}

/// A passage and how well it matches.
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub passage: &'a Passage,
    /// What the ranking used: the cosine, the lexical score or their blend, by mode.
    pub score: f32,
    /// Cosine similarity of the embeddings (dense and hybrid modes).
    pub dense: Option<f32>,
    /// Normalised BM25 (lexical and hybrid modes).
    pub lexical: Option<f32>,
}

/// Why a request about a passage cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    #[error("no passage has the id {0:?}")]
    UnknownPassage(String),
    #[error("{0:?} ranking needs the question's embedding")]
    MissingEmbedding(Mode),
}

/// A corpus ready to search: passages, their vectors and terms (row `i` is passage `i`), and
/// documents.
pub struct SearchEngine {
    passages: Vec<Passage>,
    /// Lower-cased titles, so title filters need not fold every title on every search.
    folded_titles: Vec<Option<String>>,
    /// Per row, the paragraph group it was cut from: pieces of one paragraph share a unit, and a
    /// result list shows one of them.
    units: Vec<usize>,
    rows_by_id: HashMap<PassageId, usize>,
    documents: Vec<Document>,
    vectors: VectorIndex,
    lexical: LexicalIndex,
    lexical_weight: f32,
}

impl SearchEngine {
    /// Pairs passages with their vectors (`vectors` row `i` belongs to `passages[i]`) and indexes
    /// their words.
    pub fn new(passages: Vec<Passage>, documents: Vec<Document>, vectors: VectorIndex) -> Self {
        assert_eq!(passages.len(), vectors.len(), "one vector per passage");
        let rows_by_id = passages
            .iter()
            .enumerate()
            .map(|(row, passage)| (passage.id.clone(), row))
            .collect();
        let folded_titles = passages
            .iter()
            .map(|p| p.article.title.as_deref().map(filter::fold_title))
            .collect();
        let mut unit_ids: HashMap<(&str, usize, usize, usize), usize> = HashMap::new();
        let units = passages
            .iter()
            .map(|p| {
                let key = (
                    p.citation.path.as_str(),
                    p.position.article,
                    p.position.first_paragraph,
                    p.position.last_paragraph,
                );
                let next = unit_ids.len();
                *unit_ids.entry(key).or_insert(next)
            })
            .collect();
        // Words are indexed from the passage text alone. A title is shared by every passage of
        // its article, so it cannot tell them apart, while BM25's length normalisation would make
        // it count most in the shortest (and least informative) ones.
        let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
        let lexical = LexicalIndex::build(Analyzer::default(), &texts);
        Self {
            passages,
            folded_titles,
            units,
            rows_by_id,
            documents,
            vectors,
            lexical,
            lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        }
    }

    /// Sets the weight `w` of the lexical score in hybrid ranking (`0` is dense, `1` lexical).
    pub fn set_lexical_weight(&mut self, weight: f32) {
        self.lexical_weight = weight.clamp(0.0, 1.0);
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Vector dimensions.
    pub fn dimensions(&self) -> usize {
        self.vectors.dimensions()
    }

    /// Bytes the vector matrix takes.
    pub fn index_bytes(&self) -> usize {
        self.vectors.size_bytes()
    }

    pub fn passage(&self, id: &str) -> Option<&Passage> {
        self.row_of(id).map(|row| &self.passages[row])
    }

    /// Finds the informative words of `question` in result texts, as sorted, disjoint ranges of
    /// characters (Unicode scalar values).
    pub fn highlighter(&self, question: &str) -> Highlighter<'_> {
        self.lexical.highlighter(question)
    }

    fn row_of(&self, id: &str) -> Option<usize> {
        self.rows_by_id.get(&PassageId::new(id)).copied()
    }

    /// The passages that best answer `question`, best first, one per paragraph.
    pub fn search(
        &self,
        question: &Question<'_>,
        params: &SearchParams,
    ) -> Result<Vec<Ranked<'_>>, SearchError> {
        let filter = params.filter.compile();
        let accept = |row: usize| self.admits(&filter, row);
        let vector = || {
            question
                .vector
                .ok_or(SearchError::MissingEmbedding(params.mode))
        };
        let min_score = params.min_score;
        Ok(match params.mode {
            Mode::Dense => {
                let query = vector()?;
                let hits =
                    self.one_per_unit(params.top_k, &|k| self.vectors.search(query, k, &accept));
                self.describe(hits, Some(query), None, min_score)
            }
            Mode::Lexical => {
                let scores = self.lexical.scores(question.text);
                let hits = self.one_per_unit(params.top_k, &|k| {
                    self.lexical.search_scores(&scores, k, &accept)
                });
                self.describe(hits, None, Some(&scores), min_score)
            }
            Mode::Hybrid => {
                let query = vector()?;
                let scores = self.lexical.scores(question.text);
                let w = self.lexical_weight;
                let blend = |row: usize, cosine: f32| (1.0 - w) * cosine + w * scores[row];
                let hits = self.one_per_unit(params.top_k, &|k| {
                    self.vectors.search_adjusted(query, k, &accept, &blend)
                });
                self.describe(hits, Some(query), Some(&scores), min_score)
            }
        })
    }

    /// The passages closest in meaning to passage `id`, itself excluded, best first (dense
    /// ranking; `params.mode` is not used).
    pub fn similar(&self, id: &str, params: &SearchParams) -> Result<Vec<Ranked<'_>>, SearchError> {
        let row = self
            .row_of(id)
            .ok_or_else(|| SearchError::UnknownPassage(id.to_owned()))?;
        let filter = params.filter.compile();
        let accept = |other: usize| other != row && self.admits(&filter, other);
        let query = self.vectors.vector(row);
        let hits = self.one_per_unit(params.top_k, &|k| self.vectors.search(query, k, &accept));
        Ok(self.describe(hits, Some(query), None, params.min_score))
    }

    fn admits(&self, filter: &CompiledFilter<'_>, row: usize) -> bool {
        filter.accepts(&self.passages[row], self.folded_titles[row].as_deref())
    }

    /// The best `top_k` hits of `fetch`, keeping the best piece of each paragraph group: asks
    /// for more hits when pieces of one group crowd others out.
    fn one_per_unit(&self, top_k: usize, fetch: &dyn Fn(usize) -> Vec<Hit>) -> Vec<Hit> {
        let mut wanted = top_k.saturating_mul(3);
        loop {
            let hits = fetch(wanted);
            let exhausted = hits.len() < wanted;
            let mut seen = HashSet::new();
            let kept: Vec<Hit> = hits
                .into_iter()
                .filter(|hit| seen.insert(self.units[hit.row]))
                .take(top_k)
                .collect();
            if kept.len() == top_k || exhausted {
                return kept;
            }
            wanted = wanted.saturating_mul(4);
        }
    }

    /// Turns hits into results with their score components, leaving out those below
    /// `min_score`.
    fn describe(
        &self,
        hits: Vec<Hit>,
        query: Option<&[f32]>,
        lexical: Option<&[f32]>,
        min_score: Option<f32>,
    ) -> Vec<Ranked<'_>> {
        hits.into_iter()
            .filter(|hit| min_score.is_none_or(|min| hit.score >= min))
            .map(|hit| Ranked {
                passage: &self.passages[hit.row],
                score: hit.score,
                dense: query.map(|q| dot(q, self.vectors.vector(hit.row))),
                lexical: lexical.map(|scores| scores[hit.row]),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{self, ChunkConfig, TokenCounter};

    /// One token per character: enough to make the corpus stage split a long record.
    struct Characters;
    impl TokenCounter for Characters {
        fn count_tokens(&self, text: &str) -> usize {
            text.chars().count()
        }
    }

    /// A long record split into pieces, and two short ones; vectors put every piece of the long
    /// record closest to the question `[1, 0]`.
    fn engine() -> SearchEngine {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wenda-search-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("records.jsonl");
        let long = "人工智能发展很快。".repeat(12);
        let records = [
            serde_json::json!({"id": "long", "text": long}),
            serde_json::json!({"id": "short", "text": "大模型孵化平台在徐汇区。"}),
            serde_json::json!({"id": "other", "text": "会议研究了经济形势。"}),
        ];
        let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let config = ChunkConfig {
            counter: &Characters,
            max_tokens: 40,
            min_tokens: 1,
            overlap_sentences: 0,
        };
        let report = corpus::load(&[&path], &config);
        std::fs::remove_dir_all(&dir).unwrap();
        let mut vectors = VectorIndex::new(2);
        for passage in &report.passages {
            let vector = match passage.source_id.as_ref().unwrap().as_str() {
                "long" => [1.0, 0.05],
                "short" => [0.9, 0.4],
                _ => [0.2, 1.0],
            };
            vectors.push(&vector).unwrap();
        }
        SearchEngine::new(report.passages, report.documents, vectors)
    }

    fn ids(ranked: &[Ranked<'_>]) -> Vec<String> {
        ranked.iter().map(|r| r.passage.id.to_string()).collect()
    }

    #[test]
    fn pieces_of_one_record_appear_once() {
        let engine = engine();
        assert!(engine.passages().len() > 3, "the long record is split");
        let question = Question {
            text: "人工智能",
            vector: Some(&[1.0, 0.0]),
        };
        let params = SearchParams {
            top_k: 3,
            mode: Mode::Dense,
            ..SearchParams::default()
        };
        let ranked = engine.search(&question, &params).unwrap();
        let found = ids(&ranked);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[1..], ["short", "other"], "{found:?}");
        assert!(found[0].starts_with("long"), "{found:?}");
    }

    #[test]
    fn hybrid_blends_and_lexical_needs_no_vector() {
        let mut engine = engine();
        engine.set_lexical_weight(0.5);
        let question = Question {
            text: "徐汇区",
            vector: Some(&[1.0, 0.0]),
        };
        let hybrid = SearchParams {
            top_k: 1,
            ..SearchParams::default()
        };
        let ranked = engine.search(&question, &hybrid).unwrap();
        assert_eq!(ids(&ranked), ["short"], "the shared rare word lifts it");
        let best = ranked[0];
        let expected = 0.5 * best.dense.unwrap() + 0.5 * best.lexical.unwrap();
        assert!((best.score - expected).abs() < 1e-6);

        let lexical = SearchParams {
            mode: Mode::Lexical,
            ..hybrid.clone()
        };
        let words_only = Question {
            vector: None,
            ..question
        };
        let ranked = engine.search(&words_only, &lexical).unwrap();
        assert_eq!(ids(&ranked), ["short"]);
        assert!(ranked[0].dense.is_none());
        assert_eq!(
            engine.search(&words_only, &hybrid).unwrap_err(),
            SearchError::MissingEmbedding(Mode::Hybrid)
        );
    }

    #[test]
    fn similar_excludes_the_passage_itself() {
        let engine = engine();
        let ranked = engine.similar("short", &SearchParams::default()).unwrap();
        assert!(!ids(&ranked).contains(&"short".to_string()));
        assert_eq!(
            engine
                .similar("nope", &SearchParams::default())
                .unwrap_err(),
            SearchError::UnknownPassage("nope".into())
        );
    }
}
