//! Question → ranked passages: the rules that turn a question and an index into what a user
//! sees (ranking mode, `top_k`, `min_score`, one result per paragraph, related passages, context
//! blocks), over any [`IndexReader`].
//!
//! Three ranking modes ([`Mode`]): `dense` ranks by the cosine between question and passage
//! embeddings; `lexical` by BM25 over shared words, normalised to `[0, 1)`; `hybrid` (the default)
//! by `(1 − w)·cosine + w·lexical`. Hybrid ranking is an explicit fusion step: the index's best
//! dense candidates and its best lexical candidates are united and every candidate is re-scored
//! exactly with both components. Their union is widened until no passage left out could beat the
//! results (its blend is bounded by the last dense and the last lexical candidate's scores), so
//! over an exact index the result is the exact top `k` by blend. Because the lexical score is
//! normalised by what the question could score, a question sharing no words with the collection
//! adds nothing, and hybrid falls back to dense ranking.
//!
//! This module does not run the model: callers embed the question and hand over the vector.

mod context;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use context::{context, heading, Context, ContextCitation};

use crate::corpus::{Passage, PassageId};
use crate::index::{
    best_first, Filter, Hit, IndexReader, LexicalScores, NearestQuery, ReadError, Slot,
};

/// Most results one search may ask for.
pub const MAX_TOP_K: usize = 100;
/// Results returned when the caller does not say.
pub const DEFAULT_TOP_K: usize = 5;

/// Weight of the lexical score in hybrid ranking, chosen on CMRC 2018 dev (`wenda eval`).
pub const DEFAULT_LEXICAL_WEIGHT: f32 = 0.2;

/// How passages are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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
    pub const ALL: [Mode; 3] = [Mode::Dense, Mode::Lexical, Mode::Hybrid];

    /// Whether the question's embedding is needed.
    pub fn needs_embedding(self) -> bool {
        self != Self::Lexical
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Lexical => "lexical",
            Self::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| format!("unknown ranking mode {text:?}: dense, lexical or hybrid"))
    }
}

/// A question as ranking needs it.
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
    /// Weight `w` of the lexical score in hybrid ranking (`0` is dense, `1` lexical).
    pub lexical_weight: f32,
    /// Search effort of an approximate vector index (see [`NearestQuery::ef_search`]).
    pub ef_search: Option<usize>,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            top_k: DEFAULT_TOP_K,
            mode: Mode::default(),
            filter: Filter::default(),
            min_score: None,
            lexical_weight: DEFAULT_LEXICAL_WEIGHT,
            ef_search: None,
        }
    }
}

/// A passage and how well it matches.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub passage: Arc<Passage>,
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
    #[error("{} ranking needs the question's embedding", .0.as_str())]
    MissingEmbedding(Mode),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Candidates for a ranking, best first, with the most that any passage left out of them could
/// score (`None` when nothing admitted was left out).
struct Candidates {
    hits: Vec<Hit>,
    unseen_at_most: Option<f32>,
}

impl Candidates {
    /// `hits` are the best `wanted` of one ranking (fewer when there were no more).
    fn top(hits: Vec<Hit>, wanted: usize) -> Self {
        let unseen_at_most = (hits.len() == wanted).then(|| hits.last().map_or(0.0, |h| h.score));
        Self {
            hits,
            unseen_at_most,
        }
    }
}

/// The passages of `reader` that best answer `question`, best first, one per paragraph.
pub fn search(
    reader: &dyn IndexReader,
    question: &Question<'_>,
    params: &SearchParams,
) -> Result<Vec<Ranked>, SearchError> {
    let filter = &params.filter;
    let vector = || {
        question
            .vector
            .ok_or(SearchError::MissingEmbedding(params.mode))
    };
    let nearest = |vector, k| NearestQuery {
        vector,
        k,
        filter,
        exclude: None,
        ef_search: params.ef_search,
    };
    match params.mode {
        Mode::Dense => {
            let query = vector()?;
            let hits = best_per_unit(reader, params.top_k, &|wanted| {
                Ok(Candidates::top(
                    reader.nearest(&nearest(query, wanted))?,
                    wanted,
                ))
            })?;
            describe(reader, hits, Cosines::AreScores, None, params.min_score)
        }
        Mode::Lexical => {
            let scores = reader.lexical_scores(question.text);
            let hits = best_per_unit(reader, params.top_k, &|wanted| {
                Ok(Candidates::top(
                    reader.best_lexical(&scores, wanted, filter),
                    wanted,
                ))
            })?;
            describe(
                reader,
                hits,
                Cosines::Absent,
                Some(&scores),
                params.min_score,
            )
        }
        Mode::Hybrid => {
            let query = vector()?;
            let scores = reader.lexical_scores(question.text);
            let hits = best_per_unit(reader, params.top_k, &|wanted| {
                fuse(
                    reader,
                    &nearest(query, wanted),
                    &scores,
                    params.lexical_weight,
                )
            })?;
            describe(
                reader,
                hits,
                Cosines::Of(query),
                Some(&scores),
                params.min_score,
            )
        }
    }
}

