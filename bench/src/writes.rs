//! `wenda-bench writes`: what writing costs and what it does to searches (a benchmark, prints
//! figures). Over a fresh data directory served by `wenda serve` (see [`ServerArgs`]), it
//! measures:
//!
//! - the latency of writing one document the size of the seed document (contexts of the dataset
//!   joined as paragraphs, every passage new; then the same again, every passage unchanged);
//! - the throughput of importing the dataset's contexts through the import route, against the
//!   model embedding the same texts directly in the same command;
//! - search latency (one client) alone, then while the contexts are imported again (changed
//!   slightly, so that they are embedded again), and while one maximal `/v1/embeddings` request
//!   (128 of the longest contexts) is answered;
//! - the write rate of large documents, at 1 MiB and at `--large-mib`: the first sentences of a
//!   context repeated as many short paragraphs, and as one long paragraph. Their passages repeat, so few are
//!   embedded: what is measured is the rest of the write path, which must stay linear.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use wenda::embedding::Role;
use wenda::squad::Dataset;

use crate::model_args::ModelArgs;
use crate::server::{model_options, scratch_dir, ServerArgs, Spawned};

#[derive(clap::Args)]
pub struct WritesArgs {
    /// The model, both of the server and of the direct embedding it is compared with.
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// SQuAD-format dataset: its contexts are imported, its questions asked meanwhile.
    #[arg(long)]
    dataset: PathBuf,
    /// Contexts imported (default: all).
    #[arg(long)]
    contexts: Option<usize>,
    /// Seed-sized documents written for the upsert latency.
    #[arg(long, default_value_t = 10)]
    upserts: usize,
    /// Questions timed without an import, as the baseline.
    #[arg(long, default_value_t = 200)]
    questions: usize,
    /// Size of the large documents written, in MiB (the server is told to accept them).
    #[arg(long, default_value_t = 16)]
    large_mib: usize,
}

