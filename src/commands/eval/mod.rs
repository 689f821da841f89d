//! `wenda eval`: retrieval quality per ranking mode (Recall@1/5/10, MRR@10) with query speed.
//!
//! Either a SQuAD-format dataset (`--dataset`: its distinct contexts become a JSON-lines corpus,
//! each question's relevant passage is its own context) or a JSON-lines question set over the
//! corpus given with `--corpus` (`--questions`, see [`wenda::eval`]). With `--answers`, the
//! extractive answers to a dataset's questions instead (see [`answers`]).

mod answers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use wenda::embedding::{Embedder, Role};
use wenda::eval::{read_questions, EvalQuestion, Metrics};
use wenda::index::IndexReader;
use wenda::search::{self, Mode, Question, SearchParams, DEFAULT_LEXICAL_WEIGHT};
use wenda::service::DEFAULT_COLLECTION;
use wenda::squad::Dataset;
use wenda::store::DEFAULT_EF_SEARCH;

use super::open::{self, ServiceOptions, StoreArgs};
use super::{ModeArg, ModelArgs, RoleArg};

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Corpus the `--questions` are asked over (loaded into its own store under --data-dir).
    #[arg(long = "corpus", default_value = "seeds")]
    corpus: Vec<PathBuf>,
    /// Where evaluation stores are kept (one per dataset or corpus), apart from the served one.
    #[arg(long, default_value = ".wenda-data/eval")]
    data_dir: PathBuf,
    /// Evaluate over this PostgreSQL database (with pgvector) instead of a store under
    /// --data-dir: its collection `default` is synced with the corpus.
    #[arg(long = "store")]
    database_url: Option<String>,
    /// With --store: HNSW candidates each search keeps.
    #[arg(long, default_value_t = DEFAULT_EF_SEARCH)]
    ef_search: usize,
    /// SQuAD-format dataset: its contexts are the corpus, its questions the queries.
    #[arg(
        long,
        conflicts_with = "questions",
        required_unless_present = "questions"
    )]
    dataset: Option<PathBuf>,
    /// With --dataset: ask only the questions this file translates, in its words (JSON lines
    /// `{"id", "question"}` by the dataset's question ids), e.g. `eval/cmrc2018_dev_en.jsonl`.
    #[arg(long, requires = "dataset")]
    translations: Option<PathBuf>,
    /// JSON lines `{"question", "expected_ids"?, "expected_substrings"?}` asked over --corpus.
    #[arg(long)]
    questions: Option<PathBuf>,
    /// Ranking modes to evaluate.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dense,lexical,hybrid"
    )]
    modes: Vec<ModeArg>,
    /// Lexical weights to evaluate hybrid ranking with (one row each).
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_LEXICAL_WEIGHT])]
    lexical_weight: Vec<f32>,
    /// Questions timed one at a time per mode, embedding included, for QPS and latency.
    #[arg(long, default_value_t = 300)]
    timed: usize,
    /// Use only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// The prompt questions are embedded with: `query` (what e5 was trained with, and what
    /// wenda's search uses) or `passage`, which measures what a client of the OpenAI route that
    /// cannot send `input_type` (LangChain's or LlamaIndex's embeddings) gets.
    #[arg(long, value_enum, default_value = "query")]
    question_role: RoleArg,
    /// Score extractive answers instead of rankings: sentence accuracy against the dataset's
    /// gold answers, refusals, and answer latency beside search latency.
    #[arg(long, requires = "dataset")]
    answers: bool,
    /// With --answers: write every candidate sentence's features and label as JSON lines, what
    /// `scripts/fit-answer-model.py` fits the answer model's weights on.
    #[arg(long, requires = "answers")]
    answer_features: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    mode: &'static str,
    /// For hybrid rows.
    lexical_weight: Option<f32>,
    #[serde(flatten)]
    metrics: Metrics,
    queries_per_second: f64,
    p50_ms: f64,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (name, mut questions, store) = match (&args.dataset, &args.questions) {
        (Some(dataset), _) => {
            let stem = dataset
                .file_stem()
                .map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
            let data_dir = args.data_dir.join(&stem);
            let (corpus, questions) =
                squad_as_corpus(dataset, args.translations.as_deref(), &data_dir, &stem)?;
            let store = eval_store(&args, data_dir, vec![corpus]);
            let name = match &args.translations {
                Some(translations) => format!(
                    "{} (questions of {})",
                    dataset.display(),
                    translations.display()
                ),
                None => dataset.display().to_string(),
            };
            (name, questions, store)
        }
        (None, Some(path)) => {
            let store = eval_store(&args, args.data_dir.join("questions"), args.corpus.clone());
            let questions = read_questions(path)?
                .into_iter()
                .map(|eval| answers::AnswerQuestion {
                    eval,
                    answers: Vec::new(),
                })
                .collect();
            (path.display().to_string(), questions, store)
        }
        (None, None) => bail!("give --dataset or --questions"),
    };
    if let Some(limit) = args.limit {
        questions.truncate(limit);
    }
    let service = open::service(&args.model, &store, ServiceOptions::default())?;
    let reader = service.reader(DEFAULT_COLLECTION)?;
    let embedder = service.embedder();
    let role = Role::from(args.question_role);
    let texts: Vec<&str> = questions.iter().map(|q| q.eval.question.as_str()).collect();
    let started = Instant::now();
    let vectors: Vec<Vec<f32>> = embedder
        .embed(role, &texts)?
        .into_iter()
        .map(|e| e.vector)
        .collect();
    tracing::info!(
        questions = texts.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "questions embedded"
    );
    if args.answers {
        let extractor = wenda::answer::Extractor::new(std::sync::Arc::clone(service.analyzer()));
        let report = answers::run(
            &*reader,
            &extractor,
            embedder,
            &questions,
            &vectors,
            args.timed,
            args.answer_features.as_deref(),
        )?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            answers::print(&name, &report);
        }
        return Ok(());
    }
    let questions: Vec<&EvalQuestion> = questions.iter().map(|q| &q.eval).collect();

    let mut rows = Vec::new();
    for &mode in &args.modes {
        let mode = Mode::from(mode);
        let weights: Vec<Option<f32>> = if mode == Mode::Hybrid {
            args.lexical_weight.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        for weight in weights {
            let params = SearchParams {
                top_k: 10,
                mode,
                lexical_weight: weight.unwrap_or(DEFAULT_LEXICAL_WEIGHT),
                ..SearchParams::default()
            };
            let metrics = quality(&*reader, &params, &questions, &vectors)?;
            let (qps, p50) = speed(
                &*reader,
                embedder,
                role,
                &params,
                &texts[..args.timed.min(texts.len())],
            )?;
            rows.push(Row {
                mode: mode.as_str(),
                lexical_weight: weight,
                metrics,
                queries_per_second: qps,
                p50_ms: p50.as_secs_f64() * 1e3,
            });
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&name, reader.passage_count(), &rows);
    }
    Ok(())
}

