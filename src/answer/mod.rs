//! Ranked passages → an extractive answer: the sentences of the retrieved passages that answer
//! the question, each pointing at its passage, or a refusal when none does.
//!
//! The steps: split the passages into sentences ([`sentences`]); describe each sentence by what
//! makes an answer ([`features`]: closeness in meaning to the question, share of the question's
//! rare terms, whether it names the kind of thing asked for, the same for its neighbours, and how
//! well its passage was retrieved); score them with one linear model ([`select`]); keep the best
//! and the next ones that score close to it and say something else. The score is a probability
//! that the sentence answers, so one threshold decides a refusal.
//!
//! Like [`search`](crate::search), this module does not run the model: callers embed the
//! [`candidates`] (with [`Role::Passage`](crate::embedding::Role), cached by text) and hand the
//! vectors over.

mod features;
pub mod generate;
mod select;
pub mod sentences;

use std::collections::HashSet;
use std::sync::Arc;

pub use features::{AnalysedSentence, AnswerKind, LocalRarity, QuestionProfile, SentenceEvidence};
pub use select::{Features, Model, DEFAULT_MIN_CONFIDENCE};
pub use sentences::{SentenceSpan, MAX_SENTENCE_CHARS};

use crate::index::{Analyzer, IndexReader};
use crate::search::Ranked;

/// Sentences an answer has when the caller does not say: the best and up to two more.
pub const DEFAULT_MAX_SENTENCES: usize = 3;
/// Most sentences one answer may be asked for.
pub const MAX_SENTENCES: usize = 10;

/// How to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerOptions {
    /// Most sentences in the answer, the best included.
    pub max_sentences: usize,
    /// Below this confidence (0 to 1) the best sentence does not answer, and the answer is a
    /// refusal.
    pub min_confidence: f32,
}

impl Default for AnswerOptions {
    fn default() -> Self {
        Self {
            max_sentences: DEFAULT_MAX_SENTENCES,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// A sentence of one of the ranked passages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index of its passage in the ranked results.
    pub source: usize,
    /// Its position among that passage's sentences.
    pub position: usize,
    pub span: SentenceSpan,
}

impl Candidate {
    pub fn text<'r>(&self, ranked: &'r [Ranked]) -> &'r str {
        self.span.text(&ranked[self.source].passage.text)
    }
}

/// The sentences of `ranked` passages, best passage first, each distinct text once (passages
/// that overlap repeat sentences; the better-ranked copy is kept).
pub fn candidates(ranked: &[Ranked]) -> Vec<Candidate> {
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for (source, hit) in ranked.iter().enumerate() {
        let text = &hit.passage.text;
        for (position, span) in sentences::split(text).into_iter().enumerate() {
            if seen.insert(span.text(text)) {
                candidates.push(Candidate {
                    source,
                    position,
                    span,
                });
            }
        }
    }
    candidates
}

/// A sentence of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSentence {
    pub candidate: Candidate,
    pub text: String,
    /// Confidence that it answers the question, 0 to 1.
    pub score: f32,
}

/// What the passages say in answer to a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// Whether the best sentence is confident enough to answer.
    pub found: bool,
    /// Best first; empty when there are no candidate sentences. Present when `found` is false
    /// too, for callers that want the nearest miss.
    pub sentences: Vec<AnswerSentence>,
}

/// A candidate with its features and score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub candidate: usize,
    pub features: Features,
    pub score: f32,
}

/// Scores sentences for a question with the collection's term statistics.
pub struct Extractor {
    analyzer: Arc<Analyzer>,
}

impl Extractor {
    pub fn new(analyzer: Arc<Analyzer>) -> Self {
        Self { analyzer }
    }

    /// Every candidate scored, in candidate order. `vectors[i]` is the normalised embedding of
    /// `candidates[i]`'s text; `question_vector` the question's (as a query).
    pub fn score(
        &self,
        reader: &dyn IndexReader,
        question: &str,
        question_vector: &[f32],
        ranked: &[Ranked],
        candidates: &[Candidate],
        vectors: &[&[f32]],
    ) -> Vec<Scored> {
        let profile = QuestionProfile::new(&self.analyzer, question, |t| reader.term_idf(t));
        let analysed: Vec<AnalysedSentence> = candidates
            .iter()
            .map(|c| AnalysedSentence::new(&self.analyzer, &profile, c.text(ranked)))
            .collect();
        let rarity = LocalRarity::new(&profile, &analysed);
        let evidence: Vec<SentenceEvidence> = analysed
            .iter()
            .map(|sentence| SentenceEvidence::of(&profile, &rarity, sentence))
            .collect();
        let cosines: Vec<f32> = vectors.iter().map(|v| dot(v, question_vector)).collect();
        let model = Model::for_question(question, candidates.iter().map(|c| c.text(ranked)));
        (0..candidates.len())
            .map(|i| {
                let features = Features::new(i, candidates, ranked, &evidence, &cosines);
                Scored {
                    candidate: i,
                    score: model.confidence(&features),
                    features,
                }
            })
            .collect()
    }

    /// The answer among `candidates`: see [`score`](Self::score) for the arguments.
    #[allow(clippy::too_many_arguments)]
    pub fn extract(
        &self,
        reader: &dyn IndexReader,
        question: &str,
        question_vector: &[f32],
        ranked: &[Ranked],
        candidates: &[Candidate],
        vectors: &[&[f32]],
        options: &AnswerOptions,
    ) -> Extracted {
        let scored = self.score(
            reader,
            question,
            question_vector,
            ranked,
            candidates,
            vectors,
        );
        answer_from(&scored, ranked, candidates, vectors, options)
    }
}

/// The answer given the candidates' scores (see [`Extractor::score`]).
pub fn answer_from(
    scored: &[Scored],
    ranked: &[Ranked],
    candidates: &[Candidate],
    vectors: &[&[f32]],
    options: &AnswerOptions,
) -> Extracted {
    let chosen = select::choose(scored, vectors, options.max_sentences);
    let found = chosen
        .first()
        .is_some_and(|&i| scored[i].score >= options.min_confidence);
    Extracted {
        found,
        sentences: chosen
            .into_iter()
            .map(|i| AnswerSentence {
                candidate: candidates[i].clone(),
                text: candidates[i].text(ranked).to_owned(),
                score: scored[i].score,
            })
            .collect(),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
