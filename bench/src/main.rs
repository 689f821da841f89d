//! `wenda-bench`: wenda's benchmarks, kept out of the product binary. The kernel benchmarks
//! (`embed`, `index`) link the library; those of the service (`serve`, `soak`, `writes`, and the
//! HTTP part of `store`) drive a `wenda serve` child process over HTTP; `restart` and `store`
//! write their large synthetic stores directly. Each prints figures and asserts nothing.

mod embed;
mod index;
#[path = "../../src/commands/model_args.rs"]
mod model_args;
mod restart;
mod serve;
mod server;
mod service;
mod soak;
mod store;
mod synthetic;
mod writes;

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Parser, Subcommand};

// The allocator of the `wenda` binary: Candle's kernels run measurably slower on glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wenda-bench",
    about = "wenda's benchmarks (print figures, assert nothing)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure embedding latency and throughput.
    Embed(embed::EmbedArgs),
    /// Measure dense search time, recall and memory per passage, exact and quantised, as the
    /// index grows.
    Index(index::IndexArgs),
    /// Measure HTTP search throughput and latency under load.
    Serve(serve::ServeArgs),
    /// Soak test: mixed traffic with idle and slow connections for minutes.
    Soak(soak::SoakArgs),
    /// Measure document writes, imports, and searches during an import.
    Writes(writes::WritesArgs),
    /// Measure how long opening a large store takes.
    Restart(restart::RestartArgs),
    /// Measure the PostgreSQL store beside the embedded one: ingest, recall, latency, size.
    Store(store::StoreArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The library's progress and model lines, as `wenda` shows them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Index(args) => index::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Writes(args) => writes::run(args),
        Command::Restart(args) => restart::run(args),
        Command::Store(args) => store::run(args),
    }
}

/// The `p` quantile (nearest rank) of sorted, non-empty `latencies`: what every benchmark that
/// prints percentiles reports.
fn percentile(latencies: &[Duration], p: f64) -> Duration {
    let rank = (latencies.len() as f64 * p).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}
