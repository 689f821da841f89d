//! `wenda-bench store`: the PostgreSQL store beside the embedded one, over the same passages
//! (a benchmark: it prints figures and asserts nothing).
//!
//! Embedding 200,000 real passages would take this machine most of a day, so their vectors are
//! derived from real ones: the dataset's contexts are embedded here (passage role), and passage
//! `j` gets context `j mod C`'s vector, plus 0.3 times a randomly chosen other context's, plus
//! isotropic Gaussian noise of norm about `--noise`, normalised. Neighbourhoods are thus
//! clusters around real passages, bridged as real topics are, not uniform noise (where every
//! neighbour is as far as any other and no index does well). The questions are the dataset's
//! real questions, embedded as queries. Every tenth document-level shard value is kept in the
//! passages' metadata (`shard`, 0 to 99) for a filter that admits 1 % of them.
//!
//! For each store it prints: the rate at which ready vectors are ingested (documents of 10
//! passages written 1,000 documents per transaction through the store's write path), the time
//! to open it and the memory then held, recall@10 of dense search against exact search over
//! the same vectors at each `--recall-ef` (without and with the 1 % filter), all in this
//! process; then search latency through the HTTP API of `wenda serve` over the store (see
//! [`ServerArgs`]) at concurrency 1 and 16 (hybrid; dense with the filter), and sizes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rayon::prelude::*;
use serde_json::{json, Value};
use wenda::corpus::PassageId;
use wenda::embedding::{ModelFingerprint, Role, TextKey};
use wenda::index::{dot, Analyzer, Filter, IndexReader, NearestQuery, Scalar};
use wenda::index::{MetadataCondition, MetadataFilter, MetadataTest};
use wenda::squad::Dataset;
use wenda::store::{
    DocumentRecord, DocumentStore, DocumentWrite, PostgresStore, SqliteStore, Store, StoredPassage,
    VectorSearchSettings, WriteBatch,
};

use crate::model_args::ModelArgs;
use crate::serve::{print_header, print_level, run_level};
use crate::server::{model_options, ServerArgs, Spawned};
use crate::{service, synthetic};

#[derive(clap::Args)]
pub struct StoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The PostgreSQL database (with pgvector) measured beside the embedded store, e.g.
    /// `postgres://wenda@127.0.0.1:5432/postgres`.
    #[arg(long = "store", env = "WENDA_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Passages in the benchmark collection.
    #[arg(long, default_value_t = 200_000)]
    passages: usize,
    /// SQuAD-format dataset: its contexts seed the vectors, its questions are asked.
    #[arg(long)]
    dataset: PathBuf,
    /// Questions for recall and latency.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Requests timed per latency level.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// `ef_search` values at which recall is measured.
    #[arg(long, value_delimiter = ',', default_value = "40,100,200")]
    recall_ef: Vec<usize>,
    /// Norm of the noise added to each derived vector (before normalising).
    #[arg(long, default_value_t = 0.5)]
    noise: f32,
    /// Where the embedded store is built (kept: a second run with as many passages skips
    /// ingestion; so does the PostgreSQL collection).
    #[arg(long, default_value = ".wenda-data/bench-store")]
    embedded_dir: PathBuf,
    /// Also compare full-precision `vector` with `halfvec` HNSW indexes over the same vectors
    /// (build time, size, recall): a scratch table, dropped after.
    #[arg(long)]
    compare_types: bool,
}

const COLLECTION: &str = "bench";
const PER_DOCUMENT: usize = 10;
const SHARDS: usize = 100;
const FILTERED_SHARD: usize = 7;
const K: usize = 10;

