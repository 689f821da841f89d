//! The answer use case: a question → the passages that answer it (the search use case) → the
//! sentences that say the answer, each cited by the passage it quotes, or a refusal.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::search::SearchHit;
use super::{blocking, normalise_query, SearchRequest, Service, ServiceError};
use crate::answer::{self, AnswerOptions, Extractor, MAX_SENTENCES};
use crate::corpus::{is_cjk_letter, Passage};
use crate::embedding::Role;
use crate::index::Filter;
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
}

impl AnswerRequest {
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            mode: AnswerMode::Auto,
            top_k: None,
            filter: Filter::default(),
            max_sentences: None,
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
    pub took: Duration,
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
        let started = Instant::now();
        let question = normalise_query(&request.question);
        if question.is_empty() {
            return Err(ServiceError::EmptyQuestion);
        }
        let mode = match request.mode {
            AnswerMode::Generative => return Err(ServiceError::NoLlmConfigured),
            AnswerMode::Auto | AnswerMode::Extractive => AnswerMode::Extractive,
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
        let mut search = self
            .search(
                collection,
                SearchRequest {
                    top_k: request.top_k,
                    filter: request.filter,
                    ..SearchRequest::new(question.clone())
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
        let (extracted, ranked, question) = blocking(move || {
            let vectors: Vec<&[f32]> = vectors.iter().map(|v| &v[..]).collect();
            let extracted = Extractor::new(analyzer).extract(
                &*reader,
                &question,
                &question_vector,
                &ranked,
                &candidates,
                &vectors,
                &options,
            );
            (extracted, ranked, question)
        })
        .await?;
        let mut outcome = AnswerOutcome {
            found: extracted.found,
            text: String::new(),
            sentences: Vec::new(),
            citations: Vec::new(),
            mode,
            passages: search.results,
            took: Duration::ZERO,
            question,
        };
        if extracted.found {
            for sentence in extracted.sentences {
                let source = sentence.candidate.source;
                let passage = &ranked[source].passage;
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
        } else {
            outcome.text = self.no_answer_text(&outcome.question);
        }
        outcome.took = started.elapsed();
        metrics::histogram!("wenda_answer_duration_seconds", "mode" => mode.as_str())
            .record(outcome.took.as_secs_f64());
        Ok(outcome)
    }

    /// The refusal: the server's own text, or the default in the question's language.
    fn no_answer_text(&self, question: &str) -> String {
        self.no_answer_text.clone().unwrap_or_else(|| {
            if question.chars().any(is_cjk_letter) {
                NO_ANSWER_ZH
            } else {
                NO_ANSWER_EN
            }
            .to_owned()
        })
    }

    /// The vectors of the candidates' texts, embedding (as passages) only those not cached.
    async fn sentence_vectors(
        &self,
        candidates: &[answer::Candidate],
        ranked: &[Ranked],
    ) -> Result<Vec<Arc<[f32]>>, ServiceError> {
        let texts: Vec<&str> = candidates.iter().map(|c| c.text(ranked)).collect();
        let mut vectors: Vec<Option<Arc<[f32]>>> =
            texts.iter().map(|t| self.sentences.get(t)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
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
        Ok(vectors.into_iter().flatten().collect())
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
