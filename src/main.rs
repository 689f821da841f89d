//! The `wenda` command line: wiring only. Each subcommand lives in `commands/`.

mod commands;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

// Candle allocates a fresh buffer for every tensor op; glibc hands large ones back to the kernel
// each time, and the page faults of re-mapping them cost a third of the CPU. mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands memory freed so far back to the OS. Loading the model frees a few hundred MB of
/// f32 tensors (the weights as read, before they are packed) that mimalloc would otherwise
/// keep for reuse for the life of the process.
fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions: any thread may call it at any time, and it
    // only returns pages no allocation uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[derive(Parser)]
#[command(
    name = "wenda",
    version,
    about = "Multilingual passage retrieval (问答)"
)]
struct Cli {
    /// Log lines as text for people, or as JSON objects (one per line) for log shippers.
    #[arg(long, global = true, env = "WENDA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the collections over HTTP (and keep the corpus folder in collection `default`).
    Serve(commands::serve::ServeArgs),
    /// Answer one question from the command line.
    Query(commands::query::QueryArgs),
    /// Copy the store consistently, even while a server uses it.
    Backup(commands::data::BackupArgs),
    /// Write a collection's documents and vectors as JSON lines.
    Export(commands::data::ExportArgs),
    /// Read a collection written by `wenda export` (reusing its vectors under the same model).
    Import(commands::data::ImportArgs),
    /// Get or inspect the embedding model.
    #[command(subcommand)]
    Model(commands::model::ModelCommand),
    /// Print the embeddings of texts as JSON lines.
    Embed(commands::embed::EmbedArgs),
    /// Measure retrieval quality per ranking mode on a dataset or question set (prints figures).
    Eval(commands::eval::EvalArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Query(args) => commands::query::run(args),
        Command::Backup(args) => commands::data::backup(args),
        Command::Export(args) => commands::data::export(args),
        Command::Import(args) => commands::data::import(args),
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Embed(args) => commands::embed::run(args),
        Command::Eval(args) => commands::eval::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Benchmarks live in the `wenda-bench` binary (bench/): an operator's `wenda --help` lists
    /// only what running the service takes.
    #[test]
    fn no_bench_subcommand() {
        let names: Vec<String> = super::Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with("bench")), "{names:?}");
    }
}