pub fn run(args: WritesArgs) -> anyhow::Result<()> {
    let dataset = Dataset::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let contexts = &dataset.contexts[..args
        .contexts
        .unwrap_or(usize::MAX)
        .min(dataset.contexts.len())];
    let questions: Vec<&str> = dataset.questions.iter().map(|q| q.text.as_str()).collect();
    if contexts.is_empty() || questions.is_empty() {
        bail!("{} has no contexts or questions", args.dataset.display());
    }
    let data_dir = scratch_dir("writes");
    let mut options = vec!["--data-dir".into(), data_dir.clone().into_os_string()];
    options.extend(model_options(&args.model));
    // JSON adds a little to the text: room for that.
    let max_document_bytes = (args.large_mib + 1) << 20;
    options.extend([
        "--max-document-bytes".into(),
        max_document_bytes.to_string().into(),
    ]);
    let server = Spawned::start(args.server.command(options)?, Some(data_dir.clone()))?;
    let url = server.url.clone();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(600))
        .build();
    println!(
        "wenda-bench writes: {url}, data directory {}",
        data_dir.display()
    );

    // Upserts of one document the size of the seed document, made of contexts not yet used.
    let seed_bytes =
        std::fs::metadata("seeds/000_6b84f5fb9e9426be.txt").map_or(15_000, |m| m.len() as usize);
    agent.put(&format!("{url}/v1/collections/bench")).call()?;
    let mut fresh = Vec::new();
    let mut unchanged = Vec::new();
    let mut passages = Vec::new();
    let mut next = contexts.len();
    for i in 0..args.upserts {
        let mut text = String::new();
        while text.len() < seed_bytes {
            next = if next == 0 {
                dataset.contexts.len()
            } else {
                next
            } - 1;
            // Marked, so that no passage equals one the import below embeds.
            text.push_str(&format!("（{i}）{}\n\n", dataset.contexts[next]));
        }
        let body = json!({"text": text});
        let path = format!("{url}/v1/collections/bench/documents/doc-{i}");
        let started = Instant::now();
        let written: Value = agent.put(&path).send_json(&body)?.into_json()?;
        fresh.push(started.elapsed());
        passages.push(written["passages"].as_u64().unwrap_or(0));
        let started = Instant::now();
        agent.put(&path).send_json(&body)?.into_json::<Value>()?;
        unchanged.push(started.elapsed());
    }
    println!(
        "upsert of a document of about {seed_bytes} bytes (like the seed document; {}-{} passages), {} times:",
        passages.iter().min().unwrap_or(&0),
        passages.iter().max().unwrap_or(&0),
        args.upserts
    );
    println!("  every passage new:  {}", summary(&mut fresh));
    println!("  unchanged (reused): {}", summary(&mut unchanged));
    large_documents(&agent, &url, short_paragraph(&contexts[0]), args.large_mib)?;

    // The model alone on the contexts: the throughput an import should come close to.
    let embedder = args.model.load()?;
    let started = Instant::now();
    let embedded = embedder.embed(Role::Passage, contexts)?;
    let elapsed = started.elapsed();
    drop(embedder);
    let tokens: usize = embedded.iter().map(|e| e.tokens).sum();
    let direct = tokens as f64 / elapsed.as_secs_f64();
    println!(
        "model alone, {} contexts as passages: {tokens} tokens in {:.1} s = {direct:.0} tokens/s",
        contexts.len(),
        elapsed.as_secs_f64()
    );

    // Searches with nothing else going on.
    let search = |question: &str| -> anyhow::Result<Duration> {
        let started = Instant::now();
        agent
            .post(&format!("{url}/v1/search"))
            .send_json(json!({"query": question, "top_k": 5}))?
            .into_string()?;
        Ok(started.elapsed())
    };
    let mut quiet = Vec::new();
    for question in questions.iter().cycle().take(args.questions) {
        quiet.push(search(question)?);
    }
    println!("search latency, alone:           {}", summary(&mut quiet));

    // The import alone, then again (texts changed) with searches meanwhile.
    let import = |collection: &str, prefix: &str| -> anyhow::Result<(Value, Duration)> {
        agent
            .put(&format!("{url}/v1/collections/{collection}"))
            .call()?;
        let body: String = contexts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                json!({"id": format!("c{i}"), "text": format!("{prefix}{text}")}).to_string() + "\n"
            })
            .collect();
        let started = Instant::now();
        let accepted: Value = agent
            .post(&format!(
                "{url}/v1/collections/{collection}/documents:import"
            ))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&body)?
            .into_json()?;
        let id = accepted["id"]
            .as_str()
            .context("the import answered no job")?;
        loop {
            let job: Value = agent
                .get(&format!("{url}/v1/jobs/{id}"))
                .call()?
                .into_json()?;
            if job["status"] != "queued" && job["status"] != "running" {
                return Ok((job, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (job, wall) = import("imported", "")?;
    let rate = job["tokens"].as_f64().unwrap_or(0.0) / wall.as_secs_f64();
    println!(
        "import of {} contexts ({} passages, {} tokens embedded) through the API: {:.1} s = \
         {rate:.0} tokens/s, {:.2}x the model alone",
        job["documents"]["done"],
        job["passages"],
        job["tokens"],
        wall.as_secs_f64(),
        rate / direct
    );

    let (imported, mut busy) = searching_during(&questions[args.questions..], &search, || {
        import("reimported", "（副本）")
    })?;
    println!(
        "search latency, during an import ({:.1} s): {}",
        imported.1.as_secs_f64(),
        summary(&mut busy)
    );

    let mut longest: Vec<&String> = dataset.contexts.iter().collect();
    longest.sort_by_key(|text| std::cmp::Reverse(text.len()));
    longest.truncate(128);
    let request = json!({"input": longest});
    let (answer, mut busy) = searching_during(&questions[args.questions..], &search, || {
        let started = Instant::now();
        let answer: Value = agent
            .post(&format!("{url}/v1/embeddings"))
            .send_json(&request)?
            .into_json()?;
        Ok((answer, started.elapsed()))
    })?;
    println!(
        "search latency, during one /v1/embeddings request of 128 texts ({} tokens, {:.1} s): {}",
        answer.0["usage"]["total_tokens"],
        answer.1.as_secs_f64(),
        summary(&mut busy)
    );
    Ok(())
}

/// The start of `text` up to the first sentence end after 150 bytes: a short paragraph.
fn short_paragraph(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|&(at, c)| at >= 150 && matches!(c, '。' | '！' | '？' | '.'))
        .map_or(text.len(), |(at, c)| at + c.len_utf8());
    &text[..end]
}

/// Writes documents of 1 MiB and `mib` MiB made of `paragraph` repeated, as paragraphs and as
/// one paragraph, and prints the rate of each.
fn large_documents(
    agent: &ureq::Agent,
    url: &str,
    paragraph: &str,
    mib: usize,
) -> anyhow::Result<()> {
    agent.put(&format!("{url}/v1/collections/large")).call()?;
    println!("large documents ({} bytes repeated):", paragraph.len());
    for (layout, separator) in [("paragraphs", "\n\n"), ("one paragraph", "")] {
        for size in [1, mib] {
            let copies = (size << 20) / (paragraph.len() + separator.len());
            let text = vec![paragraph; copies].join(separator);
            let path = format!(
                "{url}/v1/collections/large/documents/{size}-{}",
                layout.len()
            );
            let started = Instant::now();
            let written: Value = agent
                .put(&path)
                .send_json(json!({"text": text}))?
                .into_json()?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "  {layout}, {size} MiB ({} passages): {seconds:.1} s = {:.2} MiB/s",
                written["passages"],
                text.len() as f64 / f64::from(1 << 20) / seconds
            );
        }
    }
    Ok(())
}

/// Runs `work` while one client asks `questions` in turn, and returns its result with the
/// latencies of the searches made meanwhile.
fn searching_during<T: Send>(
    questions: &[&str],
    search: &(dyn Fn(&str) -> anyhow::Result<Duration> + Sync),
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Vec<Duration>)> {
    let working = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let searcher = scope.spawn(|| {
            let mut latencies = Vec::new();
            for question in questions.iter().cycle() {
                if !working.load(Ordering::Relaxed) {
                    break;
                }
                match search(question) {
                    Ok(latency) => latencies.push(latency),
                    Err(error) => eprintln!("a search failed: {error}"),
                }
            }
            latencies
        });
        let result = work();
        working.store(false, Ordering::Relaxed);
        Ok((result?, searcher.join().expect("the search thread")))
    })
}

/// `n, p50, p90, p99, max` of `latencies`, in milliseconds.
fn summary(latencies: &mut [Duration]) -> String {
    if latencies.is_empty() {
        return "no requests".into();
    }
    latencies.sort();
    let at = |p: f64| crate::percentile(latencies, p).as_secs_f64() * 1e3;
    format!(
        "n {}, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}
