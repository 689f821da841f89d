//! `wenda-bench answers`: what an extractive answer costs beside the search it starts with,
//! over HTTP from one client. Each question is searched (`POST /v1/search`), then answered
//! (`POST /v1/answer`, extractive) twice: the first time its sentences may need embedding,
//! the second time they are in the server's sentence cache. Without `--url`, `wenda serve` is
//! started over the seed corpus, or, with `--contexts`, over the dataset's own contexts (each
//! a JSON-lines record), so the questions have their answers in the collection.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use wenda::eval::read_questions;
use wenda::squad::Dataset;

use crate::percentile;
use crate::server::{scratch_dir, ServerArgs, Spawned};

#[derive(clap::Args)]
pub struct AnswersArgs {
    /// A running wenda to measure; by default `wenda serve` is started on a free port.
    #[arg(long, conflicts_with_all = ["wenda", "serve_args", "contexts"])]
    url: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Questions to ask: a SQuAD-format dataset (`.json`) or a `wenda eval --questions` file
    /// (`.jsonl`).
    #[arg(long)]
    dataset: PathBuf,
    /// Serve the SQuAD dataset's contexts instead of the seed corpus.
    #[arg(long)]
    contexts: bool,
    /// Questions asked (the first ones of the dataset).
    #[arg(long, default_value_t = 200)]
    questions: usize,
    /// Passages an answer is drawn from (and a search returns).
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Measure generated answers instead (the server needs `--llm-base-url`, given after
    /// `--`): how long wenda takes before it calls the LLM, and the LLM's first token after.
    #[arg(long)]
    generative: bool,
}

pub fn run(args: AnswersArgs) -> anyhow::Result<()> {
    let squad = args.dataset.extension().is_some_and(|e| e == "json");
    let dataset = if squad {
        Dataset::read(&args.dataset)
    } else {
        Ok(Dataset::default())
    }
    .with_context(|| format!("reading {}", args.dataset.display()))?;
    let all: Vec<String> = if squad {
        dataset.questions.iter().map(|q| q.text.clone()).collect()
    } else {
        read_questions(&args.dataset)
            .with_context(|| format!("reading {}", args.dataset.display()))?
            .into_iter()
            .map(|q| q.question)
            .collect()
    };
    if args.contexts && !squad {
        bail!("--contexts needs a SQuAD-format dataset");
    }
    let questions: Vec<&str> = all
        .iter()
        .take(args.questions)
        .map(String::as_str)
        .collect();
    if questions.is_empty() {
        bail!("{} has no questions", args.dataset.display());
    }
    let (url, _server) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let scratch = scratch_dir("answers");
            let mut options: Vec<String> = vec!["--data-dir".into(), path(&scratch.join("data"))];
            if args.contexts {
                let corpus = scratch.join("corpus");
                write_contexts(&dataset, &corpus)?;
                options.extend(["--corpus".into(), path(&corpus)]);
            }
            let server = Spawned::start(args.server.command(options)?, Some(scratch))?;
            (server.url.clone(), Some(server))
        }
    };
    println!(
        "wenda-bench answers: {url}, {} questions from {}, top_k {}, one client",
        questions.len(),
        args.dataset.display(),
        args.top_k
    );
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    let timed = |path: &str, body: Value| -> anyhow::Result<(Duration, Value)> {
        let started = Instant::now();
        let answer: Value = agent
            .post(&format!("{url}{path}"))
            .send_json(body)
            .with_context(|| format!("POST {path}"))?
            .into_json()?;
        Ok((started.elapsed(), answer))
    };
    if args.generative {
        return generative(&url, &questions, args.top_k);
    }
    // Warm-up: thread pools, allocator, the first forward passes. Searches only, so that no
    // sentence is cached before its question is first answered.
    for question in questions.iter().take(10) {
        timed(
            "/v1/search",
            json!({"query": question, "top_k": args.top_k}),
        )?;
    }
    let (mut search, mut first, mut again) = (Vec::new(), Vec::new(), Vec::new());
    let mut found = 0;
    for question in &questions {
        let search_body = json!({"query": question, "top_k": args.top_k});
        let answer_body = json!({"question": question, "mode": "extractive", "top_k": args.top_k});
        search.push(timed("/v1/search", search_body)?.0);
        let (took, answer) = timed("/v1/answer", answer_body.clone())?;
        first.push(took);
        found += usize::from(answer["found"] == true);
        again.push(timed("/v1/answer", answer_body)?.0);
    }
    let row = |name: &str, times: &mut Vec<Duration>| {
        times.sort();
        let (p50, p99) = (ms(percentile(times, 0.5)), ms(percentile(times, 0.99)));
        println!("{name:<32} {p50:>8.1} {p99:>8.1}");
        p50
    };
    println!("{:<32} {:>8} {:>8}", "", "p50 ms", "p99 ms");
    let search_p50 = row("search", &mut search);
    let first_p50 = row("answer, first time", &mut first);
    let again_p50 = row("answer, sentences cached", &mut again);
    println!(
        "answer p50 / search p50: {:.2}x first time, {:.2}x cached; answered {found} of {}",
        first_p50 / search_p50,
        again_p50 / search_p50,
        questions.len()
    );
    Ok(())
}

