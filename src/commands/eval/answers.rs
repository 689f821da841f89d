//! `wenda eval --answers`: extractive answer quality on a SQuAD-format set.
//!
//! Each question retrieves [`PASSAGES`] passages (hybrid ranking) and the answer's best sentence
//! is correct when it contains one of the gold answers. Beside wenda's extractor the table shows
//! simple anchors over the same sentences, on the half of the questions the answer model was
//! fitted on (even-numbered) and the held-out half (odd-numbered). Refusals are measured by asking
//! every question of the collection without its own paragraph: an answer then should be a refusal.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use wenda::answer::{self, AnswerOptions, Candidate, Extractor, Scored};
use wenda::embedding::{Embedder, Role};
use wenda::eval::EvalQuestion;
use wenda::index::IndexReader;
use wenda::search::{self, Question, Ranked, SearchParams};

/// Passages an answer is drawn from (the rule for sentence accuracy).
const PASSAGES: usize = 3;

/// A question with what a correct answer contains.
pub struct AnswerQuestion {
    pub eval: EvalQuestion,
    pub answers: Vec<String>,
}

/// One way of picking the answer sentence among the candidates.
struct Method {
    name: &'static str,
    pick: fn(&[Candidate], &[Scored]) -> Option<usize>,
}

fn best_by(scored: &[Scored], key: impl Fn(&Scored) -> f32) -> Option<usize> {
    scored
        .iter()
        .max_by(|a, b| key(a).total_cmp(&key(b)))
        .map(|s| s.candidate)
}

const METHODS: [Method; 5] = [
    Method {
        name: "first sentence of the best passage",
        pick: |candidates, _| (!candidates.is_empty()).then_some(0),
    },
    Method {
        name: "question-term coverage (IDF)",
        pick: |_, scored| best_by(scored, |s| s.features.coverage),
    },
    Method {
        name: "e5 dense",
        pick: |_, scored| best_by(scored, |s| s.features.cosine),
    },
    Method {
        name: "0.8 dense + 0.2 coverage",
        pick: |_, scored| {
            best_by(scored, |s| {
                0.8 * s.features.cosine + 0.2 * s.features.coverage
            })
        },
    },
    Method {
        name: "wenda extractive",
        pick: |_, scored| best_by(scored, |s| s.score),
    },
];

#[derive(Default, Serialize)]
struct Tally {
    questions: usize,
    correct: usize,
}

impl Tally {
    fn add(&mut self, correct: bool) {
        self.questions += 1;
        self.correct += usize::from(correct);
    }
    fn share(&self) -> f64 {
        self.correct as f64 / self.questions.max(1) as f64
    }
}

#[derive(Serialize)]
struct MethodRow {
    method: &'static str,
    fitted_half: f64,
    held_out_half: f64,
    all: f64,
}

#[derive(Serialize)]
pub struct AnswerReport {
    questions: usize,
    methods: Vec<MethodRow>,
    /// Retrieval put the gold paragraph among the passages answers are drawn from.
    retrieval_ceiling: f64,
    /// Share of answerable questions answered with a refusal.
    false_refusals: f64,
    /// Share of questions asked without their paragraph that were refused.
    refusals_out_of_collection: f64,
    search_p50_ms: f64,
    search_p99_ms: f64,
    answer_p50_ms: f64,
    answer_p99_ms: f64,
}

/// Sentence vectors by text, as the service caches them.
struct SentenceVectors<'e> {
    embedder: &'e Embedder,
    cache: HashMap<String, Vec<f32>>,
}

impl SentenceVectors<'_> {
    fn fill(&mut self, texts: &[&str]) -> anyhow::Result<()> {
        let mut missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !self.cache.contains_key(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let vectors = self.embedder.embed(Role::Passage, &missing)?;
        for (text, embedding) in missing.into_iter().zip(vectors) {
            self.cache.insert(text.to_owned(), embedding.vector);
        }
        Ok(())
    }

    fn get(&self, text: &str) -> &[f32] {
        &self.cache[text]
    }
}