pub fn run(args: StoreArgs) -> anyhow::Result<()> {
    let url = &args.database_url;
    let dataset = Dataset::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let (embedder, fingerprint) = service::load(&args.model)?;
    let dimensions = embedder.dimensions();

    let started = Instant::now();
    let contexts: Vec<String> = dataset.contexts.clone();
    let bases: Vec<Vec<f32>> = embedder
        .embed(Role::Passage, &contexts)?
        .into_iter()
        .map(|e| e.vector)
        .collect();
    let questions: Vec<String> = dataset
        .questions
        .iter()
        .take(args.queries)
        .map(|q| q.text.clone())
        .collect();
    let query_vectors: Vec<Vec<f32>> = embedder
        .embed(Role::Query, &questions)?
        .into_iter()
        .map(|e| e.vector)
        .collect();
    drop(embedder);
    println!(
        "wenda-bench store: {} passages derived from {} contexts (noise {}), {} questions; \
         embedded in {:.1} s",
        args.passages,
        bases.len(),
        args.noise,
        questions.len(),
        started.elapsed().as_secs_f64()
    );
    let vectors = derive(&bases, args.passages, args.noise);
    let started = Instant::now();
    let exact: Vec<Vec<usize>> = query_vectors
        .par_iter()
        .map(|q| exact_top(&vectors, q, |_| true))
        .collect();
    let exact_filtered: Vec<Vec<usize>> = query_vectors
        .par_iter()
        .map(|q| exact_top(&vectors, q, |j| shard(j) == FILTERED_SHARD))
        .collect();
    println!(
        "exact top {K} of every question computed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let corpus = Corpus {
        texts: &contexts,
        vectors: &vectors,
        analyzer: Analyzer::default(),
    };

    {
        let store = SqliteStore::open(&args.embedded_dir, fingerprint, dimensions)?;
        ingest("embedded (SQLite + memory)", &store, &corpus)?;
    }
    {
        let store = PostgresStore::open(
            url,
            fingerprint,
            dimensions,
            &VectorSearchSettings::default(),
        )?;
        ingest("PostgreSQL + pgvector", &store, &corpus)?;
    }
    let queries = Queries {
        vectors: &query_vectors,
        exact: &exact,
        exact_filtered: &exact_filtered,
        texts: &questions,
    };
    let embedded = Measured::Embedded(args.embedded_dir.clone());
    let mut embedded_server = server_command(
        &args,
        ["--data-dir".into(), args.embedded_dir.clone().into()],
    )?;
    // A WENDA_DATABASE_URL this command was given would make it serve PostgreSQL instead.
    embedded_server.env_remove("WENDA_DATABASE_URL");
    measure("embedded", &args, embedded, embedded_server, &queries)?;
    let postgres = Measured::Postgres(url.clone());
    let postgres_server = server_command(&args, ["--store".into(), url.into()])?;
    measure("PostgreSQL", &args, postgres, postgres_server, &queries)?;
    print_sizes(&args, url)?;
    if args.compare_types {
        compare_types(url, fingerprint, &queries, &args.recall_ef)?;
    }
    Ok(())
}

/// Vector `j` of `n`: see the module documentation.
fn derive(bases: &[Vec<f32>], n: usize, noise: f32) -> Vec<Vec<f32>> {
    let dimensions = bases[0].len();
    (0..n)
        .into_par_iter()
        .map(|j| {
            let mut random = Random(j as u64 ^ 0x5851_f42d_4c95_7f2d);
            let own = &bases[j % bases.len()];
            let other = &bases[random.below(bases.len())];
            let scale = noise / (dimensions as f32).sqrt();
            let mut vector: Vec<f32> = own
                .iter()
                .zip(other)
                .map(|(a, b)| a + 0.3 * b + scale * random.gaussian())
                .collect();
            let norm = dot(&vector, &vector).sqrt();
            vector.iter_mut().for_each(|v| *v /= norm);
            vector
        })
        .collect()
}

/// xorshift64*, enough for benchmark data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn shard(passage: usize) -> usize {
    (passage / PER_DOCUMENT) % SHARDS
}

/// The `K` passages most similar to `query` among those `admit` accepts, best first.
fn exact_top(vectors: &[Vec<f32>], query: &[f32], admit: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = vectors
        .iter()
        .enumerate()
        .filter(|(j, _)| admit(*j))
        .map(|(j, v)| (dot(query, v), j))
        .collect();
    let k = K.min(scored.len());
    if k > 0 {
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    }
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, j)| j).collect()
}

