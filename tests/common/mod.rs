//! What the HTTP tests share: the real model, the service over a data directory holding the
//! seed corpus, served on an ephemeral port, the `wenda` binary as a child process, and small
//! clients for the JSON API.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use wenda::embedding::{
    Backend, BatchLimits, Embedder, ModelFingerprint, ModelLocator, DEFAULT_MODEL,
};
use wenda::http::{self, Access, ApiKeys, AppState, Exposure, Limits, Transport};
use wenda::index::DEFAULT_QUANTIZE_FROM;
use wenda::llm::{LlmClient, LlmConfig};
use wenda::search::DEFAULT_LEXICAL_WEIGHT;
use wenda::service::{ModelSummary, Service, Settings, DEFAULT_MAX_METADATA_BYTES};
use wenda::store::DATABASE_FILE;
use wenda::store::{SqliteStore, Store};

/// A server running on a background runtime.
pub struct Server {
    pub url: String,
    pub service: Option<Arc<Service>>,
    /// The store's data directory, when the service was opened.
    pub data_dir: Option<PathBuf>,
    _runtime: tokio::runtime::Runtime,
}

pub struct Model {
    pub embedder: Arc<Embedder>,
    pub fingerprint: ModelFingerprint,
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let files = ModelLocator::new(root().join("models"))
            .resolve(DEFAULT_MODEL)
            .expect("the model (run ./scripts/test.sh, which fetches it)");
        let embedder = Embedder::load(&files, Backend::Native, BatchLimits::default()).unwrap();
        let fingerprint = ModelFingerprint::of(&files, &embedder).unwrap();
        Model {
            embedder: Arc::new(embedder),
            fingerprint,
        }
    })
}

/// A fresh, empty directory for this test process.
pub fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wenda-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// Settings for a service whose embedding queue takes `queue_capacity` requests.
pub fn settings(queue_capacity: usize) -> Settings {
    Settings {
        queue_capacity,
        max_batch: 32,
        lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        quantize_from: DEFAULT_QUANTIZE_FROM,
        max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
        no_answer_text: None,
        llm: None,
    }
}

/// The SQLite store in `data_dir` for the test model, capped at `max_store_bytes`.
pub fn sqlite_store(data_dir: &Path, max_store_bytes: Option<u64>) -> Arc<dyn Store> {
    let model = model();
    let store =
        SqliteStore::open(data_dir, model.fingerprint, model.embedder.dimensions()).unwrap();
    if let Some(bytes) = max_store_bytes {
        store.set_size_limit(bytes).unwrap();
    }
    Arc::new(store)
}

/// Opens the service with the test model over `store`.
pub fn open_core(store: Arc<dyn Store>, settings: &Settings) -> Arc<Service> {
    let model = model();
    let summary = ModelSummary {
        id: DEFAULT_MODEL.into(),
        dimensions: model.embedder.dimensions(),
        pooling: "mean".into(),
        max_tokens: model.embedder.config().max_tokens,
    };
    Service::open(
        Arc::clone(&model.embedder),
        summary,
        store,
        settings,
        &mut |_, _| {},
    )
    .unwrap()
    .0
}

/// A data directory holding the seed corpus in `default`, embedded once per test binary and
/// copied for each server, so each has its own store without embedding again.
pub fn seeded_data_dir(name: &str) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = scratch("seeded-template");
        let service = open_core(sqlite_store(&dir, None), &settings(64));
        service
            .sync_corpus(
                &[root().join("seeds")],
                wenda::corpus::ReadOptions::default(),
                &mut |_, _| {},
            )
            .unwrap();
        dir
    });
    let dir = scratch(name);
    // The template's service is dropped, so its database is closed and whole in its main file.
    for entry in std::fs::read_dir(template).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    assert!(dir.join(DATABASE_FILE).exists());
    dir
}

/// How a test server is set up.
pub struct Options {
    pub limits: Limits,
    pub transport: Transport,
    pub keys: ApiKeys,
    /// `--allowed-host` and `--cors-origin`.
    pub allowed_hosts: Vec<String>,
    pub cors_origins: Vec<String>,
    /// Whether the service is handed over (else the server stays "not ready").
    pub ready: bool,
    pub max_store_bytes: Option<u64>,
    /// The data directory to serve; by default a copy of the seeded one.
    pub data_dir: Option<PathBuf>,
    /// The LLM for generative answers.
    pub llm: Option<LlmConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            transport: Transport::default(),
            keys: ApiKeys::default(),
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            ready: true,
            max_store_bytes: None,
            data_dir: None,
            llm: None,
        }
    }
}

