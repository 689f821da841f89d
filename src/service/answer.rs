//! The answer use case: a question → the passages that answer it (the search use case) → the
//! sentences that say the answer, each cited by the passage it quotes, or a refusal.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::search::SearchHit;
use super::{blocking, normalise_query, SearchRequest, Service, ServiceError};
use crate::answer::generate::is_chinese;
use crate::answer::{self, AnswerOptions, Extractor, MAX_SENTENCES};
use crate::corpus::{is_cjk_letter, Passage};
use crate::embedding::{Role, TextKey};
use crate::index::Filter;
use crate::llm::{ChatMessage, TokenUsage};
use crate::search::Ranked;

/// What the refusal says to a Chinese question when the server was given no text of its own.
pub const NO_ANSWER_ZH: &str = "知识库中没有找到这个问题的答案。";
/// What it says to any other question.
pub const NO_ANSWER_EN: &str = "The documents do not answer this question.";

/// Sentence vectors kept for the next questions over the same passages.
const CACHED_SENTENCES: usize = 50_000;

/// How the answer is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AnswerMode {
    /// Generative when an LLM is configured, extractive otherwise.
    #[default]
    Auto,
    /// Sentences quoted from the passages.
    Extractive,
    /// Written by an LLM from the passages.
    Generative,
}

impl AnswerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Extractive => "extractive",
            Self::Generative => "generative",
        }
    }
}

/// A question to answer from a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRequest {
    pub question: String,
    pub mode: AnswerMode,
    /// Passages the answer is drawn from, 1 to 100 (5 when absent).
    pub top_k: Option<usize>,
    pub filter: Filter,
    /// Most sentences in an extractive answer, 1 to [`MAX_SENTENCES`].
    pub max_sentences: Option<usize>,
    /// The conversation before the question, oldest first: a follow-up is understood in it.
    pub conversation: Vec<ChatMessage>,
}

impl AnswerRequest {
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            mode: AnswerMode::Auto,
            top_k: None,
            filter: Filter::default(),
            max_sentences: None,
            conversation: Vec::new(),
        }
    }
}

/// Why an LLM stopped writing an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It finished.
    Stop,
    /// It ran into its token limit (`--llm-max-tokens`): the answer is cut short.
    Length,
}

impl Finish {
    /// As OpenAI's `finish_reason` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// A passage the answer quotes, numbered as its `[n]` markers are.
#[derive(Debug, Clone)]
pub struct Citation {
    /// 1-based, in order of first use in the answer.
    pub index: usize,
    pub passage: Arc<Passage>,
    /// The sentence quoted, exactly as in the passage text.
    pub quote: String,
    /// Its code-point offsets in the passage text.
    pub quote_span: Range<usize>,
}

/// A sentence of the answer.
#[derive(Debug, Clone)]
pub struct AnsweredSentence {
    pub text: String,
    /// Indices of the citations it rests on.
    pub citations: Vec<usize>,
    /// Confidence that it answers the question, 0 to 1.
    pub score: f32,
}

/// The answer to an [`AnswerRequest`].
#[derive(Debug, Clone)]
pub struct AnswerOutcome {
    pub question: String,
    /// How it was made: never `Auto`.
    pub mode: AnswerMode,
    /// Whether the passages answer the question; when not, `text` is the refusal.
    pub found: bool,
    /// The answer with its `[n]` markers.
    pub text: String,
    /// Best first.
    pub sentences: Vec<AnsweredSentence>,
    pub citations: Vec<Citation>,
    /// The search results the answer was drawn from.
    pub passages: Vec<SearchHit>,
    /// The question searched for, when a follow-up was made to stand alone.
    pub standalone_question: Option<String>,
    /// Tokens the LLM counted, for generative answers.
    pub usage: Option<TokenUsage>,
    /// Why the LLM stopped writing, for answers it wrote.
    pub finish: Option<Finish>,
    pub took: Duration,
}

/// A passage an answer may cite, numbered as its `[n]` markers are.
#[derive(Debug, Clone)]
pub struct Source {
    pub index: usize,
    pub passage: Arc<Passage>,
}

/// A step of a streamed answer (see [`Service::answer_stream`]).
#[derive(Debug)]
pub enum AnswerEvent {
    /// The passages the answer may cite: for a generative answer, every passage the LLM was
    /// given; for an extractive one, those quoted. Empty for a refusal.
    Sources(Vec<Source>),
    /// The next piece of the answer's text.
    Delta(String),
    /// The whole answer, whose text is the deltas joined, markers attached when the LLM wrote
    /// none.
    Done(Box<AnswerOutcome>),
    Failed(ServiceError),
}

/// Sentence vectors by text, kept between questions. Two generations: when the newer fills
/// up, the older is dropped, so what recent questions used stays without tracking every use.
#[derive(Default)]
pub(super) struct SentenceCache {
    generations: Mutex<[HashMap<String, Arc<[f32]>>; 2]>,
}

impl SentenceCache {
    fn get(&self, text: &str) -> Option<Arc<[f32]>> {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(vector) = generations[0].get(text) {
            return Some(Arc::clone(vector));
        }
        let vector = generations[1].get(text).cloned()?;
        Self::insert(&mut generations, text.to_owned(), Arc::clone(&vector));
        Some(vector)
    }