/// What the benchmark collection is made of.
struct Corpus<'a> {
    texts: &'a [String],
    vectors: &'a [Vec<f32>],
    analyzer: Analyzer,
}

impl Corpus<'_> {
    /// Document `d`: its record and passages.
    fn document(&self, d: usize) -> (DocumentRecord, Vec<StoredPassage>) {
        let first = d * PER_DOCUMENT;
        let last = (first + PER_DOCUMENT).min(self.vectors.len());
        let metadata = [("shard".to_owned(), json!(shard(first)))]
            .into_iter()
            .collect();
        let texts = (first..last)
            .map(|j| {
                // The start of a real context, numbered so that every text (and so every
                // vector key) is distinct.
                let context: String = self.texts[j % self.texts.len()].chars().take(60).collect();
                (PassageId::new(format!("p{j}")), format!("{context}（{j}）"))
            })
            .collect();
        synthetic::document(format!("doc-{d}"), texts, metadata, &self.analyzer)
    }
}

/// Writes the corpus into `store`'s benchmark collection, unless it holds it already.
fn ingest(name: &str, store: &dyn DocumentStore, corpus: &Corpus<'_>) -> anyhow::Result<()> {
    let passages = corpus.vectors.len();
    if let Some(existing) = store.collection(COLLECTION)? {
        if existing.passages == passages {
            println!("{name}: {passages} passages already ingested (kept from an earlier run)");
            return Ok(());
        }
        store.delete_collection(COLLECTION)?;
    }
    store.create_collection(COLLECTION)?;
    // The terms are this analyzer's: opening the store need not analyse them again.
    store.set_setting("analyzer_revision", &Analyzer::REVISION.to_string())?;
    let documents = passages.div_ceil(PER_DOCUMENT);
    let started = Instant::now();
    let mut writing = Duration::ZERO;
    for first in (0..documents).step_by(1_000) {
        let batch: Vec<(DocumentRecord, Vec<StoredPassage>)> = (first
            ..(first + 1_000).min(documents))
            .into_par_iter()
            .map(|d| corpus.document(d))
            .collect();
        let vectors: Vec<(TextKey, &[f32])> = batch
            .iter()
            .flat_map(|(_, passages)| passages)
            .map(|p| {
                let j: usize = p.passage.id.as_str()[1..].parse().expect("p{j}");
                (p.text_key, corpus.vectors[j].as_slice())
            })
            .collect();
        let write = Instant::now();
        store.write(
            COLLECTION,
            &WriteBatch {
                put: batch
                    .iter()
                    .map(|(record, passages)| DocumentWrite { record, passages })
                    .collect(),
                vectors,
                ..WriteBatch::default()
            },
        )?;
        writing += write.elapsed();
    }
    println!(
        "{name}: ingested {passages} passages with ready vectors in {:.1} s: {:.0} passages/s \
         (store writes alone {:.1} s)",
        started.elapsed().as_secs_f64(),
        passages as f64 / started.elapsed().as_secs_f64(),
        writing.as_secs_f64()
    );
    Ok(())
}

/// What a timed request sends for a question.
type RequestBody = dyn Fn(&str) -> Value + Sync;

struct Queries<'a> {
    vectors: &'a [Vec<f32>],
    exact: &'a [Vec<usize>],
    exact_filtered: &'a [Vec<usize>],
    texts: &'a [String],
}

fn shard_filter() -> Filter {
    Filter {
        metadata: vec![MetadataFilter::Field(MetadataCondition {
            key: "shard".into(),
            test: MetadataTest::Equals(Scalar::Number(FILTERED_SHARD as f64)),
        })],
        ..Filter::default()
    }
}

/// `wenda serve` over the benchmark's store (`store_options` say which), without a corpus
/// folder, with this command's model.
fn server_command<const N: usize>(
    args: &StoreArgs,
    store_options: [OsString; N],
) -> anyhow::Result<Command> {
    let mut options = vec![OsString::from("--no-corpus")];
    options.extend(store_options);
    options.extend(model_options(&args.model));
    args.server.command(options)
}

