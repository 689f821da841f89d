//! Generative answers: the LLM writes the answer from the numbered passages, its `[n]` markers
//! are checked (and attached when it wrote none), and each cited passage is quoted by the
//! sentence closest to what the answer says of it. A follow-up question is first made to
//! stand alone.

use std::collections::HashMap;
use std::sync::Arc;

use super::answer::{send, Events, Evidence};
use super::{blocking, AnswerEvent, AnswerOutcome, AnsweredSentence, Citation, SearchRequest};
use super::{AnswerRequest, Finish, Service, ServiceError, Source};
use crate::answer::generate::{
    answer_prompt, cited_by_sentence, condense_prompt, condensed_question, is_short_follow_up,
    without_markers, MarkerFilter,
};
use crate::answer::sentences;
use crate::embedding::Role;
use crate::llm::{Completion, LlmClient, LlmError, Speaker};

/// Least cosine between a sentence of a generated answer and a passage sentence for the
/// passage to be cited when the LLM cited nothing. Measured with e5-small: restatements of a
/// passage's fact 0.95–0.97, unrelated Chinese sentences 0.83 (e5 packs one language's
/// sentences close together). An English restatement of a Chinese sentence scores about 0.80,
/// so answers in another language than the documents are rarely attached: better no citation
/// than a wrong one.
const ATTACH_MIN_COSINE: f32 = 0.88;

/// Most tokens of a condensed question.
const CONDENSED_MAX_TOKENS: u32 = 128;

impl Service {
    /// The question to search for when `question` follows a conversation and does not stand
    /// alone: rewritten by the LLM when there is one, else joined to the previous question
    /// when it is a short follow-up. `None` when the question is searched as it is.
    pub(super) async fn standalone_question(
        &self,
        collection: &str,
        question: &str,
        request: &AnswerRequest,
        llm: Option<&Arc<LlmClient>>,
    ) -> Result<Option<String>, ServiceError> {
        let Some(previous) = request
            .conversation
            .iter()
            .rev()
            .find(|m| m.speaker == Speaker::User)
        else {
            return Ok(None);
        };
        let joined = format!("{} {question}", previous.content.trim());
        let Some(llm) = llm else {
            return Ok(is_short_follow_up(question).then_some(joined));
        };
        // "Today" for relative dates is the newest date among what the conversation is about.
        let related = self
            .search(
                collection,
                SearchRequest {
                    filter: request.filter.clone(),
                    ..SearchRequest::new(joined)
                },
            )
            .await?;
        let today = related
            .results
            .iter()
            .filter_map(|hit| hit.ranked.passage.article.date.as_ref()?.iso.clone())
            .max();
        let messages = condense_prompt(&request.conversation, question, today.as_deref());
        let llm = Arc::clone(llm);
        let completion = blocking(move || {
            called(
                "condense",
                llm.complete(&messages, Some(CONDENSED_MAX_TOKENS), None),
            )
        })
        .await??;
        Ok(condensed_question(&completion.text).filter(|q| q != question))
    }

    /// Makes `outcome` the LLM's answer from `outcome.passages`, streaming its text to
    /// `events`.
    pub(super) async fn generate(
        &self,
        llm: &Arc<LlmClient>,
        outcome: &mut AnswerOutcome,
        evidence: &Evidence,
        refusal: &str,
        events: Option<Events>,
    ) -> Result<(), ServiceError> {
        let sources: Vec<Source> = outcome
            .passages
            .iter()
            .enumerate()
            .map(|(i, hit)| Source {
                index: i + 1,
                passage: Arc::clone(&hit.ranked.passage),
            })
            .collect();
        send(&events, AnswerEvent::Sources(sources.clone())).await;
        let passages: Vec<_> = sources.iter().map(|s| &*s.passage).collect();
        let asked = outcome
            .standalone_question
            .as_deref()
            .unwrap_or(&outcome.question);
        let messages = answer_prompt(asked, &passages, refusal);
        let llm = Arc::clone(llm);
        let count = sources.len();
        let (completion, text, cited) = blocking(move || {
            let mut filter = MarkerFilter::new(count);
            let mut text = String::new();
            let result = {
                let mut on_delta = |piece: &str| {
                    let shown = filter.push(piece);
                    text.push_str(&shown);
                    match &events {
                        Some(events) if !shown.is_empty() => {
                            events.blocking_send(AnswerEvent::Delta(shown)).is_ok()
                        }
                        _ => true,
                    }
                };
                let streaming = events.is_some();
                llm.complete(
                    &messages,
                    None,
                    streaming.then_some(&mut on_delta as &mut dyn FnMut(&str) -> bool),
                )
            };
            let completion = called("answer", result)?;
            if events.is_none() {
                text = filter.push(&completion.text);
            }
            let rest = filter.finish();
            text.push_str(&rest);
            if let Some(events) = events.as_ref().filter(|_| !rest.is_empty()) {
                let _ = events.blocking_send(AnswerEvent::Delta(rest));
            }
            Ok::<_, ServiceError>((completion, text, filter.cited().to_vec()))
        })
        .await??;
        outcome.usage = completion.usage;
        outcome.finish = Some(match completion.finish_reason.as_deref() {
            Some("length") => Finish::Length,
            _ => Finish::Stop,
        });
        let text = text.trim();
        if text.is_empty() || text.contains(refusal.trim_end_matches(['。', '.'])) {
            outcome.found = false;
            outcome.text = refusal.to_owned();
            return Ok(());
        }
        let mut known = HashMap::new();
        outcome.text = if cited.is_empty() {
            self.attach_markers(text, evidence, &mut known).await?
        } else {
            text.to_owned()
        };
        self.quote_cited(outcome, evidence, &mut known).await
    }