    fn put(&self, text: String, vector: Arc<[f32]>) {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        Self::insert(&mut generations, text, vector);
    }

    fn insert(
        generations: &mut [HashMap<String, Arc<[f32]>>; 2],
        text: String,
        vector: Arc<[f32]>,
    ) {
        if generations[0].len() >= CACHED_SENTENCES / 2 {
            generations[1] = std::mem::take(&mut generations[0]);
        }
        generations[0].insert(text, vector);
    }
}

impl Service {
    /// Answers `request.question` from the passages of `collection`.
    pub async fn answer(
        &self,
        collection: &str,
        request: AnswerRequest,
    ) -> Result<AnswerOutcome, ServiceError> {
        self.answer_with(collection, request, None).await
    }

    /// Answers as [`answer`](Self::answer) does, as events: [`AnswerEvent::Sources`] first,
    /// then the text in [`AnswerEvent::Delta`]s as it is written, then
    /// [`AnswerEvent::Done`]. A failure is the last event, [`AnswerEvent::Failed`]; when it
    /// comes first, nothing was answered. Dropping the receiver stops the work, the LLM's
    /// generation included.
    pub fn answer_stream(
        self: &Arc<Self>,
        collection: String,
        request: AnswerRequest,
    ) -> mpsc::Receiver<AnswerEvent> {
        let (events, receiver) = mpsc::channel(64);
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let last = match service
                .answer_with(&collection, request, Some(events.clone()))
                .await
            {
                Ok(outcome) => AnswerEvent::Done(Box::new(outcome)),
                Err(error) => AnswerEvent::Failed(error),
            };
            let _ = events.send(last).await;
        });
        receiver
    }

    async fn answer_with(
        &self,
        collection: &str,
        request: AnswerRequest,
        events: Option<Events>,
    ) -> Result<AnswerOutcome, ServiceError> {
        let started = Instant::now();
        let question = normalise_query(&request.question);
        if question.is_empty() {
            return Err(ServiceError::EmptyQuestion);
        }
        let llm = match (request.mode, &self.llm) {
            (AnswerMode::Extractive, _) | (AnswerMode::Auto, None) => None,
            (_, Some(llm)) => Some(Arc::clone(llm)),
            (AnswerMode::Generative, None) => return Err(ServiceError::NoLlmConfigured),
        };
        let max_sentences = request
            .max_sentences
            .unwrap_or(answer::DEFAULT_MAX_SENTENCES);
        if !(1..=MAX_SENTENCES).contains(&max_sentences) {
            return Err(ServiceError::Invalid(format!(
                "max_sentences must be between 1 and {MAX_SENTENCES}, got {max_sentences}"
            )));
        }
        let reader = self.reader(collection)?;
        let standalone = self
            .standalone_question(collection, &question, &request, llm.as_ref())
            .await?;
        let searched = standalone.as_deref().unwrap_or(&question).to_owned();
        let mut search = self
            .search(
                collection,
                SearchRequest {
                    top_k: request.top_k,
                    filter: request.filter,
                    ..SearchRequest::new(searched.clone())
                },
            )
            .await?;
        let question_vector = search.query_vector.take().ok_or_else(|| {
            ServiceError::Internal("a hybrid search returned no query vector".into())
        })?;
        let ranked: Vec<Ranked> = search.results.iter().map(|h| h.ranked.clone()).collect();
        let candidates = answer::candidates(&ranked);
        let vectors = self.sentence_vectors(&candidates, &ranked).await?;
        let analyzer = Arc::clone(&self.analyzer);
        let options = AnswerOptions {
            max_sentences,
            ..AnswerOptions::default()
        };
        let evidence = Evidence {
            ranked,
            candidates,
            vectors,
        };
        let (extracted, evidence) = blocking(move || {
            let vectors: Vec<&[f32]> = evidence.vectors.iter().map(|v| &v[..]).collect();
            let extracted = Extractor::new(analyzer).extract(
                &*reader,
                &searched,
                &question_vector,
                &evidence.ranked,
                &evidence.candidates,
                &vectors,
                &options,
            );
            (extracted, evidence)
        })
        .await?;
        let mut outcome = AnswerOutcome {
            found: extracted.found,
            text: String::new(),
            sentences: Vec::new(),
            citations: Vec::new(),
            mode: if llm.is_some() {
                AnswerMode::Generative
            } else {
                AnswerMode::Extractive
            },
            passages: search.results,
            standalone_question: standalone,
            usage: None,
            finish: None,
            took: Duration::ZERO,
            question,
        };
        let refusal = self.no_answer_text(&outcome.question);
        match llm {
            // What retrieval says the documents do not answer is refused without asking.
            _ if !extracted.found => {
                outcome.text = refusal;
                send(&events, AnswerEvent::Sources(Vec::new())).await;
                send(&events, AnswerEvent::Delta(outcome.text.clone())).await;
            }
            None => {
                quote(&mut outcome, extracted, &evidence.ranked);
                let sources = outcome
                    .citations
                    .iter()
                    .map(|c| Source {
                        index: c.index,
                        passage: Arc::clone(&c.passage),
                    })
                    .collect();
                send(&events, AnswerEvent::Sources(sources)).await;
                send(&events, AnswerEvent::Delta(outcome.text.clone())).await;
            }
            Some(llm) => {
                self.generate(&llm, &mut outcome, &evidence, &refusal, events)
                    .await?
            }
        }
        outcome.took = started.elapsed();
        metrics::histogram!("wenda_answer_duration_seconds", "mode" => outcome.mode.as_str())
            .record(outcome.took.as_secs_f64());
        Ok(outcome)
    }

    /// The refusal: the server's own text, or the default in the question's language.
    fn no_answer_text(&self, question: &str) -> String {
        self.no_answer_text.clone().unwrap_or_else(|| {
            if is_chinese(question) {
                NO_ANSWER_ZH
            } else {
                NO_ANSWER_EN
            }
            .to_owned()
        })
    }

    /// The vectors of the candidates' texts: kept in memory from earlier questions, read from
    /// the store (made when the passages were written), or else embedded (as passages) now.
    async fn sentence_vectors(
        &self,
        candidates: &[answer::Candidate],
        ranked: &[Ranked],
    ) -> Result<Vec<Arc<[f32]>>, ServiceError> {
        let texts: Vec<&str> = candidates.iter().map(|c| c.text(ranked)).collect();
        let mut vectors: Vec<Option<Arc<[f32]>>> =
            texts.iter().map(|t| self.sentences.get(t)).collect();
        let unread: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        if !unread.is_empty() {
            let keys: Vec<TextKey> = ranked
                .iter()
                .map(|hit| TextKey::of(&hit.passage.embedding_text()))
                .collect();
            let wanted: Vec<TextKey> = unread
                .iter()
                .map(|&i| keys[candidates[i].source])
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let store = Arc::clone(&self.store);
            let stored = blocking(move || store.sentence_vectors(&wanted)).await??;
            for i in unread {
                let candidate = &candidates[i];
                let Some(passage) = stored.get(&keys[candidate.source]) else {
                    continue;
                };
                // Only a vector made from this very sentence: the text may be split otherwise
                // now than when it was stored.
                if passage.spans.get(candidate.position) == Some(&candidate.span.chars) {
                    let vector: Arc<[f32]> = passage.vectors[candidate.position].as_slice().into();
                    self.sentences.put(texts[i].to_owned(), Arc::clone(&vector));
                    vectors[i] = Some(vector);
                }
            }
        }
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        if !missing.is_empty() {
            let embedded = self
                .queue
                .embed_all(
                    Role::Passage,
                    missing.iter().map(|&i| texts[i].to_owned()).collect(),
                )
                .await?;
            for (i, embedding) in missing.into_iter().zip(embedded) {
                let vector: Arc<[f32]> = embedding.vector.into();
                self.sentences.put(texts[i].to_owned(), Arc::clone(&vector));
                vectors[i] = Some(vector);
            }
        }
        Ok(vectors.into_iter().flatten().collect())
    }
}