/// A store this bench measures.
enum Measured {
    /// The embedded SQLite store in this directory.
    Embedded(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

impl Measured {
    fn open(&self, model: ModelFingerprint, dimensions: usize) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Self::Embedded(directory) => Arc::new(SqliteStore::open(directory, model, dimensions)?),
            Self::Postgres(url) => Arc::new(PostgresStore::open(
                url,
                model,
                dimensions,
                &VectorSearchSettings::default(),
            )?),
        })
    }
}

/// Opens the store as a server does, in this process, and measures recall over it; then the
/// latency of searches through `command`, a server over it.
fn measure(
    name: &str,
    args: &StoreArgs,
    store: Measured,
    command: Command,
    queries: &Queries<'_>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (embedder, fingerprint) = service::load(&args.model)?;
    let store = store.open(fingerprint, embedder.dimensions())?;
    let (service, _) = service::open(Arc::new(embedder), &args.model.model, store)?;
    println!(
        "\n{name}: opened in {:.1} s (model load included); vectors in this process {:.0} MiB",
        started.elapsed().as_secs_f64(),
        service.totals().index_bytes as f64 / (1024.0 * 1024.0),
    );
    let reader = service.reader(COLLECTION)?;
    let filter = shard_filter();
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "ef_search", "recall@10", "p50 ms", "filtered", "recall@10", "p50 ms"
    );
    for &ef in &args.recall_ef {
        let all = recall(
            &*reader,
            queries.vectors,
            queries.exact,
            &Filter::default(),
            ef,
        )?;
        let some = recall(
            &*reader,
            queries.vectors,
            queries.exact_filtered,
            &filter,
            ef,
        )?;
        println!(
            "{ef:>10} {:>10.4} {:>12.2} {:>10} {:>10.4} {:>12.2}",
            all.0, all.1, "1 %", some.0, some.1
        );
    }
    // The server opens the store itself: one copy of the index in memory at a time.
    drop(reader);
    drop(service);
    let server = Spawned::start(command, None)?;
    let endpoint = format!("{}/v1/collections/{COLLECTION}/search", server.url);
    let bodies: [(&str, &RequestBody); 3] = [
        ("hybrid", &|q: &str| json!({"query": q, "top_k": K})),
        (
            "dense",
            &|q: &str| json!({"query": q, "top_k": K, "mode": "dense"}),
        ),
        ("dense, 1 % filter", &|q: &str| {
            json!({"query": q, "top_k": K, "mode": "dense",
                   "filter": {"metadata": {"shard": FILTERED_SHARD}}})
        }),
    ];
    run_level(
        &endpoint,
        &queries.texts[..20.min(queries.texts.len())],
        1,
        20,
        bodies[0].1,
    );
    for (label, body) in bodies {
        println!("{name}, HTTP search ({label}, top_k {K}):");
        print_header();
        for concurrency in [1, 16] {
            print_level(&run_level(
                &endpoint,
                queries.texts,
                concurrency,
                args.requests,
                body,
            ));
        }
    }
    Ok(())
}

/// Recall@K of dense search at `ef_search` against `exact`, and the median time of one search.
fn recall(
    reader: &dyn IndexReader,
    vectors: &[Vec<f32>],
    exact: &[Vec<usize>],
    filter: &Filter,
    ef: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut found = 0;
    let mut wanted = 0;
    let mut times = Vec::with_capacity(vectors.len());
    for (vector, expected) in vectors.iter().zip(exact) {
        let started = Instant::now();
        let hits = reader.nearest(&NearestQuery {
            vector,
            k: K,
            filter,
            exclude: None,
            ef_search: Some(ef),
        })?;
        times.push(started.elapsed());
        let got: Vec<usize> = hits
            .iter()
            .map(|hit| {
                reader.passage(hit.slot).id.as_str()[1..]
                    .parse()
                    .unwrap_or(usize::MAX)
            })
            .collect();
        found += expected.iter().filter(|j| got.contains(j)).count();
        wanted += expected.len();
    }
    times.sort();
    let p50 = times
        .get(times.len() / 2)
        .map_or(0.0, |t| t.as_secs_f64() * 1e3);
    Ok((found as f64 / wanted.max(1) as f64, p50))
}

