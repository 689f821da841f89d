//! Features → one confidence per sentence, and the sentences an answer keeps.
//!
//! The confidence is a logistic [`Model`] over [`Features`], one for questions in the passages'
//! script and one for questions in another (English over Chinese). Their weights were fitted on
//! half of CMRC 2018 dev (the even-numbered questions, in Chinese or in English translation,
//! each against its 3 best passages, labelled by whether a sentence contains the gold answer)
//! and checked on the other half (`wenda eval --answers` prints both); they are few, which is
//! what keeps a model from learning that one set by heart.

use super::{dot, Candidate, SentenceEvidence};
use crate::corpus::is_mostly_cjk;
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
    /// The best cosine of the sentences just before and after it in its passage (its own when
    /// it has none).
    pub neighbour_cosine: f32,
    /// The best focus of those neighbours.
    pub neighbour_focus: f32,
    /// 1 for the best passage, 1/2 for the second, …
    pub passage_rank: f32,
    /// The passage's retrieval score.
    pub passage_score: f32,
}

/// A logistic model of whether a sentence answers: σ(weights · features + intercept), the
/// weights in the order of [`Features::values`]. Printed by `scripts/fit-answer-model.py`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    weights: [f32; 10],
    intercept: f32,
}

impl Model {
    /// For a question written in the passages' script: every feature counts. Coverage weighs
    /// negative only beside focus: together they say that a sentence sharing just the
    /// passages' common topic with the question is no answer.
    pub const MONOLINGUAL: Model = Model {
        weights: [
            15.098, -7.326, 7.371, 5.193, 2.535, 2.011, 6.752, 0.370, 2.787, 4.267,
        ],
        intercept: -29.258,
    };

    /// For a question in another script than the passages (English over Chinese): its words
    /// cannot be found in them, so only meaning, the kind of answer and retrieval count
    /// (`--only cosine,kind_match,neighbour_cosine,passage_rank,passage_score`). Fitted on
    /// English translations of half of the CMRC questions (`eval/cmrc2018_dev_en.jsonl`).
    pub const CROSS_LINGUAL: Model = Model {
        weights: [32.359, 0.0, 0.0, 0.0, 0.0, 1.281, 4.206, 0.0, 1.124, 4.428],
        intercept: -34.513,
    };

    /// The model for `question` over `sentences`: cross-lingual when most of the question's
    /// letters are CJK and most of the sentences' are not, or the other way round.
    pub fn for_question<'s>(question: &str, sentences: impl IntoIterator<Item = &'s str>) -> Self {
        let sentences_cjk = is_mostly_cjk(sentences);
        let question_cjk = is_mostly_cjk([question]);
        if question_cjk == sentences_cjk {
            Self::MONOLINGUAL
        } else {
            Self::CROSS_LINGUAL
        }
    }

    /// Probability that a sentence with these features answers the question.
    pub fn confidence(&self, features: &Features) -> f32 {
        let z = self.intercept + dot(&self.weights, &features.values());
        1.0 / (1.0 + (-z).exp())
    }
}

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
        // A sentence alone in its passage is its own context: scoring it as if it had
        // unrelated neighbours would make short passages look like worse answers than long ones.
        let context = if neighbours.is_empty() {
            vec![i]
        } else {
            neighbours
        };
        let best =
            |values: &dyn Fn(usize) -> f32| context.iter().map(|&j| values(j)).fold(0f32, f32::max);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_in_another_script_than_the_passages_gets_the_cross_lingual_model() {
        let chinese = ["“模速空间”位于徐汇区，已入驻企业100余家。", "AI大模型产业"];
        let english = ["The incubator is in Xuhui district.", "It hosts 100 firms."];
        for (question, sentences, model) in [
            ("模速空间位于哪个区？", chinese, Model::MONOLINGUAL),
            (
                "Which district hosts the AI incubator?",
                chinese,
                Model::CROSS_LINGUAL,
            ),
            (
                "Which district hosts the incubator?",
                english,
                Model::MONOLINGUAL,
            ),
            ("孵化器在哪个区？", english, Model::CROSS_LINGUAL),
            ("GPT-4和AI模型在哪里？", chinese, Model::MONOLINGUAL),
        ] {
            assert_eq!(
                Model::for_question(question, sentences),
                model,
                "{question}"
            );
        }
    }

    #[test]
    fn confidence_grows_with_closeness_in_meaning_and_shared_rare_words() {
        let weak = Features {
            cosine: 0.80,
            neighbour_cosine: 0.80,
            passage_rank: 1.0,
            passage_score: 0.6,
            ..Features::default()
        };
        let strong = Features {
            cosine: 0.93,
            focus: 0.6,
            coverage: 0.6,
            in_order: 0.6,
            kind_match: 1.0,
            ..weak
        };
        for model in [Model::MONOLINGUAL, Model::CROSS_LINGUAL] {
            let (weak, strong) = (model.confidence(&weak), model.confidence(&strong));
            assert!((0.0..DEFAULT_MIN_CONFIDENCE).contains(&weak), "{weak}");
            assert!(strong > DEFAULT_MIN_CONFIDENCE && strong < 1.0, "{strong}");
        }
    }
}
