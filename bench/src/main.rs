//! `wenda-bench`: wenda's benchmarks, kept out of the product binary. The kernel benchmarks
//! (`embed`, `index`) link the library; those of the service (`serve`, `soak`, `writes`, and the
//! HTTP part of `store`) drive a `wenda serve` child process over HTTP; `restart` and `store`
//! write their large synthetic stores directly. Each prints figures and asserts nothing.

mod answers;
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
    /// Measure extractive answer latency beside search latency.
    Answers(answers::AnswersArgs),
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
        Command::Answers(args) => answers::run(args),
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    const INVOCATION: &str = "cargo run --release -p wenda-bench --";

    /// The argument lists of the `wenda-bench` invocations in the fenced code blocks of a
    /// Markdown text, each with the line it starts on (1-based). Backslash-newline joins lines
    /// as the shell does; quotes and backslashes are taken as the shell takes them; a `#`
    /// starting a word begins a comment.
    fn invocations(markdown: &str) -> Vec<(usize, Vec<String>)> {
        let mut found = Vec::new();
        let mut in_code = false;
        let mut lines = markdown.lines().enumerate();
        while let Some((number, line)) = lines.next() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let mut command = line.to_owned();
            while command.ends_with('\\') {
                command.pop();
                match lines.next() {
                    Some((_, next)) => command.push_str(next),
                    None => break,
                }
            }
            let Some(at) = command.find(INVOCATION) else {
                continue;
            };
            found.push((number + 1, words(&command[at + INVOCATION.len()..])));
        }
        found
    }

    /// Splits a shell command line into words (no variables, globs or substitutions), up to
    /// the end of the command: `#` comment, `;`, `&`, `|` or redirection.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => words.extend(word.take()),
                '#' if word.is_none() => break,
                ';' | '&' | '|' | '<' | '>' => break,
                '\'' => word
                    .get_or_insert_default()
                    .extend(chars.by_ref().take_while(|&c| c != '\'')),
                '"' => {
                    let word = word.get_or_insert_default();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => word.extend(chars.next()),
                            c => word.push(c),
                        }
                    }
                }
                '\\' => word.get_or_insert_default().extend(chars.next()),
                c => word.get_or_insert_default().push(c),
            }
        }
        words.extend(word);
        words
    }

    #[test]
    fn extracts_invocations_from_code_blocks() {
        let markdown = r#"Run `cargo run --release -p wenda-bench -- index` in prose: not a command.

```sh
cargo run --release -p wenda-bench -- index --rows 1000,2000 # two sizes
RAYON_NUM_THREADS=1 cargo run --release -p wenda-bench -- embed \
    --dataset "../shared/data/cmrc 2018.json" \
    --queries 30 | tee out.txt
cargo run --release -p wenda-bench -- serve --url 'http://127.0.0.1:8080' -- --max-batch 8
cargo build --release
```
"#;
        let found = invocations(markdown);
        let expected: Vec<(usize, Vec<&str>)> = vec![
            (4, vec!["index", "--rows", "1000,2000"]),
            (
                5,
                vec![
                    "embed",
                    "--dataset",
                    "../shared/data/cmrc 2018.json",
                    "--queries",
                    "30",
                ],
            ),
            (
                8,
                vec![
                    "serve",
                    "--url",
                    "http://127.0.0.1:8080",
                    "--",
                    "--max-batch",
                    "8",
                ],
            ),
        ];
        assert_eq!(
            found,
            expected
                .into_iter()
                .map(|(n, w)| (n, w.into_iter().map(String::from).collect()))
                .collect::<Vec<_>>()
        );
        assert_eq!(words(r#"a\ b "c\"d" 'e\f'"#), ["a b", "c\"d", "e\\f"]);
    }

    /// Every command docs/benchmarks.md shows is one this binary accepts.
    #[test]
    fn documented_commands_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
        let Ok(markdown) = std::fs::read_to_string(&path) else {
            return; // not written yet
        };
        for (line, args) in invocations(&markdown) {
            let argv = std::iter::once("wenda-bench".to_owned()).chain(args);
            match Cli::try_parse_from(argv) {
                Ok(_) => {}
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {}
                Err(error) => panic!("{}:{line}: {error}", path.display()),
            }
        }
    }
}