fn print_sizes(args: &StoreArgs, url: &str) -> anyhow::Result<()> {
    let sqlite = std::fs::metadata(args.embedded_dir.join(wenda::store::DATABASE_FILE))
        .map_or(0, |m| m.len());
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let row = client.query_one(
        "SELECT pg_total_relation_size('passages'), pg_relation_size('passages_by_embedding'),
                pg_total_relation_size('vectors'), pg_database_size(current_database())",
        &[],
    )?;
    let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "\nsizes: SQLite file {:.0} MiB; PostgreSQL passages {:.0} MiB (HNSW index {:.0} MiB), \
         vectors table {:.0} MiB, whole database {:.0} MiB",
        sqlite as f64 / (1024.0 * 1024.0),
        mib(row.get(0)),
        mib(row.get(1)),
        mib(row.get(2)),
        mib(row.get(3)),
    );
    Ok(())
}

/// Builds `vector` and `halfvec` HNSW indexes over the same vectors in a scratch table and
/// compares build time, size and recall.
fn compare_types(
    url: &str,
    model: ModelFingerprint,
    queries: &Queries<'_>,
    efs: &[usize],
) -> anyhow::Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let dimensions = queries.vectors[0].len();
    client.batch_execute("DROP TABLE IF EXISTS wenda_bench_types")?;
    client.execute(
        &format!(
            "CREATE TABLE wenda_bench_types AS
             SELECT p.passage_id, v.embedding::vector({dimensions}) AS full_precision,
                    v.embedding::halfvec({dimensions}) AS half_precision
             FROM passages p JOIN vectors v ON v.model = $1 AND v.text_key = p.text_key
             WHERE p.collection_id = (SELECT id FROM collections WHERE name = '{COLLECTION}')"
        ),
        &[&model.as_bytes().as_slice()],
    )?;
    client.batch_execute("SET maintenance_work_mem = '2GB'")?;
    println!("\nvector against halfvec, HNSW (m 16, ef_construction 64) over the same vectors:");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "type", "build s", "index MiB", "ef_search", "recall@10", "p50 ms"
    );
    for (column, ops, cast) in [
        ("full_precision", "vector_cosine_ops", "vector"),
        ("half_precision", "halfvec_cosine_ops", "halfvec"),
    ] {
        let started = Instant::now();
        client.batch_execute(&format!(
            "CREATE INDEX wenda_bench_{column} ON wenda_bench_types USING hnsw ({column} {ops})"
        ))?;
        let build = started.elapsed().as_secs_f64();
        let size: i64 = client
            .query_one(
                &format!("SELECT pg_relation_size('wenda_bench_{column}')"),
                &[],
            )?
            .get(0);
        let search = client.prepare(&format!(
            "SELECT passage_id FROM wenda_bench_types
             ORDER BY {column} <=> $1::vector::{cast} LIMIT {K}"
        ))?;
        for &ef in efs {
            client.batch_execute(&format!("SET hnsw.ef_search = {ef}"))?;
            let (mut found, mut wanted, mut times) = (0, 0, Vec::new());
            for (vector, expected) in queries.vectors.iter().zip(queries.exact) {
                let started = Instant::now();
                let rows = client.query(&search, &[&pgvector::Vector::from(vector.clone())])?;
                times.push(started.elapsed());
                let got: Vec<usize> = rows
                    .iter()
                    .map(|row| row.get::<_, &str>(0)[1..].parse().unwrap_or(usize::MAX))
                    .collect();
                found += expected.iter().filter(|j| got.contains(j)).count();
                wanted += expected.len();
            }
            times.sort();
            println!(
                "{:>10} {build:>10.1} {:>10.0} {ef:>10} {:>10.4} {:>10.2}",
                cast,
                size as f64 / (1024.0 * 1024.0),
                found as f64 / wanted.max(1) as f64,
                times[times.len() / 2].as_secs_f64() * 1e3
            );
        }
    }
    client.batch_execute("DROP TABLE wenda_bench_types")?;
    Ok(())
}