struct Asked {
    ranked: Vec<Ranked>,
    candidates: Vec<Candidate>,
}

fn ask(
    reader: &dyn IndexReader,
    question: &EvalQuestion,
    vector: &[f32],
    without_own_paragraph: bool,
) -> anyhow::Result<Asked> {
    let params = SearchParams {
        top_k: if without_own_paragraph {
            PASSAGES * 3
        } else {
            PASSAGES
        },
        ..SearchParams::default()
    };
    let mut ranked = search::search(
        reader,
        &Question {
            text: &question.question,
            vector: Some(vector),
        },
        &params,
    )?;
    if without_own_paragraph {
        ranked.retain(|r| !question.is_relevant(&r.passage));
    }
    ranked.truncate(PASSAGES);
    let candidates = answer::candidates(&ranked);
    Ok(Asked { ranked, candidates })
}

pub fn run(
    reader: &dyn IndexReader,
    extractor: &Extractor,
    embedder: &Embedder,
    questions: &[AnswerQuestion],
    vectors: &[Vec<f32>],
    timed: usize,
    features_out: Option<&Path>,
) -> anyhow::Result<AnswerReport> {
    let options = AnswerOptions::default();
    let mut sentences = SentenceVectors {
        embedder,
        cache: HashMap::new(),
    };
    let mut asked = Vec::with_capacity(questions.len());
    let mut out_of_collection = Vec::with_capacity(questions.len());
    for (question, vector) in questions.iter().zip(vectors) {
        asked.push(ask(reader, &question.eval, vector, false)?);
        out_of_collection.push(ask(reader, &question.eval, vector, true)?);
    }
    let texts: Vec<&str> = asked
        .iter()
        .chain(&out_of_collection)
        .flat_map(|a| a.candidates.iter().map(|c| c.text(&a.ranked)))
        .collect();
    let started = Instant::now();
    sentences.fill(&texts)?;
    tracing::info!(
        sentences = sentences.cache.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "candidate sentences embedded"
    );

    let mut features = match features_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
        )),
        None => None,
    };
    let mut tallies: Vec<[Tally; 2]> = METHODS.iter().map(|_| Default::default()).collect();
    let mut ceiling = Tally::default();
    let mut false_refusals = Tally::default();
    let mut refusals = Tally::default();
    for (n, ((question, vector), (inside, outside))) in questions
        .iter()
        .zip(vectors)
        .zip(asked.iter().zip(&out_of_collection))
        .enumerate()
    {
        let contains_answer =
            |text: &str| question.answers.iter().any(|a| text.contains(a.as_str()));
        let score = |asked: &Asked| {
            let vectors: Vec<&[f32]> = asked
                .candidates
                .iter()
                .map(|c| sentences.get(c.text(&asked.ranked)))
                .collect();
            let scored = extractor.score(
                reader,
                &question.eval.question,
                vector,
                &asked.ranked,
                &asked.candidates,
                &vectors,
            );
            let found = answer::answer_from(
                &scored,
                &asked.ranked,
                &asked.candidates,
                &vectors,
                &options,
            )
            .found;
            (scored, found)
        };
        let (scored, found) = score(inside);
        for (method, tally) in METHODS.iter().zip(&mut tallies) {
            let correct = (method.pick)(&inside.candidates, &scored)
                .is_some_and(|i| contains_answer(inside.candidates[i].text(&inside.ranked)));
            tally[n % 2].add(correct);
        }
        ceiling.add(
            inside
                .ranked
                .iter()
                .any(|r| question.eval.is_relevant(&r.passage)),
        );
        false_refusals.add(!found);
        let (scored_outside, found) = score(outside);
        refusals.add(!found);
        if let Some(out) = features.as_mut() {
            for (asked, scored, outside) in
                [(inside, &scored, false), (outside, &scored_outside, true)]
            {
                for (candidate, s) in asked.candidates.iter().zip(scored) {
                    let text = candidate.text(&asked.ranked);
                    let record = serde_json::json!({
                        "question": n,
                        "outside": outside,
                        "label": contains_answer(text),
                        "text": text,
                        "features": s.features.values(),
                    });
                    writeln!(out, "{record}")?;
                }
            }
        }
    }
    if let Some(mut out) = features {
        out.flush()?;
    }

    let timed = &questions[..timed.min(questions.len())];
    let (search_times, answer_times) = speed(reader, extractor, embedder, timed, &options)?;
    Ok(AnswerReport {
        questions: questions.len(),
        methods: METHODS
            .iter()
            .zip(&tallies)
            .map(|(method, [fitted, held_out])| MethodRow {
                method: method.name,
                fitted_half: fitted.share(),
                held_out_half: held_out.share(),
                all: (fitted.correct + held_out.correct) as f64
                    / (fitted.questions + held_out.questions).max(1) as f64,
            })
            .collect(),
        retrieval_ceiling: ceiling.share(),
        false_refusals: false_refusals.share(),
        refusals_out_of_collection: refusals.share(),
        search_p50_ms: percentile(&search_times, 0.5),
        search_p99_ms: percentile(&search_times, 0.99),
        answer_p50_ms: percentile(&answer_times, 0.5),
        answer_p99_ms: percentile(&answer_times, 0.99),
    })
}

