//! `wenda bench-index`: exact top-k search time as the index grows (a benchmark, prints figures).
//!
//! Uses random unit vectors of the model's width, so it needs no model and no corpus: the cost of
//! exact search depends only on rows × dimensions.

use std::time::{Duration, Instant};

use wenda::index::DenseVectors;

#[derive(clap::Args)]
pub struct BenchIndexArgs {
    /// Index sizes to measure, in rows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,300000,1000000"
    )]
    rows: Vec<usize>,
    /// Vector dimensions (multilingual-e5-small: 384).
    #[arg(long, default_value_t = 384)]
    dimensions: usize,
    /// Searches timed per size.
    #[arg(long, default_value_t = 50)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
}

pub fn run(args: BenchIndexArgs) -> anyhow::Result<()> {
    println!(
        "exact search, {} dimensions, top {}, {} queries per size",
        args.dimensions, args.top_k, args.queries
    );
    println!(
        "{:>10} {:>10} {:>9} {:>9} {:>12}",
        "rows", "MiB", "p50 ms", "p90 ms", "queries/s"
    );
    let mut random = Lcg(0x5eed);
    for &rows in &args.rows {
        let mut index = DenseVectors::new(args.dimensions);
        let mut vector = vec![0f32; args.dimensions];
        for _ in 0..rows {
            vector.iter_mut().for_each(|v| *v = random.next());
            index.push(&vector)?;
        }
        let mut times: Vec<Duration> = (0..args.queries.max(1))
            .map(|_| {
                vector.iter_mut().for_each(|v| *v = random.next());
                let started = Instant::now();
                std::hint::black_box(index.nearest(&vector, args.top_k, &|_| true));
                started.elapsed()
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total: Duration = times.iter().sum();
        println!(
            "{:>10} {:>10.1} {:>9.2} {:>9.2} {:>12.1}",
            rows,
            index.size_bytes() as f64 / (1 << 20) as f64,
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            times.len() as f64 / total.as_secs_f64()
        );
    }
    Ok(())
}

/// A small deterministic generator: the figures must not depend on a random seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}