    /// `text` with a marker after each sentence that restates a passage sentence closely
    /// enough, naming that passage.
    async fn attach_markers(
        &self,
        text: &str,
        evidence: &Evidence,
        known: &mut HashMap<String, Vec<f32>>,
    ) -> Result<String, ServiceError> {
        let spans = sentences::split(text);
        let texts: Vec<String> = spans.iter().map(|s| s.text(text).to_owned()).collect();
        let vectors = self.embed_texts(&texts, known).await?;
        let mut marked = String::new();
        let mut at = 0;
        for (span, vector) in spans.iter().zip(&vectors) {
            marked.push_str(&text[at..span.bytes.end]);
            at = span.bytes.end;
            if let Some((candidate, cosine)) = closest(evidence, vector, |_| true) {
                if cosine >= ATTACH_MIN_COSINE {
                    let source = evidence.candidates[candidate].source + 1;
                    marked.push_str(&format!("[{source}]"));
                }
            }
        }
        marked.push_str(&text[at..]);
        Ok(marked)
    }

    /// The answer's sentences with the sources they cite, and one citation per cited source:
    /// its sentence closest to what the answer says of it.
    async fn quote_cited(
        &self,
        outcome: &mut AnswerOutcome,
        evidence: &Evidence,
        known: &mut HashMap<String, Vec<f32>>,
    ) -> Result<(), ServiceError> {
        let pieces = cited_by_sentence(&outcome.text);
        let plain: Vec<String> = pieces
            .iter()
            .map(|(range, _)| without_markers(&outcome.text[range.clone()]))
            .collect();
        let vectors = self.embed_texts(&plain, known).await?;
        let mut citations: Vec<(Citation, f32)> = Vec::new();
        for (((_, cited), text), vector) in pieces.iter().zip(plain).zip(&vectors) {
            let mut support = 0f32;
            for &index in cited {
                let Some((candidate, cosine)) =
                    closest(evidence, vector, |c| c.source + 1 == index)
                else {
                    continue;
                };
                support = support.max(cosine);
                let candidate = &evidence.candidates[candidate];
                let passage = &evidence.ranked[candidate.source].passage;
                let citation = Citation {
                    index,
                    passage: Arc::clone(passage),
                    quote: candidate.text(&evidence.ranked).to_owned(),
                    quote_span: candidate.span.chars.clone(),
                };
                match citations.iter_mut().find(|(c, _)| c.index == index) {
                    Some(kept) if kept.1 >= cosine => {}
                    Some(kept) => *kept = (citation, cosine),
                    None => citations.push((citation, cosine)),
                }
            }
            if !text.is_empty() {
                outcome.sentences.push(AnsweredSentence {
                    text,
                    citations: cited.clone(),
                    score: support,
                });
            }
        }
        citations.sort_by_key(|(c, _)| c.index);
        outcome.citations = citations.into_iter().map(|(c, _)| c).collect();
        Ok(())
    }

    /// Vectors of the answer's texts, compared with passage sentences (as queries: e5's form
    /// for symmetric comparison). Texts in `known` are not embedded again: a sentence that
    /// got a marker attached is compared once more when its quote is chosen.
    async fn embed_texts(
        &self,
        texts: &[String],
        known: &mut HashMap<String, Vec<f32>>,
    ) -> Result<Vec<Vec<f32>>, ServiceError> {
        let mut missing: Vec<String> = texts
            .iter()
            .filter(|t| !known.contains_key(*t))
            .cloned()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let embedded = self.queue.embed_all(Role::Query, missing.clone()).await?;
        for (text, embedding) in missing.into_iter().zip(embedded) {
            known.insert(text, embedding.vector);
        }
        Ok(texts.iter().map(|t| known[t].clone()).collect())
    }
}

/// The candidate sentence among those `admitted` closest to `vector`, with its cosine.
fn closest(
    evidence: &Evidence,
    vector: &[f32],
    admitted: impl Fn(&crate::answer::Candidate) -> bool,
) -> Option<(usize, f32)> {
    evidence
        .candidates
        .iter()
        .zip(&evidence.vectors)
        .enumerate()
        .filter(|(_, (candidate, _))| admitted(candidate))
        .map(|(i, (_, v))| (i, v.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Counts a call to the LLM by purpose and outcome, and turns its failure into the service's.
fn called(
    purpose: &'static str,
    result: Result<Completion, LlmError>,
) -> Result<Completion, ServiceError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(LlmError::Unavailable(_)) => "unavailable",
        Err(LlmError::Timeout(_)) => "timeout",
        Err(LlmError::Invalid(_)) => "invalid",
    };
    metrics::counter!("wenda_llm_requests_total", "purpose" => purpose, "outcome" => outcome)
        .increment(1);
    if let Err(error) = &result {
        tracing::warn!(purpose, %error, "the LLM call failed");
    }
    Ok(result?)
}