/// A store of its own for one evaluation, filled from `corpus`.
fn eval_store(args: &EvalArgs, data_dir: PathBuf, corpus: Vec<PathBuf>) -> StoreArgs {
    StoreArgs {
        data_dir,
        database_url: args.database_url.clone(),
        corpus,
        no_corpus: false,
        max_store_bytes: None,
        ef_search: args.ef_search,
        max_file_bytes: wenda::corpus::DEFAULT_MAX_FILE_BYTES,
        follow_symlinks: false,
        read_database_url: None,
        quantize_from: wenda::index::DEFAULT_QUANTIZE_FROM,
    }
}

/// Writes the dataset's distinct contexts as a JSON-lines corpus (ids `c0`, `c1`, …) and turns
/// its questions into eval questions expecting their own context, with their gold answers.
fn squad_as_corpus(
    dataset: &Path,
    translations: Option<&Path>,
    dir: &Path,
    stem: &str,
) -> anyhow::Result<(PathBuf, Vec<answers::AnswerQuestion>)> {
    let mut data = Dataset::read(dataset)?;
    if let Some(translations) = translations {
        data = data.translated(translations)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{stem}.jsonl"));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?,
    );
    for (index, context) in data.contexts.iter().enumerate() {
        let record = serde_json::json!({ "id": format!("c{index}"), "text": context });
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    let questions = data
        .questions
        .into_iter()
        .map(|q| answers::AnswerQuestion {
            eval: EvalQuestion {
                question: q.text,
                expected_ids: vec![format!("c{}", q.context)],
                expected_substrings: Vec::new(),
            },
            answers: q.answers,
        })
        .collect();
    Ok((path, questions))
}

fn quality(
    reader: &dyn IndexReader,
    params: &SearchParams,
    questions: &[&EvalQuestion],
    vectors: &[Vec<f32>],
) -> anyhow::Result<Metrics> {
    let mut metrics = Metrics::default();
    for (question, vector) in questions.iter().zip(vectors) {
        let ranked = search::search(
            reader,
            &Question {
                text: &question.question,
                vector: Some(vector),
            },
            params,
        )?;
        let rank = ranked
            .iter()
            .position(|r| question.is_relevant(&r.passage))
            .map(|i| i + 1);
        metrics.add(rank);
    }
    Ok(metrics)
}

/// Queries per second and median latency of the whole path (embedding, when the mode needs it,
/// and ranking), one question at a time.
fn speed(
    reader: &dyn IndexReader,
    embedder: &Embedder,
    role: Role,
    params: &SearchParams,
    questions: &[&str],
) -> anyhow::Result<(f64, Duration)> {
    let mut times = Vec::with_capacity(questions.len());
    for text in questions {
        let started = Instant::now();
        let vector = if params.mode.needs_embedding() {
            Some(embedder.embed_one(role, text)?.vector)
        } else {
            None
        };
        let question = Question {
            text,
            vector: vector.as_deref(),
        };
        std::hint::black_box(search::search(reader, &question, params)?);
        times.push(started.elapsed());
    }
    if times.is_empty() {
        return Ok((0.0, Duration::ZERO));
    }
    let total: Duration = times.iter().sum();
    times.sort();
    Ok((
        times.len() as f64 / total.as_secs_f64(),
        times[times.len() / 2],
    ))
}

fn print_table(name: &str, passages: usize, rows: &[Row]) {
    let questions = rows.first().map_or(0, |r| r.metrics.questions);
    println!("{name}: {questions} questions over {passages} passages");
    println!(
        "{:<14} {:>6} {:>6} {:>6} {:>7} {:>9} {:>8}",
        "mode", "R@1", "R@5", "R@10", "MRR@10", "queries/s", "p50 ms"
    );
    for row in rows {
        let label = match row.lexical_weight {
            Some(w) => format!("{} w={w}", row.mode),
            None => row.mode.to_owned(),
        };
        let m = &row.metrics;
        println!(
            "{label:<14} {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>9.1} {:>8.2}",
            m.recall_at_1,
            m.recall_at_5,
            m.recall_at_10,
            m.mrr_at_10,
            row.queries_per_second,
            row.p50_ms
        );
    }
}
