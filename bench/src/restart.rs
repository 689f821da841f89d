//! `wenda-bench restart`: how long a restart takes over a large store (a benchmark, prints
//! figures). It fills a data directory with a collection of `--passages` passages (texts built
//! from the dataset's contexts, analysed for real, with random unit vectors stored under the
//! real model's fingerprint, so nothing needs embedding), then opens it several times, as
//! `wenda serve` does after loading the model, and reports how long each took. Both happen in
//! this process: a server's start-up time would bury the opening under the model's loading.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use wenda::corpus::PassageId;
use wenda::embedding::{ModelFingerprint, TextKey};
use wenda::index::Analyzer;
use wenda::squad::Dataset;
use wenda::store::{
    DocumentRecord, DocumentStore, DocumentWrite, SqliteStore, StoredPassage, WriteBatch,
};

use crate::model_args::ModelArgs;
use crate::{service, synthetic};

#[derive(clap::Args)]
pub struct RestartArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Passages in the store.
    #[arg(long, default_value_t = 100_000)]
    passages: usize,
    /// Passages per document.
    #[arg(long, default_value_t = 10)]
    per_document: usize,
    /// Where the store is built (kept, so a second run only measures).
    #[arg(long, default_value = ".wenda-data/bench-restart")]
    data_dir: PathBuf,
    /// SQuAD-format dataset whose contexts the passage texts are cut from.
    #[arg(long)]
    dataset: PathBuf,
    /// Times the store is opened.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const COLLECTION: &str = "bench";

pub fn run(args: RestartArgs) -> anyhow::Result<()> {
    let load = Instant::now();
    let (embedder, fingerprint) = service::load(&args.model)?;
    let model_ms = load.elapsed().as_millis();
    let embedder = Arc::new(embedder);
    let dimensions = embedder.dimensions();
    fill(&args, fingerprint, dimensions)?;
    println!(
        "wenda-bench restart: {} passages in {} documents at {}; model loaded and fingerprinted in {model_ms} ms",
        args.passages,
        args.passages.div_ceil(args.per_document),
        args.data_dir.display()
    );
    for run in 1..=args.runs {
        let started = Instant::now();
        let store = Arc::new(SqliteStore::open(&args.data_dir, fingerprint, dimensions)?);
        let (service, report) = service::open(Arc::clone(&embedder), &args.model.model, store)?;
        let took = started.elapsed();
        println!(
            "open {run}: {:.2} s to load {} passages and build their indexes ({} embedded), {} MiB resident",
            took.as_secs_f64(),
            report.passages,
            report.embedded,
            resident_mib()
        );
        drop(service);
    }
    Ok(())
}

/// Fills the store unless it already holds the collection.
fn fill(args: &RestartArgs, model: ModelFingerprint, dimensions: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(&args.data_dir, model, dimensions)?;
    if let Some(existing) = store.collection(COLLECTION)? {
        if existing.passages == args.passages {
            return Ok(());
        }
        store.delete_collection(COLLECTION)?;
    }
    let started = Instant::now();
    store.create_collection(COLLECTION)?;
    // The terms below are this analyzer's: opening need not analyse them again.
    store.set_setting("analyzer_revision", &Analyzer::REVISION.to_string())?;
    let dataset = Dataset::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    // Sentences of the contexts, each numbered, so every passage text is distinct.
    let sentences: Vec<&str> = dataset
        .contexts
        .iter()
        .flat_map(|c| c.split_inclusive('。'))
        .filter(|s| s.chars().count() > 8)
        .collect();
    let analyzer = Analyzer::default();
    let documents = args.passages.div_ceil(args.per_document);
    for first in (0..documents).step_by(1_000) {
        let batch: Vec<(DocumentRecord, Vec<StoredPassage>, Vec<Vec<f32>>)> = (first
            ..(first + 1_000).min(documents))
            .into_par_iter()
            .map(|d| document(d, args, &sentences, &analyzer, dimensions))
            .collect();
        let vectors: Vec<(TextKey, &[f32])> = batch
            .iter()
            .flat_map(|(_, passages, vectors)| {
                passages
                    .iter()
                    .zip(vectors)
                    .map(|(p, v)| (p.text_key, v.as_slice()))
            })
            .collect();
        store.write(
            COLLECTION,
            &WriteBatch {
                put: batch
                    .iter()
                    .map(|(record, passages, _)| DocumentWrite { record, passages })
                    .collect(),
                vectors,
                ..WriteBatch::default()
            },
        )?;
    }
    eprintln!(
        "filled {} with {} passages in {:.1} s",
        args.data_dir.display(),
        args.passages,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Document `d`: its record, passages and vectors.
fn document(
    d: usize,
    args: &RestartArgs,
    sentences: &[&str],
    analyzer: &Analyzer,
    dimensions: usize,
) -> (DocumentRecord, Vec<StoredPassage>, Vec<Vec<f32>>) {
    let id = format!("doc-{d}");
    let count = args.per_document.min(args.passages - d * args.per_document);
    let mut state = (d as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let texts = (0..count)
        .map(|p| {
            let n = d * args.per_document + p;
            let text: String = (0..3)
                .map(|k| sentences[(n * 3 + k) % sentences.len()])
                .collect::<String>()
                + &format!("（{n}）");
            (PassageId::new(format!("{id}~1.{}", p + 1)), text)
        })
        .collect();
    let vectors = (0..count)
        .map(|_| {
            (0..dimensions)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect();
    let (record, passages) = synthetic::document(id, texts, Default::default(), analyzer);
    (record, passages, vectors)
}

/// Resident memory of this process, in MiB (Linux; 0 elsewhere).
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb / 1024)
}
