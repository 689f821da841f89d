//! Passages → what a write stores: each passage's vector and its sentences' vectors (reused
//! from the store where it has them, embedded otherwise) and its analysed terms.
//!
//! Sentence vectors are made here, at ingest, rather than when a question first needs them:
//! embedding a passage's sentences when it is answered from costs many times a search (253 ms
//! against 15 ms for a CMRC question over five passages), whereas reading them back costs
//! under a millisecond. Ingest pays about the passage's own embedding again, once.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use super::{blocking, Service, ServiceError};
use crate::answer::sentences;
use crate::corpus::Passage;
use crate::embedding::{Embedding, Role, TextKey};
use crate::index::{Analyzer, IndexedPassage};
use crate::store::{SentenceVectors, Store, StoredPassage};

impl Service {
    /// Makes the passages of a write: looks up stored vectors, embeds the rest through the
    /// queue (behind any waiting question) and analyses terms.
    pub(super) async fn prepare(&self, passages: Vec<Passage>) -> Result<Prepared, ServiceError> {
        let store = Arc::clone(&self.store);
        let (passages, lookup) = blocking(move || {
            let lookup = VectorLookup::new(&*store, &passages);
            (passages, lookup)
        })
        .await?;
        let mut lookup = lookup?;
        let embeddings = self
            .queue
            .embed_all(Role::Passage, lookup.missing_texts())
            .await?;
        lookup.fill(embeddings);
        let analyzer = Arc::clone(&self.analyzer);
        blocking(move || lookup.into_prepared(&analyzer, passages)).await
    }
}

/// A passage text whose sentences have no vectors in the store.
struct UnsplitText {
    key: TextKey,
    /// Its sentences' character spans.
    spans: Vec<Range<usize>>,
    /// Where each sentence's text is in [`VectorLookup::sentences`].
    texts: Vec<usize>,
}

/// The vectors of a write's passages and of their sentences: those the store has, and the
/// texts it lacks.
pub(super) struct VectorLookup {
    keys: Vec<TextKey>,
    known: HashMap<TextKey, Vec<f32>>,
    /// Distinct passage texts without a vector, with their keys.
    missing: Vec<(TextKey, String)>,
    /// Passage texts without sentence vectors.
    unsplit: Vec<UnsplitText>,
    /// Distinct sentence texts to embed.
    sentences: Vec<String>,
    new_vectors: Vec<(TextKey, Vec<f32>)>,
    new_sentence_vectors: Vec<(TextKey, SentenceVectors)>,
    reused: usize,
    /// Tokens the model read for the new vectors.
    tokens: u64,
}

impl VectorLookup {
    pub(super) fn new(store: &dyn Store, passages: &[Passage]) -> Result<Self, ServiceError> {
        let texts: Vec<String> = passages
            .iter()
            .map(|p| p.embedding_text().into_owned())
            .collect();
        let keys: Vec<TextKey> = texts.iter().map(|t| TextKey::of(t)).collect();
        let known = store.vectors(&keys)?;
        let split = store.sentence_vectors(&keys)?;
        let mut missing: Vec<(TextKey, String)> = Vec::new();
        let mut unsplit = Vec::new();
        let mut sentences: Vec<String> = Vec::new();
        let mut sentence_index: HashMap<String, usize> = HashMap::new();
        let mut wanted = HashSet::new();
        for ((key, text), passage) in keys.iter().zip(texts).zip(passages) {
            if !wanted.insert(*key) {
                continue;
            }
            if !known.contains_key(key) {
                missing.push((*key, text));
            }
            let spans = sentences::split(&passage.text);
            let current = split.get(key).is_some_and(|stored| {
                stored.spans.len() == spans.len()
                    && stored
                        .spans
                        .iter()
                        .zip(&spans)
                        .all(|(s, span)| *s == span.chars)
            });
            if current {
                continue;
            }
            let texts = spans
                .iter()
                .map(|span| {
                    let text = span.text(&passage.text);
                    *sentence_index.entry(text.to_owned()).or_insert_with(|| {
                        sentences.push(text.to_owned());
                        sentences.len() - 1
                    })
                })
                .collect();
            unsplit.push(UnsplitText {
                key: *key,
                spans: spans.into_iter().map(|span| span.chars).collect(),
                texts,
            });
        }
        let reused = keys.iter().filter(|k| known.contains_key(k)).count();
        Ok(Self {
            keys,
            known,
            missing,
            unsplit,
            sentences,
            new_vectors: Vec::new(),
            new_sentence_vectors: Vec::new(),
            reused,
            tokens: 0,
        })
    }

    /// Passage texts the model must embed.
    pub(super) fn missing_passages(&self) -> usize {
        self.missing.len()
    }

    /// The texts to embed: the passage texts without a vector, then the sentences without one.
    pub(super) fn missing_texts(&self) -> Vec<String> {
        self.missing
            .iter()
            .map(|(_, text)| text.clone())
            .chain(self.sentences.iter().cloned())
            .collect()
    }

    /// Takes the embeddings of [`missing_texts`](Self::missing_texts), in order.
    pub(super) fn fill(&mut self, embeddings: Vec<Embedding>) {
        self.tokens += embeddings.iter().map(|e| e.tokens as u64).sum::<u64>();
        let mut embeddings = embeddings.into_iter();
        for ((key, _), embedding) in self.missing.drain(..).zip(embeddings.by_ref()) {
            self.known.insert(key, embedding.vector.clone());
            self.new_vectors.push((key, embedding.vector));
        }
        let sentence_vectors: Vec<Vec<f32>> = embeddings.map(|e| e.vector).collect();
        for text in self.unsplit.drain(..) {
            let vectors = text
                .texts
                .iter()
                .map(|&i| sentence_vectors[i].clone())
                .collect();
            self.new_sentence_vectors.push((
                text.key,
                SentenceVectors {
                    spans: text.spans,
                    vectors,
                },
            ));
        }
    }

    /// Pairs each passage with its key, terms and vector.
    pub(super) fn into_prepared(self, analyzer: &Analyzer, passages: Vec<Passage>) -> Prepared {
        let passages = passages
            .into_iter()
            .zip(&self.keys)
            .map(|(passage, key)| {
                let terms = analyzer.term_counts(&passage.text);
                let vector = self.known[key].clone();
                let stored = StoredPassage {
                    passage,
                    text_key: *key,
                    terms,
                };
                (stored, vector)
            })
            .collect();
        Prepared {
            passages,
            new_vectors: self.new_vectors,
            new_sentence_vectors: self.new_sentence_vectors,
            reused: self.reused,
            tokens: self.tokens,
        }
    }
}

/// Passages ready to write, with their vectors.
#[derive(Default)]
pub(super) struct Prepared {
    pub passages: Vec<(StoredPassage, Vec<f32>)>,
    /// Vectors the model made for them, not yet stored.
    pub new_vectors: Vec<(TextKey, Vec<f32>)>,
    /// Sentence vectors the model made for them, not yet stored.
    pub new_sentence_vectors: Vec<(TextKey, SentenceVectors)>,
    pub reused: usize,
    /// Tokens the model read for the new vectors.
    pub tokens: u64,
}

impl Prepared {
    pub(super) fn index_passages(&self) -> Vec<IndexedPassage> {
        self.passages
            .iter()
            .map(|(stored, vector)| IndexedPassage {
                passage: stored.passage.clone(),
                vector: vector.clone(),
                terms: stored.terms.clone(),
            })
            .collect()
    }
}