/// The fusion step of hybrid ranking: the best `query.k` dense candidates and as many lexical
/// candidates, united and re-scored exactly by `(1 − w)·cosine + w·lexical`.
fn fuse(
    reader: &dyn IndexReader,
    query: &NearestQuery<'_>,
    lexical: &LexicalScores,
    w: f32,
) -> Result<Candidates, ReadError> {
    let wanted = query.k;
    let blend = |cosine: f32, words: f32| (1.0 - w) * cosine + w * words;
    let dense = reader.nearest(query)?;
    let words = reader.best_lexical(lexical, wanted, query.filter);
    // A passage in neither list scores at most the last dense candidate's cosine and the last
    // lexical candidate's score (0 when every passage sharing a word is among the candidates).
    // When the dense list holds every admitted passage, none was left out.
    let unseen_at_most = (dense.len() == wanted).then(|| {
        let last_cosine = dense.last().map_or(-1.0, |hit| hit.score);
        let last_words = if words.len() == wanted {
            words.last().map_or(0.0, |hit| hit.score)
        } else {
            0.0
        };
        blend(last_cosine, last_words)
    });
    let mut cosines: HashMap<Slot, f32> = dense.iter().map(|hit| (hit.slot, hit.score)).collect();
    let words_only: Vec<Slot> = words
        .iter()
        .map(|hit| hit.slot)
        .filter(|slot| !cosines.contains_key(slot))
        .collect();
    cosines.extend(
        words_only
            .iter()
            .copied()
            .zip(reader.cosines(query.vector, &words_only)?),
    );
    let mut hits: Vec<Hit> = cosines
        .into_iter()
        .map(|(slot, cosine)| Hit {
            slot,
            score: blend(cosine, lexical.get(slot)),
        })
        .collect();
    hits.sort_by(best_first);
    Ok(Candidates {
        hits,
        unseen_at_most,
    })
}

/// The passages closest in meaning to passage `id`, itself excluded, best first (dense
/// ranking; `params.mode` is not used).
pub fn similar(
    reader: &dyn IndexReader,
    id: &PassageId,
    params: &SearchParams,
) -> Result<Vec<Ranked>, SearchError> {
    let slot = reader
        .slot_of(id)
        .ok_or_else(|| SearchError::UnknownPassage(id.to_string()))?;
    let query = reader.vector(slot)?;
    let hits = best_per_unit(reader, params.top_k, &|wanted| {
        let nearest = NearestQuery {
            vector: &query,
            k: wanted,
            filter: &params.filter,
            exclude: Some(slot),
            ef_search: params.ef_search,
        };
        Ok(Candidates::top(reader.nearest(&nearest)?, wanted))
    })?;
    describe(reader, hits, Cosines::AreScores, None, params.min_score)
}

/// The paragraph group a passage was cut from: pieces of one paragraph share it, and a result
/// list shows one of them.
fn unit(passage: &Passage) -> (&str, usize, usize, usize) {
    (
        passage.citation.path.as_str(),
        passage.position.article,
        passage.position.first_paragraph,
        passage.position.last_paragraph,
    )
}

/// The best `top_k` candidates of `fetch`, keeping the best piece of each paragraph group: asks
/// for more candidates until no passage left out could take a place.
fn best_per_unit(
    reader: &dyn IndexReader,
    top_k: usize,
    fetch: &dyn Fn(usize) -> Result<Candidates, ReadError>,
) -> Result<Vec<Hit>, ReadError> {
    let mut wanted = top_k.saturating_mul(3).max(1);
    loop {
        let candidates = fetch(wanted)?;
        let mut seen = HashSet::new();
        let kept: Vec<Hit> = candidates
            .hits
            .into_iter()
            .filter(|hit| seen.insert(unit(reader.passage(hit.slot))))
            .take(top_k)
            .collect();
        let settled = match candidates.unseen_at_most {
            None => true,
            // Strictly above: a passage left out that ties could rank first by slot.
            Some(bound) => kept.len() == top_k && kept.last().is_some_and(|h| h.score > bound),
        };
        if settled || top_k == 0 {
            return Ok(kept);
        }
        wanted = wanted.saturating_mul(4);
    }
}