/// The passages an answer is drawn from, their sentences and the sentences' vectors.
pub(super) struct Evidence {
    pub ranked: Vec<Ranked>,
    pub candidates: Vec<answer::Candidate>,
    pub vectors: Vec<Arc<[f32]>>,
}

/// Where a streamed answer's events go.
pub(super) type Events = mpsc::Sender<AnswerEvent>;

/// Hands `event` to the reader of a streamed answer, if there is one and it is still there.
pub(super) async fn send(events: &Option<Events>, event: AnswerEvent) {
    if let Some(events) = events {
        let _ = events.send(event).await;
    }
}

/// Makes `outcome` the extractive answer: the chosen sentences, each cited.
fn quote(outcome: &mut AnswerOutcome, extracted: answer::Extracted, ranked: &[Ranked]) {
    for sentence in extracted.sentences {
        let passage = &ranked[sentence.candidate.source].passage;
        let index = outcome.citations.len() + 1;
        outcome.citations.push(Citation {
            index,
            passage: Arc::clone(passage),
            quote: sentence.text.clone(),
            quote_span: sentence.candidate.span.chars.clone(),
        });
        join_sentence(&mut outcome.text, &sentence.text, index);
        outcome.sentences.push(AnsweredSentence {
            text: sentence.text,
            citations: vec![index],
            score: sentence.score,
        });
    }
}

