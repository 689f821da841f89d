//! Answers: the request, and the answer with its sentences, citations and passages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::llm::{ChatMessage, Speaker, TokenUsage};
use crate::service::{self, AnswerOutcome, AnswerRequest as DomainAnswer, Citation, Source};

use super::chat::MAX_MESSAGES;
use super::filters::FilterBody;
use super::milliseconds;
use super::search::{object, CitationView, DocumentRef, ScoredPassage, SharedMetadata};

/// How the answer is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnswerMode {
    /// `generative` when the server has an LLM, else `extractive`.
    #[default]
    Auto,
    /// Sentences quoted from the passages, with no LLM.
    Extractive,
    /// Written by the server's LLM from the passages (400 `no_llm_configured` without one).
    Generative,
}

impl From<AnswerMode> for service::AnswerMode {
    fn from(mode: AnswerMode) -> Self {
        match mode {
            AnswerMode::Auto => Self::Auto,
            AnswerMode::Extractive => Self::Extractive,
            AnswerMode::Generative => Self::Generative,
        }
    }
}

impl From<service::AnswerMode> for AnswerMode {
    fn from(mode: service::AnswerMode) -> Self {
        match mode {
            service::AnswerMode::Auto => Self::Auto,
            service::AnswerMode::Extractive => Self::Extractive,
            service::AnswerMode::Generative => Self::Generative,
        }
    }
}

/// `POST /v1/answer` body. Only `question` is required; unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The question, in any language the model knows.
    #[schema(example = "模速空间位于上海哪个区？", min_length = 1, pattern = r"\S")]
    pub question: String,
    #[serde(default)]
    pub mode: AnswerMode,
    /// Passages the answer is drawn from, 1 to 100 (default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100, example = 5)]
    pub top_k: Option<usize>,
    /// Narrows the passages considered, as in a search.
    #[serde(default, deserialize_with = "object")]
    pub filter: FilterBody,
    /// Most sentences of an extractive answer, the best included: 1 to 10 (default 3).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10, example = 3)]
    pub max_sentences: Option<usize>,
    /// Answer as Server-Sent Events: `sources`, then `delta`s of text, then `done` with this
    /// answer object (or `error`).
    #[serde(default)]
    pub stream: bool,
    /// The conversation before the question, oldest first, in which a follow-up ("那上海呢？")
    /// is understood: the LLM rewrites it to stand alone, or, without one, a short follow-up is
    /// searched together with the previous question.
    #[serde(default)]
    pub conversation: Vec<Turn>,
}

/// A message of the conversation before a question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    pub role: TurnRole,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TurnRole {
    User,
    Assistant,
}

impl AnswerRequest {
    /// The service's request; the caller reads `stream` first.
    pub fn into_domain(self) -> Result<DomainAnswer, String> {
        if self.conversation.len() >= MAX_MESSAGES {
            return Err(format!(
                "conversation: at most {} messages are accepted, got {}",
                MAX_MESSAGES - 1,
                self.conversation.len()
            ));
        }
        Ok(DomainAnswer {
            question: self.question,
            mode: self.mode.into(),
            top_k: self.top_k,
            filter: self.filter.into_domain()?,
            max_sentences: self.max_sentences,
            conversation: self
                .conversation
                .into_iter()
                .map(|turn| {
                    let speaker = match turn.role {
                        TurnRole::User => Speaker::User,
                        TurnRole::Assistant => Speaker::Assistant,
                    };
                    ChatMessage::new(speaker, turn.content)
                })
                .collect(),
        })
    }
}

/// A passage an answer may cite, as numbered in it (the `sources` event of a stream).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourceView {
    pub index: usize,
    /// The passage's id (see `/v1/passages/{id}`).
    pub id: String,
    pub document: DocumentRef,
    pub citation: CitationView,
}

impl From<&Source> for SourceView {
    fn from(source: &Source) -> Self {
        Self {
            index: source.index,
            id: source.passage.id.to_string(),
            document: (&*source.passage).into(),
            citation: (&source.passage.citation).into(),
        }
    }
}

