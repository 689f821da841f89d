//! `wenda-bench index`: dense search time, recall and memory as the index grows, for exact
//! search (f32 rows) and the fast path of large segments (int8 codes scanned, the best
//! candidates re-scored), a benchmark that prints figures.
//!
//! It needs no model and no corpus: the vectors are synthetic, deterministic (fixed seed), of the
//! model's width. `--data clustered` (the default) resembles sentence embeddings, whose cosines
//! crowd together: every row is `0.85·m + 0.35·c + 0.4·n`, normalised, where `m` is one shared
//! mean direction, `c` one of 4,096 cluster centres, `n` noise (all unit vectors, noise drawn
//! uniformly per dimension). Unrelated rows then have cosines near 0.72, rows of one cluster near
//! 0.84. Each question is a corpus row plus noise of norm 0.25 (cosine about 0.97 with it).
//! `--data uniform` draws every value uniformly: rows are unrelated (cosines near 0), so
//! a question's neighbours other than its own row differ by little.
//!
//! Recall@10 is the share of exact search's top 10 that the fast path returns. The figures are
//! for one segment's vectors; an index adds its filter test per row.

use std::time::{Duration, Instant};

use wenda::index::{DenseVectors, Hit, QuantizedVectors, CANDIDATES_PER_RESULT};

#[derive(clap::Args)]
pub struct IndexArgs {
    /// Index sizes to measure, in rows.
    #[arg(long, value_delimiter = ',', default_value = "100000,300000,1000000")]
    rows: Vec<usize>,
    /// Vector dimensions (multilingual-e5-small: 384).
    #[arg(long, default_value_t = 384)]
    dimensions: usize,
    /// Searches timed per size and search path.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// What the vectors look like (see the command's description).
    #[arg(long, value_enum, default_value_t = Data::Clustered)]
    data: Data,
    /// Candidates re-scored per result by the fast path; several values print a row each.
    #[arg(long, value_delimiter = ',', default_values_t = [CANDIDATES_PER_RESULT])]
    oversample: Vec<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Data {
    Clustered,
    Uniform,
}

/// Cluster centres of `--data clustered`.
const CLUSTERS: usize = 4_096;

pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    let dimensions = args.dimensions;
    println!(
        "{} data, {dimensions} dimensions, top {}, {} queries per size",
        match args.data {
            Data::Clustered => "clustered",
            Data::Uniform => "uniform",
        },
        args.top_k,
        args.queries
    );
    println!(
        "{:>9}  {:<20} {:>13} {:>8} {:>8} {:>8} {:>10}",
        "rows", "search", "bytes/passage", "build s", "p50 ms", "p99 ms", "recall@10"
    );
    for &rows in &args.rows {
        let mut data = Generator::new(args.data, dimensions);
        let corpus: Vec<f32> = (0..rows).flat_map(|_| data.row()).collect();
        let queries: Vec<Vec<f32>> = (0..args.queries.max(1))
            .map(|i| {
                let row = (i * 7_919) % rows;
                data.question(&corpus[row * dimensions..(row + 1) * dimensions])
            })
            .collect();

        let started = Instant::now();
        let mut exact = DenseVectors::with_capacity(dimensions, rows);
        for row in corpus.chunks_exact(dimensions) {
            exact.push(row)?;
        }
        let exact_build = started.elapsed();
        let started = Instant::now();
        let mut quantized = QuantizedVectors::with_capacity(dimensions, rows);
        for row in corpus.chunks_exact(dimensions) {
            quantized.push(row)?;
        }
        let quantized_build = started.elapsed();
        drop(corpus);

        let (times, truth): (Vec<Duration>, Vec<Vec<Hit>>) = queries
            .iter()
            .map(|query| timed(|| exact.nearest(query, args.top_k, &|_| true)))
            .unzip();
        let line = |search: &str, bytes: usize, build: Duration, times: Vec<Duration>, recall| {
            let (p50, p99) = percentiles(times);
            println!(
                "{rows:>9}  {search:<20} {:>13.0} {:>8.2} {p50:>8.2} {p99:>8.2} {recall:>10.4}",
                bytes as f64 / rows as f64,
                build.as_secs_f64(),
            );
        };
        line("exact f32", exact.size_bytes(), exact_build, times, 1.0);
        drop(exact);
        for &per_result in &args.oversample {
            let (times, found): (Vec<Duration>, Vec<Vec<Hit>>) = queries
                .iter()
                .map(|query| {
                    timed(|| {
                        quantized.nearest_oversampled(query, args.top_k, per_result, &|_| true)
                    })
                })
                .unzip();
            line(
                &format!("int8, {per_result}× re-scored"),
                quantized.size_bytes(),
                quantized_build,
                times,
                recall(&truth, &found),
            );
        }
    }
    Ok(())
}

fn timed(search: impl FnOnce() -> Vec<Hit>) -> (Duration, Vec<Hit>) {
    let started = Instant::now();
    let hits = std::hint::black_box(search());
    (started.elapsed(), hits)
}

/// The median and 99th percentile, in milliseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| crate::percentile(&times, p).as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// The mean share of each exact top k that the other search found.
fn recall(truth: &[Vec<Hit>], found: &[Vec<Hit>]) -> f64 {
    let shares = truth.iter().zip(found).map(|(truth, found)| {
        let kept = truth
            .iter()
            .filter(|t| found.iter().any(|f| f.slot == t.slot))
            .count();
        kept as f64 / truth.len().max(1) as f64
    });
    shares.sum::<f64>() / truth.len().max(1) as f64
}

/// Rows and questions of one `--data` kind, the same on every run.
struct Generator {
    random: SplitMix,
    dimensions: usize,
    /// The shared direction and the cluster centres (clustered data only).
    mean: Vec<f32>,
    centres: Vec<Vec<f32>>,
}

impl Generator {
    fn new(data: Data, dimensions: usize) -> Self {
        let mut random = SplitMix(0x5eed);
        let (mean, centres) = match data {
            Data::Clustered => (
                random.unit(dimensions),
                (0..CLUSTERS).map(|_| random.unit(dimensions)).collect(),
            ),
            Data::Uniform => (Vec::new(), Vec::new()),
        };
        Self {
            random,
            dimensions,
            mean,
            centres,
        }
    }

    fn row(&mut self) -> Vec<f32> {
        if self.centres.is_empty() {
            return (0..self.dimensions)
                .map(|_| self.random.uniform() - 0.5)
                .collect();
        }
        let centre = &self.centres[self.random.below(CLUSTERS)];
        let noise = self.random.unit(self.dimensions);
        (0..self.dimensions)
            .map(|i| 0.85 * self.mean[i] + 0.35 * centre[i] + 0.4 * noise[i])
            .collect()
    }

    /// A question near `row`: the row plus noise of a quarter of its length.
    fn question(&mut self, row: &[f32]) -> Vec<f32> {
        let length = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        let noise = self.random.unit(self.dimensions);
        let question: Vec<f32> = row
            .iter()
            .zip(noise)
            .map(|(v, n)| v / length + 0.25 * n)
            .collect();
        let length = question.iter().map(|v| v * v).sum::<f32>().sqrt();
        question.into_iter().map(|v| v / length).collect()
    }
}

/// SplitMix64: small, fast and deterministic (the figures must not depend on a random seed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A unit vector of values drawn uniformly before normalising.
    fn unit(&mut self, dimensions: usize) -> Vec<f32> {
        let values: Vec<f32> = (0..dimensions).map(|_| self.uniform() - 0.5).collect();
        let length = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.into_iter().map(|v| v / length).collect()
    }
}
