//! The seed corpus sized with the real model's tokenizer: every passage fits the model's window
//! (prompt and title included), so nothing the corpus stage produces is truncated at embedding time.

use std::path::Path;

use wenda::corpus::{self, ChunkConfig};
use wenda::embedding::{Backend, BatchLimits, Embedder, ModelLocator, Role, DEFAULT_MODEL};

#[test]
fn seed_passages_fit_the_model_window() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = ModelLocator::new(root.join("models"))
        .resolve(DEFAULT_MODEL)
        .unwrap();
    let embedder = Embedder::load(&files, Backend::Native, BatchLimits::default()).unwrap();
    let config = ChunkConfig::new(&embedder);
    let report = corpus::load(&[root.join("seeds")], &config);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.documents.len(), 1);
    assert!(
        report.passages.len() >= 20,
        "{} passages",
        report.passages.len()
    );
    for passage in &report.passages {
        let tokens = embedder
            .token_count(Role::Passage, &passage.embedding_text())
            .unwrap();
        assert!(
            tokens <= embedder.config().max_tokens,
            "{}: {tokens} tokens",
            passage.id
        );
    }
}
