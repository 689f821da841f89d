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
    /// Search: the passages that best answer a question, from the command line.
    Query(commands::query::QueryArgs),
    /// Answer a question with sentences quoted from the documents, and their sources.
    Ask(commands::ask::AskArgs),
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
        Command::Ask(args) => commands::ask::run(args),
        Command::Backup(args) => commands::data::backup(args),
        Command::Export(args) => commands::data::export(args),
        Command::Import(args) => commands::data::import(args),
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Embed(args) => commands::embed::run(args),
        Command::Eval(args) => commands::eval::run(args),
    }
}

/// The docs' promises about this binary, checked against it: every `wenda` command written in a
/// ```` ```sh ```` block of README.md, ARCHITECTURE.md or docs/*.md parses with the binary's own
/// argument parser, and every relative Markdown link points at a file (and heading) that exists.
/// A renamed flag or a moved section then fails a test instead of a reader.
///
/// What counts as a command: a line of a `sh` block (joined with the lines its trailing `\`
/// continues onto, leading spaces and `NAME=value` environment assignments left out) whose words
/// start with `wenda` or with `cargo run --release --`. Its words end at the first unquoted
/// `#` comment, pipe, `;`, `&&`, `&` or redirection. Nothing is skipped: a placeholder must be
/// written as a value that parses (`postgres://…`, `KEY`), not as `<url>`. Commands of other
/// binaries, `cargo run --release -p wenda-bench -- …` among them, are not this binary's and are
/// left alone.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Benchmarks live in the `wenda-bench` binary (bench/): an operator's `wenda --help` lists
    /// only what running the service takes.
    #[test]
    fn no_bench_subcommand() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with("bench")), "{names:?}");
    }

    /// README.md, ARCHITECTURE.md and every docs/*.md, read from the source tree.
    fn documents() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
        let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
            .expect("docs/ exists")
            .map(|entry| entry.expect("docs/ is readable").path())
            .filter(|path| path.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        paths.extend(docs);
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (path, text)
            })
            .collect()
    }

    /// The path of `path` below the repository, for messages.
    fn shown(path: &Path) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Lines of `text` outside fenced code blocks, with their 1-based numbers.
    fn prose(text: &str) -> Vec<(usize, &str)> {
        let mut fenced = false;
        let mut lines = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            } else if !fenced {
                lines.push((number + 1, line));
            }
        }
        lines
    }

    /// The logical lines of `text`'s ```` ```sh ```` blocks (`\` continuations joined), each with
    /// the number of its first line.
    fn sh_lines(text: &str) -> Vec<(usize, String)> {
        let mut in_sh = false;
        let mut lines = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if !in_sh {
                in_sh = trimmed == "```sh";
                continue;
            }
            if trimmed.starts_with("```") {
                in_sh = false;
                lines.extend(pending.take());
                continue;
            }
            let (start, mut joined) = pending.take().unwrap_or((number + 1, String::new()));
            match trimmed.strip_suffix('\\') {
                Some(continued) => {
                    joined.push_str(continued);
                    joined.push(' ');
                    pending = Some((start, joined));
                }
                None => {
                    joined.push_str(trimmed);
                    lines.push((start, joined));
                }
            }
        }
        lines
    }

    /// The words of the first command of a shell line, as the shell would split them: simple
    /// single and double quoting and backslash escapes; stops at an unquoted comment, pipe,
    /// `;`, `&` (so `&&` too) or redirection.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        // Whether a word has begun (`''` is a word, though empty).
        let mut started = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    started = true;
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                        word.push(c);
                    }
                }
                '"' => {
                    started = true;
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                                word.extend(chars.next());
                            }
                            c => word.push(c),
                        }
                    }
                }
                '\\' => {
                    started = true;
                    word.extend(chars.next());
                }
                '#' if !started => break,
                '|' | ';' | '&' => break,
                '>' | '<' => {
                    // `2>file`: the descriptor's digits belong to the redirection.
                    if word.chars().all(|c| c.is_ascii_digit()) {
                        started = false;
                    }
                    break;
                }
                c if c.is_whitespace() => {
                    if started {
                        words.push(std::mem::take(&mut word));
                        started = false;
                    }
                }
                c => {
                    started = true;
                    word.push(c);
                }
            }
        }
        if started {
            words.push(word);
        }
        words
    }

    /// The arguments (program name first) of a line that runs this binary, if it does.
    fn wenda_command(line: &str) -> Option<Vec<String>> {
        let words = words(line);
        let is_assignment = |word: &String| {
            word.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        };
        let words: Vec<String> = words.into_iter().skip_while(is_assignment).collect();
        let cargo_run = ["cargo", "run", "--release", "--"];
        if words.first().is_some_and(|w| w == "wenda") {
            Some(words)
        } else if words.len() > cargo_run.len() && words[..cargo_run.len()] == cargo_run {
            let mut args = vec!["wenda".to_owned()];
            args.extend_from_slice(&words[cargo_run.len()..]);
            Some(args)
        } else {
            None
        }
    }

    #[test]
    fn shell_lines_split_as_the_shell_splits_them() {
        assert_eq!(
            words(r#"wenda query "a \"b\" c" --top-k 3 'd e'  # a comment"#),
            ["wenda", "query", "a \"b\" c", "--top-k", "3", "d e"]
        );
        assert_eq!(words("wenda serve 2>log &"), ["wenda", "serve"]);
        assert_eq!(
            words("wenda export > out && echo done"),
            ["wenda", "export"]
        );
        assert_eq!(words("wenda embed x | head"), ["wenda", "embed", "x"]);
        assert_eq!(words("wenda embed a#b"), ["wenda", "embed", "a#b"]);
        assert_eq!(
            wenda_command("A=1 B_2=x cargo run --release -- model info"),
            Some(vec!["wenda".into(), "model".into(), "info".into()])
        );
        assert_eq!(
            wenda_command("cargo run --release -p wenda-bench -- embed"),
            None
        );
        assert_eq!(wenda_command("curl -s localhost:8080/health"), None);
        let text = "```sh\nwenda serve \\\n  --addr 0.0.0.0:8080\n```\n```text\nwenda x\n```\n";
        assert_eq!(
            sh_lines(text),
            [(2, "wenda serve  --addr 0.0.0.0:8080".to_owned())]
        );
    }

    #[test]
    fn every_wenda_command_in_the_docs_parses() {
        let mut checked = 0;
        let mut failures = Vec::new();
        for (path, text) in documents() {
            for (line, command) in sh_lines(&text) {
                let Some(args) = wenda_command(&command) else {
                    continue;
                };
                checked += 1;
                if let Err(error) = Cli::try_parse_from(&args) {
                    use clap::error::ErrorKind;
                    if !matches!(
                        error.kind(),
                        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                    ) {
                        let why = error.to_string();
                        let why = why.lines().next().unwrap_or_default();
                        failures.push(format!("{}:{line}: {command}\n    {why}", shown(&path)));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "commands that do not parse:\n{}",
            failures.join("\n")
        );
        // The README's first command alone makes one; finding few means the extraction broke.
        assert!(
            checked >= 10,
            "only {checked} wenda commands found in the docs"
        );
    }

    /// GitHub's anchor for a heading: lower case, spaces as `-`, punctuation other than `-` and
    /// `_` left out (letters of any script kept).
    fn anchor(heading: &str) -> String {
        heading
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c),
                _ => None,
            })
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// The anchors of `text`'s headings, duplicates numbered as GitHub numbers them.
    fn anchors(text: &str) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut anchors = Vec::new();
        for (_, line) in prose(text) {
            let Some(heading) = line.strip_prefix('#') else {
                continue;
            };
            let heading = heading.trim_start_matches('#');
            if !heading.starts_with(' ') {
                continue;
            }
            let base = anchor(heading.trim());
            let count = seen.entry(base.clone()).or_insert(0);
            anchors.push(match *count {
                0 => base.clone(),
                n => format!("{base}-{n}"),
            });
            *count += 1;
        }
        anchors
    }

    /// The targets of the Markdown links of `text` (outside code), with their line numbers.
    fn links(text: &str) -> Vec<(usize, String)> {
        let mut links = Vec::new();
        for (number, line) in prose(text) {
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                rest = &rest[at + 2..];
                let end = rest.find(')').unwrap_or(rest.len());
                let target = rest[..end].split_whitespace().next().unwrap_or_default();
                links.push((number, target.to_owned()));
                rest = &rest[end..];
            }
        }
        links
    }

    #[test]
    fn every_relative_link_in_the_docs_points_at_something() {
        let documents = documents();
        let anchors_of: HashMap<PathBuf, Vec<String>> = documents
            .iter()
            .map(|(path, text)| (path.clone(), anchors(text)))
            .collect();
        let mut broken = Vec::new();
        let mut checked = 0;
        for (path, text) in &documents {
            for (line, target) in links(text) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
                let linked = if file.is_empty() {
                    path.clone()
                } else {
                    path.parent().expect("a file has a folder").join(file)
                };
                let problem = if !linked.exists() {
                    Some("no such file")
                } else if fragment.is_empty() {
                    None
                } else {
                    match anchors_of.get(&normalise(&linked)) {
                        Some(anchors) if !anchors.iter().any(|a| a == fragment) => {
                            Some("no such heading")
                        }
                        // A heading in a checked document, or a file whose headings are not read.
                        _ => None,
                    }
                };
                if let Some(problem) = problem {
                    broken.push(format!("{}:{line}: ({target}): {problem}", shown(path)));
                }
            }
        }
        assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
        assert!(
            checked >= 10,
            "only {checked} relative links found in the docs"
        );
    }

    /// `path` without `.` and `..` components, to compare with the documents' own paths.
    fn normalise(path: &Path) -> PathBuf {
        let mut normal = PathBuf::new();
        for component in path.components() {
            match component {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                other => normal.push(other),
            }
        }
        normal
    }

    #[test]
    fn anchors_are_githubs() {
        assert_eq!(
            anchor("Use from LangChain / LlamaIndex"),
            "use-from-langchain--llamaindex"
        );
        assert_eq!(anchor("Adding a `wenda` route"), "adding-a-wenda-route");
        assert_eq!(
            anchors("# A\n```sh\n# not a heading\n```\n## A\n#hashtag\n"),
            ["a", "a-1"]
        );
    }
}