/// Where the cosine component of results comes from.
enum Cosines<'a> {
    /// Not asked for (lexical ranking).
    Absent,
    /// The hits' scores are cosines (dense ranking).
    AreScores,
    /// To be computed with this question vector.
    Of(&'a [f32]),
}

/// Turns hits into results with their score components, leaving out those below
/// `min_score`.
fn describe(
    reader: &dyn IndexReader,
    hits: Vec<Hit>,
    cosines: Cosines<'_>,
    lexical: Option<&LexicalScores>,
    min_score: Option<f32>,
) -> Result<Vec<Ranked>, SearchError> {
    let hits: Vec<Hit> = hits
        .into_iter()
        .filter(|hit| min_score.is_none_or(|min| hit.score >= min))
        .collect();
    let cosines = match cosines {
        Cosines::Absent => None,
        Cosines::AreScores => Some(hits.iter().map(|hit| hit.score).collect()),
        Cosines::Of(query) => {
            let slots: Vec<Slot> = hits.iter().map(|hit| hit.slot).collect();
            Some(reader.cosines(query, &slots)?)
        }
    };
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, hit)| Ranked {
            passage: Arc::clone(reader.passage(hit.slot)),
            score: hit.score,
            dense: cosines.as_ref().map(|c| c[i]),
            lexical: lexical.map(|scores| scores.get(hit.slot)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{self, ChunkConfig, TokenCounter};
    use crate::index::{
        Analyzer, Index, IndexChange, IndexedPassage, MemoryIndex, DEFAULT_QUANTIZE_FROM,
    };

    /// One token per character: enough to make the corpus stage split a long record.
    struct Characters;
    impl TokenCounter for Characters {
        fn count_tokens(&self, text: &str) -> usize {
            text.chars().count()
        }
    }

    fn analyzer() -> Arc<Analyzer> {
        static ANALYZER: std::sync::OnceLock<Arc<Analyzer>> = std::sync::OnceLock::new();
        Arc::clone(ANALYZER.get_or_init(|| Arc::new(Analyzer::default())))
    }

    /// An index of `passages`, quantised when they are at least `quantize_from`.
    fn index_of(passages: Vec<(Passage, Vec<f32>)>, quantize_from: usize) -> MemoryIndex {
        let dimensions = passages.first().map_or(2, |(_, v)| v.len());
        let index = MemoryIndex::new(dimensions, analyzer()).quantized_from(quantize_from);
        let add = passages
            .into_iter()
            .map(|(passage, vector)| IndexedPassage {
                terms: analyzer().term_counts(&passage.text),
                passage,
                vector,
            })
            .collect();
        index
            .apply(IndexChange {
                remove_documents: Vec::new(),
                add,
            })
            .unwrap();
        index
    }

    fn engine() -> MemoryIndex {
        engine_quantized_from(DEFAULT_QUANTIZE_FROM)
    }

    /// A long record split into pieces, and two short ones; vectors put every piece of the long
    /// record closest to the question `[1, 0]`.
    fn engine_quantized_from(rows: usize) -> MemoryIndex {
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
        let passages = report
            .passages
            .into_iter()
            .map(|passage| {
                let vector = match passage.source_id.as_ref().unwrap().as_str() {
                    "long" => vec![1.0, 0.05],
                    "short" => vec![0.9, 0.4],
                    _ => vec![0.2, 1.0],
                };
                (passage, vector)
            })
            .collect();
        index_of(passages, rows)
    }

    fn ids(ranked: &[Ranked]) -> Vec<String> {
        ranked.iter().map(|r| r.passage.id.to_string()).collect()
    }

    #[test]
    fn pieces_of_one_record_appear_once() {
        let index = engine();
        let reader = index.reader();
        assert!(reader.passage_count() > 3, "the long record is split");
        let question = Question {
            text: "人工智能",
            vector: Some(&[1.0, 0.0]),
        };
        let params = SearchParams {
            top_k: 3,
            mode: Mode::Dense,
            ..SearchParams::default()
        };
        let ranked = search(&*reader, &question, &params).unwrap();
        let found = ids(&ranked);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[1..], ["short", "other"], "{found:?}");
        assert!(found[0].starts_with("long"), "{found:?}");
    }

    #[test]
    fn hybrid_blends_and_lexical_needs_no_vector() {
        let index = engine();
        let reader = index.reader();
        let question = Question {
            text: "徐汇区",
            vector: Some(&[1.0, 0.0]),
        };
        let hybrid = SearchParams {
            top_k: 1,
            lexical_weight: 0.5,
            ..SearchParams::default()
        };
        let ranked = search(&*reader, &question, &hybrid).unwrap();
        assert_eq!(ids(&ranked), ["short"], "the shared rare word lifts it");
        let best = &ranked[0];
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
        let ranked = search(&*reader, &words_only, &lexical).unwrap();
        assert_eq!(ids(&ranked), ["short"]);
        assert!(ranked[0].dense.is_none());
        assert_eq!(
            search(&*reader, &words_only, &hybrid).unwrap_err(),
            SearchError::MissingEmbedding(Mode::Hybrid)
        );
    }

    /// Over exact and quantised vectors (whose stored vector is decoded).
    #[test]
    fn similar_excludes_the_passage_itself() {
        for quantize_from in [DEFAULT_QUANTIZE_FROM, 1] {
            let index = engine_quantized_from(quantize_from);
            let reader = index.reader();
            let ranked =
                similar(&*reader, &PassageId::new("short"), &SearchParams::default()).unwrap();
            assert!(!ids(&ranked).contains(&"short".to_string()));
            assert!(ids(&ranked)[0].starts_with("long"), "{quantize_from}");
        }
        let reader = engine().reader();
        assert_eq!(
            similar(&*reader, &PassageId::new("nope"), &SearchParams::default()).unwrap_err(),
            SearchError::UnknownPassage("nope".into())
        );
    }

    /// Fusion must give the exact top `k` by blend, as scoring every passage would, whatever
    /// the filter, weight and `k`; over quantised vectors too, whose cosines are re-scored ones.
    #[test]
    fn fusion_equals_an_exhaustive_blend() {
        for quantize_from in [DEFAULT_QUANTIZE_FROM, 1] {
            fusion_equals_an_exhaustive_blend_from(quantize_from);
        }
    }

    fn fusion_equals_an_exhaustive_blend_from(quantize_from: usize) {
        let words = [
            "模型",
            "政策",
            "上海",
            "会议",
            "经济",
            "人工智能",
            "平台",
            "发展",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let passages: Vec<(Passage, Vec<f32>)> = (0..400)
            .map(|i| {
                let text: String = (0..1 + next() % 5)
                    .map(|_| words[(next() % words.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join("，");
                let vector: Vec<f32> = (0..8)
                    .map(|_| (next() % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let document = format!("doc{}", i % 7);
                let mut passage =
                    crate::corpus::passage_for_tests(&document, &format!("p{i}"), &text);
                passage.position.first_paragraph = i + 1;
                passage.position.last_paragraph = i + 1;
                (passage, vector)
            })
            .collect();
        let index = index_of(passages, quantize_from);
        let reader = index.reader();
        for (trial, question) in ["上海的人工智能平台", "经济政策", "模型", "无关"]
            .iter()
            .enumerate()
        {
            let query: Vec<f32> = {
                let raw: Vec<f32> = (0..8)
                    .map(|_| (next() % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
                raw.iter().map(|v| v / norm).collect()
            };
            for (w, top_k, document) in [
                (0.2, 5, None),
                (0.7, 10, Some("doc3")),
                (0.5, 1, None),
                (1.0, 7, None),
            ] {
                let params = SearchParams {
                    top_k,
                    lexical_weight: w,
                    filter: Filter {
                        document: document.map(str::to_owned),
                        ..Filter::default()
                    },
                    ..SearchParams::default()
                };
                let question = Question {
                    text: question,
                    vector: Some(&query),
                };
                let fused = search(&*reader, &question, &params).unwrap();
                let scores = reader.lexical_scores(question.text);
                let mut exhaustive: Vec<(f32, String)> = (0..reader.passage_count())
                    .filter(|&slot| {
                        document.is_none_or(|d| reader.passage(slot).citation.path == d)
                    })
                    .map(|slot| {
                        let cosine = reader.cosines(&query, &[slot]).unwrap()[0];
                        let blend = (1.0 - w) * cosine + w * scores.get(slot);
                        (blend, reader.passage(slot).id.to_string())
                    })
                    .collect();
                exhaustive.sort_by(|a, b| b.0.total_cmp(&a.0));
                exhaustive.truncate(top_k);
                let got: Vec<(f32, String)> = fused
                    .iter()
                    .map(|r| (r.score, r.passage.id.to_string()))
                    .collect();
                assert_eq!(
                    got, exhaustive,
                    "trial {trial}, w {w}, k {top_k}, quantised from {quantize_from}"
                );
            }
        }
    }
}
