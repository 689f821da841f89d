//! Features → one confidence per sentence, and the sentences an answer keeps.
//!
//! The confidence is a logistic model over [`Features`]. Its weights were fitted on half of
//! CMRC 2018 dev (the even-numbered questions, each against its 3 best passages, labelled by
//! whether a sentence contains the gold answer) and checked on the other half
//! (`wenda eval --answers` prints both); they are few and each has the sign one expects, which is
//! what keeps the model from learning that one set by heart.

use super::{dot, Candidate, SentenceEvidence};
use crate::search::Ranked;

/// Confidence under which the best sentence is a refusal, chosen on the same half of CMRC as the
/// weights, against the same questions asked of the collection without their paragraph.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.2;

/// A further sentence joins the answer only when its confidence is at least this share of the
/// best one's.
const EXTRA_SHARE: f32 = 0.5;
/// Two sentences whose embeddings are this close say the same thing: the second adds nothing.
const SAME_MEANING: f32 = 0.93;

/// What the model knows of one sentence.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Features {
    /// Cosine of the sentence's embedding with the question's.
    pub cosine: f32,
    /// Share of the question's IDF-weighted terms it contains.
    pub coverage: f32,
    /// Its coverage with terms weighted also by their rarity among the candidates.
    pub focus: f32,
    /// Share of the question's letters it has in the same order.
    pub in_order: f32,
    /// Share of the question's character bigrams it contains.
    pub bigrams: f32,
    /// It names a thing of the kind asked for (1) or not (0).
    pub kind_match: f32,
    /// The best cosine of the sentences just before and after it in its passage.
    pub neighbour_cosine: f32,
    /// The best focus of those neighbours.
    pub neighbour_focus: f32,
    /// 1 for the best passage, 1/2 for the second, …
    pub passage_rank: f32,
    /// The passage's retrieval score.
    pub passage_score: f32,
}

/// Fitted weights, in the order of [`Features::values`], and the intercept, printed by
/// `scripts/fit-answer-model.py`. Coverage weighs negative only beside focus: together they
/// say that a sentence sharing just the passages' common topic with the question is no answer.
const WEIGHTS: [f32; 10] = [
    15.048, -7.368, 7.386, 5.198, 2.562, 2.044, 5.548, 0.536, 2.778, 4.406,
];
const INTERCEPT: f32 = -28.256;

impl Features {
    pub(super) fn new(
        i: usize,
        candidates: &[Candidate],
        ranked: &[Ranked],
        evidence: &[SentenceEvidence],
        cosines: &[f32],
    ) -> Self {
        let candidate = &candidates[i];
        let neighbours: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.source == candidate.source && c.position.abs_diff(candidate.position) == 1
            })
            .map(|(j, _)| j)
            .collect();
        let best = |values: &dyn Fn(usize) -> f32| {
            neighbours.iter().map(|&j| values(j)).fold(0f32, f32::max)
        };
        Self {
            cosine: cosines[i],
            coverage: evidence[i].coverage,
            focus: evidence[i].focus,
            in_order: evidence[i].in_order,
            bigrams: evidence[i].bigrams,
            kind_match: f32::from(u8::from(evidence[i].kind_match)),
            neighbour_cosine: best(&|j| cosines[j]),
            neighbour_focus: best(&|j| evidence[j].focus),
            passage_rank: 1.0 / (1 + candidate.source) as f32,
            passage_score: ranked[candidate.source].score,
        }
    }

    /// The features as the model reads them.
    pub fn values(&self) -> [f32; 10] {
        [
            self.cosine,
            self.coverage,
            self.focus,
            self.in_order,
            self.bigrams,
            self.kind_match,
            self.neighbour_cosine,
            self.neighbour_focus,
            self.passage_rank,
            self.passage_score,
        ]
    }

    /// Probability that the sentence answers the question.
    pub fn confidence(&self) -> f32 {
        let z = INTERCEPT + dot(&WEIGHTS, &self.values());
        1.0 / (1.0 + (-z).exp())
    }
}

/// Indices of the sentences to answer with, best first: the best, then, while there is room,
/// each next one confident enough and not saying what a chosen one says.
pub(super) fn choose(scored: &[super::Scored], vectors: &[&[f32]], max: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.sort_by(|&a, &b| scored[b].score.total_cmp(&scored[a].score));
    let mut chosen: Vec<usize> = Vec::with_capacity(max);
    for i in order {
        if chosen.len() == max.max(1) {
            break;
        }
        if let Some(&best) = chosen.first() {
            let close_enough = scored[i].score >= scored[best].score * EXTRA_SHARE;
            let repeats = chosen
                .iter()
                .any(|&j| dot(vectors[i], vectors[j]) >= SAME_MEANING);
            if !close_enough {
                break;
            }
            if repeats {
                continue;
            }
        }
        chosen.push(i);
    }
    chosen
}
