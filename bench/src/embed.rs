//! `wenda-bench embed`: embedding latency and throughput, against candle-transformers' `BertModel`
//! run in the same command as the baseline (these machines are shared, so only ratios compare).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wenda::embedding::{Backend, Embedder, Role};
use wenda::squad::Dataset;

use crate::model_args::ModelArgs;

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// SQuAD-format dataset: its questions are the queries, its contexts the passages.
    #[arg(long)]
    dataset: PathBuf,
    /// Questions timed one at a time.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Passages embedded by the baseline (it is slow); wenda's engine embeds these and then all.
    #[arg(long, default_value_t = 64)]
    baseline_passages: usize,
    /// Contexts in the full throughput run (default: all).
    #[arg(long)]
    passages: Option<usize>,
    /// Skip the candle-transformers baseline.
    #[arg(long)]
    no_baseline: bool,
}

struct Latency {
    /// Mean tokens per question, prompt and special tokens included.
    tokens: f64,
    p50: Duration,
    p90: Duration,
    mean: Duration,
    /// The least disturbed run: on a shared machine, the figure other load moves least.
    min: Duration,
}

struct Throughput {
    passages: usize,
    tokens: usize,
    elapsed: Duration,
}

impl Throughput {
    fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.elapsed.as_secs_f64()
    }
    fn passages_per_s(&self) -> f64 {
        self.passages as f64 / self.elapsed.as_secs_f64()
    }
}

fn query_latency(embedder: &Embedder, questions: &[&str]) -> anyhow::Result<Latency> {
    for q in questions.iter().take(5) {
        embedder.embed_one(Role::Query, q)?; // warm caches and thread pools
    }
    let mut times = Vec::with_capacity(questions.len());
    let mut tokens = 0;
    for q in questions {
        let started = Instant::now();
        tokens += embedder.embed_one(Role::Query, q)?.tokens;
        times.push(started.elapsed());
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Ok(Latency {
        tokens: tokens as f64 / questions.len() as f64,
        p50: at(0.5),
        p90: at(0.9),
        mean: times.iter().sum::<Duration>() / times.len() as u32,
        min: times[0],
    })
}

fn throughput(embedder: &Embedder, passages: &[String]) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let embeddings = embedder.embed(Role::Passage, passages)?;
    Ok(Throughput {
        passages: passages.len(),
        tokens: embeddings.iter().map(|e| e.tokens).sum(),
        elapsed: started.elapsed(),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let dataset = Dataset::read(&args.dataset)?;
    let questions: Vec<&str> = dataset
        .questions
        .iter()
        .take(args.queries)
        .map(|q| q.text.as_str())
        .collect();
    anyhow::ensure!(!questions.is_empty(), "the dataset has no questions");
    let subset = &dataset.contexts[..args.baseline_passages.min(dataset.contexts.len())];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "dataset {}: {} questions (timing {}), {} contexts; {threads} threads",
        args.dataset.display(),
        dataset.questions.len(),
        questions.len(),
        dataset.contexts.len()
    );

    let mut engines = vec![("wenda", Backend::from(args.model.backend))];
    if !args.no_baseline {
        engines.push(("candle-transformers", Backend::CandleTransformers));
    }
    let mut subset_rates = Vec::new();
    println!(
        "{:<20} {:>8} {:>9} {:>9} {:>9} {:>9} {:>14} {:>14}",
        "engine",
        "q tokens",
        "q p50 ms",
        "q p90 ms",
        "q mean",
        "q min",
        "subset tok/s",
        "subset psg/s"
    );
    for (label, backend) in &engines {
        let embedder = args.model.resolve_and_load(*backend)?.1;
        let latency = query_latency(&embedder, &questions)?;
        let sub = throughput(&embedder, subset)?;
        println!(
            "{label:<20} {:>8.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>14.0} {:>14.2}",
            latency.tokens,
            ms(latency.p50),
            ms(latency.p90),
            ms(latency.mean),
            ms(latency.min),
            sub.tokens_per_s(),
            sub.passages_per_s()
        );
        subset_rates.push((ms(latency.p50), sub.tokens_per_s()));
    }
    if let [(ours_p50, ours_rate), (base_p50, base_rate)] = subset_rates[..] {
        println!(
            "ratio wenda/baseline: query p50 {:.2}x faster, passage throughput {:.2}x",
            base_p50 / ours_p50,
            ours_rate / base_rate
        );
    }
    let embedder = args.model.load()?;
    let passages = &dataset.contexts[..args
        .passages
        .unwrap_or(usize::MAX)
        .min(dataset.contexts.len())];
    let all = throughput(&embedder, passages)?;
    println!(
        "wenda, {} contexts: {} tokens in {:.1} s = {:.0} tokens/s, {:.2} passages/s",
        all.passages,
        all.tokens,
        all.elapsed.as_secs_f64(),
        all.tokens_per_s(),
        all.passages_per_s()
    );
    Ok(())
}