/// Per question, the time of a search (question embedded, passages ranked) and of an answer
/// (the same, then its sentences embedded with no cache and scored), one question at a time.
fn speed(
    reader: &dyn IndexReader,
    extractor: &Extractor,
    embedder: &Embedder,
    questions: &[AnswerQuestion],
    options: &AnswerOptions,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut search_times = Vec::with_capacity(questions.len());
    let mut answer_times = Vec::with_capacity(questions.len());
    for question in questions {
        let text = question.eval.question.as_str();
        let started = Instant::now();
        let vector = embedder.embed_one(Role::Query, text)?.vector;
        std::hint::black_box(ask(reader, &question.eval, &vector, false)?);
        search_times.push(started.elapsed());

        let started = Instant::now();
        let vector = embedder.embed_one(Role::Query, text)?.vector;
        let asked = ask(reader, &question.eval, &vector, false)?;
        let texts: Vec<&str> = asked
            .candidates
            .iter()
            .map(|c| c.text(&asked.ranked))
            .collect();
        let embedded = if texts.is_empty() {
            Vec::new()
        } else {
            embedder.embed(Role::Passage, &texts)?
        };
        let vectors: Vec<&[f32]> = embedded.iter().map(|e| e.vector.as_slice()).collect();
        std::hint::black_box(extractor.extract(
            reader,
            text,
            &vector,
            &asked.ranked,
            &asked.candidates,
            &vectors,
            options,
        ));
        answer_times.push(started.elapsed());
    }
    Ok((search_times, answer_times))
}

fn percentile(times: &[Duration], share: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1e3
}

pub fn print(name: &str, report: &AnswerReport) {
    println!(
        "{name}: {} questions, answers drawn from the best {PASSAGES} passages",
        report.questions
    );
    println!(
        "{:<36} {:>11} {:>9} {:>7}",
        "sentence accuracy", "fitted half", "held out", "all"
    );
    for row in &report.methods {
        println!(
            "{:<36} {:>11.3} {:>9.3} {:>7.3}",
            row.method, row.fitted_half, row.held_out_half, row.all
        );
    }
    println!(
        "gold paragraph among the passages: {:.3}",
        report.retrieval_ceiling
    );
    println!(
        "refusals: {:.3} of questions asked without their paragraph, {:.3} of answerable ones",
        report.refusals_out_of_collection, report.false_refusals
    );
    println!(
        "latency p50/p99: search {:.1}/{:.1} ms, answer {:.1}/{:.1} ms (sentences embedded uncached)",
        report.search_p50_ms, report.search_p99_ms, report.answer_p50_ms, report.answer_p99_ms
    );
}
