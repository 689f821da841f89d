//! Assembles a [`SearchEngine`] from a loaded corpus: vectors come from the cache when it has
//! them and from the model otherwise, and the cache is brought up to date.

use std::collections::{HashMap, HashSet};

use crate::corpus::LoadReport;
use crate::embedding::{Embedder, EmbeddingError, Role, TextKey, VectorCache};
use crate::index::{IndexError, VectorIndex};

use super::SearchEngine;

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("embedding passages: {0}")]
    Embedding(#[from] EmbeddingError),
    #[error("indexing passages: {0}")]
    Index(#[from] IndexError),
}

/// What a build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Passages whose vectors came from the cache.
    pub cached: usize,
    /// Distinct texts the model embedded (identical passages are embedded once).
    pub embedded: usize,
    /// Passages whose text the model truncated (should be none: the corpus stage sizes them).
    pub truncated: usize,
    /// Cache entries dropped because no passage has their text any more.
    pub evicted: usize,
    /// The cache could not be saved (the engine is complete regardless).
    pub cache_error: Option<String>,
}

/// Builds the engine over `corpus`. `progress(done, total)` follows the embedding of missing
/// vectors; it is not called when everything is cached.
pub fn build(
    corpus: LoadReport,
    embedder: &Embedder,
    cache: &mut VectorCache,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(SearchEngine, BuildStats), BuildError> {
    let texts: Vec<String> = corpus
        .passages
        .iter()
        .map(|p| p.embedding_text().into_owned())
        .collect();
    let keys: Vec<TextKey> = texts.iter().map(|t| TextKey::of(t)).collect();

    let mut missing: HashMap<TextKey, &str> = HashMap::new();
    for (key, text) in keys.iter().zip(&texts) {
        if cache.get(key).is_none() {
            missing.entry(*key).or_insert(text);
        }
    }
    let mut stats = BuildStats {
        cached: keys.iter().filter(|k| !missing.contains_key(k)).count(),
        embedded: missing.len(),
        ..BuildStats::default()
    };
    if !missing.is_empty() {
        let (missing_keys, missing_texts): (Vec<TextKey>, Vec<&str>) = missing.into_iter().unzip();
        let total = missing_texts.len();
        let mut done = 0;
        let embeddings =
            embedder.embed_with_progress(Role::Passage, &missing_texts, &mut |finished| {
                done += finished;
                progress(done, total);
            })?;
        for (key, embedding) in missing_keys.into_iter().zip(embeddings) {
            stats.truncated += usize::from(embedding.truncated);
            cache.insert(key, &embedding.vector);
        }
    }
    let current: HashSet<TextKey> = keys.iter().copied().collect();
    stats.evicted = cache.retain(&current);
    if stats.embedded > 0 || stats.evicted > 0 {
        stats.cache_error = cache.save().err().map(|e| e.to_string());
    }

    let mut vectors = VectorIndex::new(embedder.dimensions());
    for key in &keys {
        vectors.push(
            cache
                .get(key)
                .expect("every passage's vector is cached above"),
        )?;
    }
    Ok((
        SearchEngine::new(corpus.passages, corpus.documents, vectors),
        stats,
    ))
}
