//! The `wenda serve` child process that the service benchmarks measure: the release binary an
//! operator runs, over HTTP, rather than the service opened in this process.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::model_args::ModelArgs;

/// How long a spawned server may take to load the model and the corpus folder.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Which `wenda` to start, and what else its `serve` is told.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// The `wenda` binary to start; by default the one beside this binary. `cargo run -p
    /// wenda-bench` does not build it: `cargo build --release -p wenda` does.
    #[arg(long)]
    pub wenda: Option<PathBuf>,
    /// More options for the spawned `wenda serve`, after `--` (e.g. `-- --max-in-flight 32`).
    #[arg(last = true)]
    pub serve_args: Vec<String>,
}

impl ServerArgs {
    /// `wenda serve` on a free local port with `options`, then those given after `--`.
    pub fn command<I: AsRef<OsStr>>(
        &self,
        options: impl IntoIterator<Item = I>,
    ) -> anyhow::Result<Command> {
        let mut command = Command::new(self.binary()?);
        command
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(options)
            .args(&self.serve_args);
        Ok(command)
    }

    /// --wenda, or the `wenda` beside this binary (the same target/<profile> folder).
    fn binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(wenda) = &self.wenda {
            return Ok(wenda.clone());
        }
        let bench = std::env::current_exe().context("finding wenda-bench")?;
        let wenda = bench.with_file_name(format!("wenda{}", std::env::consts::EXE_SUFFIX));
        if !wenda.exists() {
            bail!(
                "{} not found: build it (`cargo build --release -p wenda`) or give --wenda",
                wenda.display()
            );
        }
        Ok(wenda)
    }
}

/// A `wenda serve` child process: killed, and its scratch directory (if any) removed, when
/// dropped.
pub struct Spawned {
    pub child: Child,
    pub url: String,
    scratch: Option<PathBuf>,
}

/// A fresh directory path for a server's data, named after this process.
pub fn scratch_dir(bench: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wenda-bench-{bench}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Spawned {
    /// Starts `command` (see [`ServerArgs::command`]) and waits until the server is ready.
    /// `scratch` is a directory removed when the server is dropped.
    pub fn start(mut command: Command, scratch: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut child = command
            // The start-up lines and warnings, not a line per request; as text, whatever
            // WENDA_LOG_FORMAT says, since the listening address is read from it.
            .env("RUST_LOG", "warn,wenda::commands=info")
            .env("WENDA_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", command.get_program().display()))?;
        let stderr = child.stderr.take().expect("piped");
        let mut spawned = Self {
            child,
            url: String::new(),
            scratch,
        };
        let (sender, address) = std::sync::mpsc::channel();
        // Passes its log on (draining it, so the server never blocks on it) and picks out the
        // address it listens on.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("wenda serve: {line}");
                if let Some(rest) = line.split("addr=").nth(1) {
                    let _ = sender.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .context("wenda serve did not say where it listens")?;
        spawned.url = format!("http://{address}");
        spawned.wait_ready()?;
        Ok(spawned)
    }

    /// Polls `/ready` until it answers 200.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let ready = format!("{}/ready", self.url);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("wenda serve exited before it was ready ({status})");
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "wenda serve was not ready after {} s",
                    READY_TIMEOUT.as_secs()
                );
            }
            let answer = ureq::get(&ready).timeout(Duration::from_secs(5)).call();
            if answer.is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// The options that make `wenda serve` load the model `model` says, as this process does.
pub fn model_options(model: &ModelArgs) -> Vec<OsString> {
    let backend = model
        .backend
        .to_possible_value()
        .expect("no value is skipped");
    vec![
        "--model".into(),
        model.model.clone().into(),
        "--models-dir".into(),
        model.models_dir.clone().into(),
        "--backend".into(),
        backend.get_name().into(),
        "--batch-tokens".into(),
        model.batch_tokens.to_string().into(),
    ]
}