/// The `sources` event of a streamed answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourcesEvent {
    pub sources: Vec<SourceView>,
}

/// A `delta` event of a streamed answer: the next piece of text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeltaEvent {
    pub text: String,
}

/// Tokens the LLM counted for a generative answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct TokenUsageView {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl From<TokenUsage> for TokenUsageView {
    fn from(usage: TokenUsage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        }
    }
}

/// A sentence of the answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnswerSentenceView {
    /// Extractive: at most 200 characters, exactly as in the cited passage. Generative: a
    /// sentence of the LLM's answer, without its markers.
    pub text: String,
    /// The `index` of each citation it rests on.
    pub citations: Vec<usize>,
    /// Extractive: confidence that it answers the question, 0 to 1. Generative: cosine
    /// similarity to the closest sentence it cites (0 when it cites none).
    pub score: f32,
}

/// A passage the answer quotes; `[n]` in the answer refers to the citation with `index` n.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnswerCitation {
    pub index: usize,
    /// The passage's id (see `/v1/passages/{id}`).
    pub id: String,
    /// The sentence quoted, exactly as in the passage text.
    pub quote: String,
    /// Where `quote` is in the passage text: `[start, end)` in Unicode code points, as
    /// `highlights` are.
    #[schema(value_type = Vec<usize>, example = json!([12, 40]))]
    pub quote_span: [usize; 2],
    pub document: DocumentRef,
    pub citation: CitationView,
}

impl From<&Citation> for AnswerCitation {
    fn from(cited: &Citation) -> Self {
        Self {
            index: cited.index,
            id: cited.passage.id.to_string(),
            quote: cited.quote.clone(),
            quote_span: [cited.quote_span.start, cited.quote_span.end],
            document: (&*cited.passage).into(),
            citation: (&cited.passage.citation).into(),
        }
    }
}

/// The answer to a question, with what it rests on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnswerResponse {
    /// The question, as received.
    pub question: String,
    /// The question searched for, when a follow-up was rewritten to stand alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone_question: Option<String>,
    /// How the answer was made: `extractive` or `generative`.
    pub mode: AnswerMode,
    /// Whether the documents answer the question. When not, `answer` is the refusal text,
    /// `sentences` and `citations` are empty and `passages` still lists what was found.
    pub found: bool,
    /// The answer, each sentence followed by its `[n]` marker.
    pub answer: String,
    /// Best first.
    pub sentences: Vec<AnswerSentenceView>,
    pub citations: Vec<AnswerCitation>,
    /// The search results the answer was drawn from, best first.
    pub passages: Vec<ScoredPassage>,
    /// As in a search answer: the documents' metadata, once per document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub document_metadata: BTreeMap<String, Map<String, Value>>,
    /// Tokens the LLM counted (generative answers whose LLM reports them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsageView>,
    /// Why the LLM stopped writing, for generative answers it wrote: `stop`, or `length` when
    /// it ran into `--llm-max-tokens` and the answer is cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    pub took_ms: f64,
}

impl From<AnswerOutcome> for AnswerResponse {
    fn from(outcome: AnswerOutcome) -> Self {
        let shared = SharedMetadata::of(outcome.passages.iter().map(|hit| &*hit.ranked.passage));
        let passages = outcome
            .passages
            .iter()
            .map(|hit| ScoredPassage::listed(hit, &shared))
            .collect();
        let citations = outcome.citations.iter().map(Into::into).collect();
        Self {
            question: outcome.question,
            standalone_question: outcome.standalone_question,
            mode: outcome.mode.into(),
            found: outcome.found,
            answer: outcome.text,
            sentences: outcome
                .sentences
                .into_iter()
                .map(|s| AnswerSentenceView {
                    text: s.text,
                    citations: s.citations,
                    score: s.score,
                })
                .collect(),
            citations,
            passages,
            document_metadata: shared.into_map(),
            usage: outcome.usage.map(Into::into),
            finish_reason: outcome.finish.map(|f| f.as_str().to_owned()),
            took_ms: milliseconds(outcome.took),
        }
    }
}
