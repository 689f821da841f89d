//! `wenda-bench serve`: HTTP load benchmark. Sends distinct real questions to `POST /v1/search`
//! from a number of concurrent clients and prints queries per second and latency percentiles
//! for each concurrency level. Without `--url` it starts `wenda serve` first (see
//! [`ServerArgs`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use wenda::squad::Dataset;

use crate::server::{ServerArgs, Spawned};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A running wenda to measure; by default `wenda serve` is started (with the options after
    /// `--`) on a free port.
    #[arg(long, conflicts_with_all = ["wenda", "serve_args"])]
    url: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// SQuAD-format dataset whose questions are sent.
    #[arg(long)]
    dataset: PathBuf,
    /// Concurrency levels to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Requests timed at each level (each a different question where the dataset has enough).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Results asked for per request.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

/// What one concurrency level measured.
pub struct Level {
    concurrency: usize,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dataset = Dataset::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let questions: Vec<String> = dataset.questions.into_iter().map(|q| q.text).collect();
    if questions.is_empty() {
        bail!("{} has no questions", args.dataset.display());
    }
    let (url, _server) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let server = Spawned::start(args.server.command::<&str>([])?, None)?;
            (server.url.clone(), Some(server))
        }
    };
    println!(
        "wenda-bench serve: POST {url}/v1/search, top_k {}, {} requests per level, distinct questions from {}",
        args.top_k,
        args.requests,
        args.dataset.display()
    );
    print_header();
    // Warm-up: thread pools, allocator, the first forward passes.
    let body = |question: &str| serde_json::json!({ "query": question, "top_k": args.top_k });
    let endpoint = format!("{url}/v1/search");
    run_level(
        &endpoint,
        &questions[..questions.len().min(20)],
        1,
        20,
        &body,
    );
    let mut offset = 20;
    for &concurrency in &args.concurrency {
        let level = run_level(
            &endpoint,
            &questions[offset % questions.len()..],
            concurrency.max(1),
            args.requests,
            &body,
        );
        offset += args.requests;
        print_level(&level);
    }
    Ok(())
}

/// Sends `requests` searches to `endpoint` from `concurrency` clients, questions taken in turn
/// (cycling), each as the request `body` makes of it.
pub fn run_level(
    endpoint: &str,
    questions: &[String],
    concurrency: usize,
    requests: usize,
    body: &(dyn Fn(&str) -> serde_json::Value + Sync),
) -> Level {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let outcomes: Vec<(Vec<Duration>, usize)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..concurrency)
            .map(|_| {
                let next = Arc::clone(&next);
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .build();
                    let (mut latencies, mut errors) = (Vec::new(), 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break;
                        }
                        let question = &questions[i % questions.len()];
                        let sent = Instant::now();
                        let answered = agent
                            .post(endpoint)
                            .send_json(body(question))
                            .is_ok_and(|response| response.into_string().is_ok());
                        latencies.push(sent.elapsed());
                        errors += usize::from(!answered);
                    }
                    (latencies, errors)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|client| client.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for (client_latencies, client_errors) in outcomes {
        latencies.extend(client_latencies);
        errors += client_errors;
    }
    latencies.sort();
    Level {
        concurrency,
        latencies,
        errors,
        elapsed,
    }
}

pub fn print_header() {
    println!(
        "{:>11} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "concurrency", "requests", "errors", "QPS", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
}

pub fn print_level(level: &Level) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let percentile = |p: f64| crate::percentile(&level.latencies, p);
    if level.latencies.is_empty() {
        println!("{:>11} no requests", level.concurrency);
        return;
    }
    println!(
        "{:>11} {:>9} {:>7} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        level.concurrency,
        level.latencies.len(),
        level.errors,
        level.latencies.len() as f64 / level.elapsed.as_secs_f64(),
        ms(percentile(0.50)),
        ms(percentile(0.90)),
        ms(percentile(0.99)),
        ms(*level.latencies.last().expect("not empty")),
    );
}