/// Appends a sentence and its marker. A space separates it from the previous one only when
/// the letters on either side are not CJK: Chinese sentences follow each other directly (even
/// when one opens with a quotation mark), Latin ones after a space.
fn join_sentence(answer: &mut String, sentence: &str, index: usize) {
    let previous = answer
        .rfind('[')
        .map_or(answer.as_str(), |marker| &answer[..marker]);
    let before = previous.chars().rev().find(|c| c.is_alphanumeric());
    let after = sentence.chars().find(|c| c.is_alphanumeric());
    if let (Some(before), Some(after)) = (before, after) {
        if !is_cjk_letter(before) && !is_cjk_letter(after) {
            answer.push(' ');
        }
    }
    answer.push_str(sentence);
    answer.push_str(&format!("[{index}]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_join_without_spaces_in_chinese_and_with_one_in_english() {
        let mut zh = String::new();
        join_sentence(&mut zh, "上海GDP增长5.2%。", 1);
        join_sentence(&mut zh, "北京也增长了。", 2);
        join_sentence(&mut zh, "“模速空间”已入驻企业100余家。", 3);
        join_sentence(&mut zh, "GDP也增长了。", 4);
        assert_eq!(
            zh,
            "上海GDP增长5.2%。[1]北京也增长了。[2]“模速空间”已入驻企业100余家。[3]GDP也增长了。[4]"
        );
        let mut en = String::new();
        join_sentence(&mut en, "Shanghai grew.", 1);
        join_sentence(&mut en, "Beijing too.", 2);
        join_sentence(&mut en, "“Quoted” 3.5%.", 3);
        assert_eq!(en, "Shanghai grew.[1] Beijing too.[2] “Quoted” 3.5%.[3]");
    }

    #[test]
    fn the_cache_keeps_recent_sentences_and_drops_old_ones() {
        let cache = SentenceCache::default();
        cache.put("a".into(), Arc::from(vec![1.0]));
        for i in 0..CACHED_SENTENCES / 2 {
            cache.put(format!("filler {i}"), Arc::from(vec![0.0]));
        }
        assert!(cache.get("a").is_some(), "one generation back is kept");
        for i in 0..CACHED_SENTENCES {
            cache.put(format!("newer {i}"), Arc::from(vec![0.0]));
        }
        assert!(cache.get("filler 0").is_none());
    }
}
