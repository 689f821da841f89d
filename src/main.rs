//! The `wenda` command line: wiring only. Each subcommand lives in `commands/`.

mod commands;

use clap::{Parser, Subcommand};

// Candle allocates a fresh buffer for every tensor op; glibc hands large ones back to the kernel
// each time, and the page faults of re-mapping them cost a third of the CPU. mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wenda",
    version,
    about = "Multilingual passage retrieval (问答)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Get or inspect the embedding model.
    #[command(subcommand)]
    Model(commands::model::ModelCommand),
    /// Print the embeddings of texts as JSON lines.
    Embed(commands::embed::EmbedArgs),
    /// Measure embedding latency and throughput (a benchmark, prints figures).
    BenchEmbed(commands::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Embed(args) => commands::embed::run(args),
        Command::BenchEmbed(args) => commands::bench::run(args),
    }
}