pub fn start(options: Options) -> Server {
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // As `wenda serve` gives them: answers wait for the LLM besides what a search takes.
    let limits = match &options.llm {
        Some(llm) => options.limits.with_llm_timeout(llm.timeout),
        None => options.limits,
    };
    let state = AppState::new(limits);
    let data_dir = options.ready.then(|| {
        options
            .data_dir
            .unwrap_or_else(|| seeded_data_dir(&format!("server-{number}")))
    });
    let service = data_dir.as_ref().map(|dir| {
        let store = sqlite_store(dir, options.max_store_bytes);
        let settings = Settings {
            llm: options
                .llm
                .clone()
                .map(|config| Arc::new(LlmClient::new(config).unwrap())),
            ..settings(64)
        };
        let service = open_core(store, &settings);
        state.set_ready(Arc::clone(&service));
        service
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let access = Access {
        exposure: Exposure::new(&options.allowed_hosts, &options.cors_origins).unwrap(),
        keys: options.keys,
    };
    runtime.spawn(http::serve(
        listener,
        http::router(state, access),
        std::future::pending(),
        options.transport,
    ));
    Server {
        url,
        service,
        data_dir,
        _runtime: runtime,
    }
}

pub fn server() -> &'static str {
    static SERVER: OnceLock<Server> = OnceLock::new();
    &SERVER.get_or_init(|| start(Options::default())).url
}

/// Sends a request and returns the status and the JSON body (every answer must be JSON).
pub fn call(base: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, Value) {
    call_with(base, method, path, body, &[])
}

/// Like [`call`], with extra headers.
pub fn call_with(
    base: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = ureq::request(method, &format!("{base}{path}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match body {
        Some((content_type, bytes)) => request.set("Content-Type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {path}: {error}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{method} {path} answered {status} with non-JSON {text:?}: {e}")
    });
    (status, json)
}

pub fn get(path: &str) -> (u16, Value) {
    call(server(), "GET", path, None)
}

pub fn post_json(path: &str, body: &Value) -> (u16, Value) {
    send_json(server(), "POST", path, body)
}

/// The sum of the samples of counter `name` whose labels include `label` (`key="value"`),
/// from the server's `/metrics`.
pub fn metric_total(url: &str, name: &str, label: &str) -> f64 {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `body` as JSON with `method` to `base` + `path`.
pub fn send_json(base: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    call(base, method, path, Some(("application/json", &bytes)))
}

/// Ids and scores of a search through `server`, for comparing runs.
pub fn ranking(server: &ServerProcess, path: &str, body: &Value) -> Vec<(String, f64)> {
    let (status, answer) = send_json(&server.url, "POST", path, body);
    assert_eq!(status, 200, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A fresh, empty database named `wenda_<name>_<pid>` on the test PostgreSQL server, by URL;
/// `None` (with a note) when `./scripts/test.sh` did not start one.
pub fn fresh_database(name: &str) -> Option<String> {
    let Ok(server) = std::env::var("WENDA_TEST_DATABASE_URL") else {
        eprintln!("skipped: WENDA_TEST_DATABASE_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    let database = format!("wenda_{name}_{}", std::process::id());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    // One statement each: CREATE DATABASE cannot run in a transaction block.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
    Some(format!("{base}/{database}"))
}

pub fn post(body: &Value) -> (u16, Value) {
    post_json("/v1/search", body)
}

pub fn assert_error(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(
        !answer.1["error"]["message"].as_str().unwrap().is_empty(),
        "{}",
        answer.1
    );
}

pub fn texts(answer: &Value) -> Vec<&str> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect()
}

/// Starts `wenda serve` over `data_dir` on a free port with `extra` arguments and waits until it
/// is ready.
pub fn spawn_server(data_dir: &Path, extra: &[&str]) -> ServerProcess {
    let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
    let mut arguments = vec!["--data-dir", data_dir];
    arguments.extend_from_slice(extra);
    spawn_serve(&arguments)
}

/// Starts `wenda serve` on a free port with `arguments` and waits until it is ready.
pub fn spawn_serve(arguments: &[&str]) -> ServerProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wenda"))
        .current_dir(root())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(arguments)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wenda serve");
    let stderr = child.stderr.take().unwrap();
    let (sender, address) = std::sync::mpsc::channel();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    // Reads the log for the address and keeps every line, draining it so the child never blocks.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = sender.send(addr);
                    sent = true;
                }
            }
            kept.lock().unwrap().push(line);
        }
    });
    let addr = address
        .recv_timeout(Duration::from_secs(60))
        .expect("wenda serve printed its address");
    let url = format!("http://{addr}");
    let process = ServerProcess { child, url, log };
    process.wait_ready(Duration::from_secs(300));
    process
}

/// A `wenda serve` child process.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// The lines it has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The value of `field=` in the first log line containing `message`.
    pub fn logged(&self, message: &str, field: &str) -> Option<String> {
        let line = self.log().into_iter().find(|line| line.contains(message))?;
        let value = line.split(&format!(" {field}=")).nth(1)?;
        Some(value.split_whitespace().next()?.to_owned())
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let ready = ureq::get(&format!("{}/ready", self.url))
                .timeout(Duration::from_secs(5))
                .call()
                .is_ok();
            if ready {
                return;
            }
            if started.elapsed() > limit {
                let log = self.log();
                let tail = &log[log.len().saturating_sub(30)..];
                panic!(
                    "wenda serve did not become ready; its last lines:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