/// Streams generated answers and times, per question, the `sources` event (sent just before
/// the LLM is called: wenda's own overhead, retrieval and sentence scoring included) and the
/// first `delta` (the LLM's first token, passed on as it comes).
fn generative(url: &str, questions: &[&str], top_k: usize) -> anyhow::Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build();
    let (mut before_llm, mut first_token, mut refused) = (Vec::new(), Vec::new(), 0);
    for question in questions {
        let started = Instant::now();
        let response = agent
            .post(&format!("{url}/v1/answer"))
            .send_json(
                json!({"question": question, "mode": "generative", "stream": true, "top_k": top_k}),
            )
            .context("POST /v1/answer")?;
        let (mut sources, mut event) = (None, String::new());
        for line in std::io::BufRead::lines(std::io::BufReader::new(response.into_reader())) {
            let line = line?;
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                match event.as_str() {
                    "sources" if data.contains("\"index\"") => sources = Some(started.elapsed()),
                    "sources" => {
                        refused += 1;
                        break;
                    }
                    "delta" => {
                        if let Some(sources) = sources {
                            before_llm.push(sources);
                            first_token.push(started.elapsed() - sources);
                        }
                        break;
                    }
                    "error" => bail!("the answer to {question:?} failed: {data}"),
                    _ => {}
                }
            }
        }
    }
    if before_llm.is_empty() {
        bail!("every question was refused before the LLM was asked");
    }
    println!("{:<36} {:>8} {:>8}", "", "p50 ms", "p99 ms");
    for (name, times) in [
        ("wenda, until the LLM is called", &mut before_llm),
        ("the LLM's first token after that", &mut first_token),
    ] {
        times.sort();
        let (p50, p99) = (ms(percentile(times, 0.5)), ms(percentile(times, 0.99)));
        println!("{name:<36} {p50:>8.1} {p99:>8.1}");
    }
    println!(
        "{} answers generated, {refused} refused without asking the LLM",
        before_llm.len()
    );
    Ok(())
}

/// The dataset's contexts as a JSON-lines corpus folder, one record each.
fn write_contexts(dataset: &Dataset, folder: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)?;
    let file = folder.join("contexts.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    for (i, context) in dataset.contexts.iter().enumerate() {
        writeln!(
            out,
            "{}",
            json!({"id": format!("context-{i}"), "text": context})
        )?;
    }
    out.flush()
        .with_context(|| format!("writing {}", file.display()))
}

fn path(path: &std::path::Path) -> String {
    path.display().to_string()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
