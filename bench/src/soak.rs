//! `wenda-bench soak`: a soak test (a benchmark, prints figures). For `--duration` seconds it
//! keeps a server busy with mixed traffic from `--connections` clients, each on its own
//! keep-alive connection: searches in every mode (query string and JSON forms in turn), "more
//! like this" on passages the searches found, `/v1/embeddings` of up to 16 texts, and document
//! writes and deletes in collection `soak`. Beside them it holds `--idle` connections that send
//! nothing and `--slow` ones that send a `GET /health` one byte a second (slowloris), and
//! counts how often the server closes them.
//!
//! It prints the requests per route with their p50 / p99 latency and errors, the errors by
//! status and error code, the closures of idle and slow connections, and the server's resident
//! memory after a warm-up and at the end. The target is no error but 503 `overloaded` and a
//! resident memory that grows by less than 10 %.
//!
//! Without `--url` it spawns `wenda serve` (see [`ServerArgs`]) over a fresh data directory with
//! the corpus folder in `default`, on a free port, and stops it at the end.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use wenda::squad::Dataset;

use crate::server::{scratch_dir, ServerArgs, Spawned};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Clients sending requests, each on its own keep-alive connection.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections opened and held without sending anything.
    #[arg(long, default_value_t = 200)]
    idle: usize,
    /// Connections sending `GET /health` one byte a second.
    #[arg(long, default_value_t = 20)]
    slow: usize,
    /// SQuAD-format dataset: its questions are searched, its contexts embedded and written.
    #[arg(long)]
    dataset: PathBuf,
    /// A running wenda to soak (with --pid); by default one is spawned.
    #[arg(long, requires = "pid", conflicts_with_all = ["wenda", "serve_args"])]
    url: Option<String>,
    /// The process id of the server at --url, whose memory is read from /proc.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Corpus folder of the spawned server's collection `default`.
    #[arg(long, default_value = "seeds", conflicts_with = "url")]
    corpus: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// What the clients send, in proportion: one cycle of this per client, each client starting
/// at a different place in it.
const SCHEDULE: [Route; 16] = [
    Route::SearchDense,
    Route::SearchLexical,
    Route::SearchHybrid,
    Route::Similar,
    Route::DocumentPut,
    Route::SearchDense,
    Route::SearchLexical,
    Route::SearchHybrid,
    Route::Similar,
    Route::Embeddings,
    Route::SearchDense,
    Route::SearchLexical,
    Route::SearchHybrid,
    Route::Similar,
    Route::DocumentPut,
    Route::DocumentDelete,
];

/// Documents each client keeps in collection `soak` at most (it replaces and deletes them in
/// turn), so the collection stays the same size however long the soak.
const DOCUMENT_SLOTS: usize = 4;
/// Most texts in one `/v1/embeddings` request.
const MAX_EMBEDDING_INPUTS: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// How often idle and slow connections are looked at (and slow ones sent a byte).
const TICK: Duration = Duration::from_secs(1);
/// The error that is allowed: the server refusing work beyond its capacity.
const OVERLOADED: &str = "503 overloaded";

/// A kind of request, as the figures group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    SearchDense,
    SearchLexical,
    SearchHybrid,
    Similar,
    Embeddings,
    DocumentPut,
    DocumentDelete,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::SearchDense => "search dense",
            Self::SearchLexical => "search lexical",
            Self::SearchHybrid => "search hybrid",
            Self::Similar => "similar",
            Self::Embeddings => "embeddings",
            Self::DocumentPut => "document put",
            Self::DocumentDelete => "document delete",
        }
    }
}

pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    let dataset = Dataset::read(&args.dataset)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let questions: Vec<String> = dataset.questions.into_iter().map(|q| q.text).collect();
    if questions.is_empty() || dataset.contexts.is_empty() {
        bail!("{} has no questions or contexts", args.dataset.display());
    }
    let (url, pid, _spawned) = match (&args.url, args.pid) {
        (Some(url), Some(pid)) => (url.trim_end_matches('/').to_owned(), pid, None),
        _ => {
            let data_dir = scratch_dir("soak");
            let mut options = vec!["--data-dir".into(), data_dir.clone().into_os_string()];
            for folder in &args.corpus {
                options.extend(["--corpus".into(), folder.clone().into_os_string()]);
            }
            let spawned = Spawned::start(args.server.command(options)?, Some(data_dir))?;
            (spawned.url.clone(), spawned.child.id(), Some(spawned))
        }
    };
    let address = socket_address(&url)?;
    let agent = client();
    let created = agent
        .put(&format!("{url}/v1/collections/soak"))
        .call()
        .context("creating collection soak")?
        .status()
        == 201;
    let traffic = Traffic {
        url: &url,
        passages: warm_up(&agent, &url, &questions)?,
        questions: &questions,
        contexts: &dataset.contexts,
        next_question: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    };
    let start_memory = Memory::of(pid)?;
    println!(
        "wenda-bench soak: {url} (pid {pid}), {} s of mixed traffic from {} clients, with {} idle \
         and {} slow connections; questions and contexts from {}",
        args.duration,
        args.connections,
        args.idle,
        args.slow,
        args.dataset.display()
    );
    println!("RSS after warm-up: {start_memory}");

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let (mut tally, idle, slow, loaded_memory) = std::thread::scope(|scope| {
        let traffic = &traffic;
        let clients: Vec<_> = (0..args.connections)
            .map(|number| scope.spawn(move || traffic.client(number, deadline)))
            .collect();
        let idle = scope.spawn(|| hold_idle(address, args.idle, deadline));
        let slow = scope.spawn(|| send_slowly(address, args.slow, deadline));
        let mut report = started + PROGRESS_EVERY;
        let mut loaded_memory = None;
        while report < deadline {
            std::thread::sleep(report.saturating_duration_since(Instant::now()));
            let memory = Memory::of(pid);
            let shown = memory
                .as_ref()
                .map_or_else(|e| format!("unreadable: {e}"), |m| m.to_string());
            println!(
                "{:>6.0} s: {} requests, RSS {shown}",
                started.elapsed().as_secs_f64(),
                traffic.requests.load(Ordering::Relaxed)
            );
            loaded_memory = loaded_memory.or(memory.ok());
            report += PROGRESS_EVERY;
        }
        let mut tally = Tally::default();
        for client in clients {
            tally.merge(client.join().expect("client thread"));
        }
        (
            tally,
            idle.join().expect("idle connections thread"),
            slow.join().expect("slow connections thread"),
            loaded_memory,
        )
    });
    let elapsed = started.elapsed();

    tally.print(elapsed);
    println!(
        "idle connections: {} closed by the server (and opened again), {} connects failed",
        idle.closed, idle.connect_failures
    );
    println!(
        "slow connections: {} requests completed, {} closed by the server before finishing, {} \
         connects failed",
        slow.completed, slow.closed, slow.connect_failures
    );
    let end_memory = Memory::of(pid).context("the server's memory at the end (did it exit?)")?;
    let growth = |from: &Memory| (end_memory.rss_kib as f64 / from.rss_kib as f64 - 1.0) * 100.0;
    println!(
        "RSS: after warm-up {start_memory}, at the end {end_memory}, growth {:.1} %",
        growth(&start_memory)
    );
    // The first minute under full load fills thread pools and allocator caches once; growth
    // after it is what would keep going.
    let loaded = loaded_memory.as_ref().unwrap_or(&start_memory);
    println!(
        "errors other than {OVERLOADED}: {}; RSS growth: {:.1} % since the warm-up, {:.1} % \
         since the first minute of load ({loaded})",
        tally.errors_other_than_overloaded(),
        growth(&start_memory),
        growth(loaded)
    );
    if created {
        agent
            .delete(&format!("{url}/v1/collections/soak"))
            .call()
            .context("deleting collection soak")?;
    }
    Ok(())
}

/// `host:port` of `url`, for the raw idle and slow connections.
fn socket_address(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("{url}: only http:// URLs can be soaked");
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} has no address"))
}

fn client() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build()
}

/// Warms the server up (model, allocator, thread pools) with a search in each mode, one
/// embedding and one document write, and returns the ids of the passages the searches found.
fn warm_up(agent: &ureq::Agent, url: &str, questions: &[String]) -> anyhow::Result<Vec<String>> {
    let mut passages = Vec::new();
    for (i, question) in questions.iter().take(30).enumerate() {
        let mode = ["dense", "lexical", "hybrid"][i % 3];
        let body = json!({ "query": question, "mode": mode, "top_k": 5 });
        let text = send(agent.post(&format!("{url}/v1/search")), Some(&body))
            .map_err(|error| anyhow::anyhow!("warm-up search: {error}"))?;
        let answer: Value = serde_json::from_str(&text).context("warm-up search answer")?;
        for result in answer["results"].as_array().into_iter().flatten() {
            if let Some(id) = result["id"].as_str() {
                passages.push(id.to_owned());
            }
        }
    }
    passages.sort();
    passages.dedup();
    if passages.is_empty() {
        bail!("searches of collection default found nothing: it has no passages to soak");
    }
    let document = format!("{url}/v1/collections/soak/documents/warm-up");
    let embeddings = json!({ "input": [questions[0]], "model": "wenda" });
    send(
        agent.post(&format!("{url}/v1/embeddings")),
        Some(&embeddings),
    )
    .and_then(|_| send(agent.put(&document), Some(&json!({ "text": questions[0] }))))
    .and_then(|_| send(agent.delete(&document), None))
    .map_err(|error| anyhow::anyhow!("warm-up: {error}"))?;
    Ok(passages)
}

/// Sends a request and reads the answer: its body, or what went wrong as `status code` (the
/// API's error code, so that 503 `overloaded` is told from other 503s) or `transport kind`.
fn send(request: ureq::Request, body: Option<&Value>) -> Result<String, String> {
    let answer = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match answer {
        Ok(response) => response
            .into_string()
            .map_err(|e| format!("transport {:?}", e.kind())),
        Err(ureq::Error::Status(status, response)) => {
            let body: Option<Value> = response.into_json().ok();
            let code = body.as_ref().and_then(|b| b["error"]["code"].as_str());
            Err(format!("{status} {}", code.unwrap_or("(no error code)")))
        }
        Err(ureq::Error::Transport(transport)) => Err(format!("transport {:?}", transport.kind())),
    }
}

/// What the clients share.
struct Traffic<'a> {
    url: &'a str,
    questions: &'a [String],
    contexts: &'a [String],
    /// Passage ids of collection `default`, for "more like this".
    passages: Vec<String>,
    /// Questions are taken in turn by all clients, so that each is asked once before any is
    /// asked again.
    next_question: AtomicUsize,
    /// Requests answered so far, for the progress lines.
    requests: AtomicUsize,
}

impl Traffic<'_> {
    /// One client: requests in the order of [`SCHEDULE`] until `deadline`.
    fn client(&self, number: usize, deadline: Instant) -> Tally {
        let agent = client();
        let mut tally = Tally::default();
        // Whether the document of each slot is written; and writes and deletes so far.
        let mut written = [false; DOCUMENT_SLOTS];
        let (mut puts, mut deletes) = (0, 0);
        for step in number.. {
            if Instant::now() >= deadline {
                break;
            }
            let route = SCHEDULE[step % SCHEDULE.len()];
            // Searches alternate between the query string and the JSON form, cycle by cycle.
            let query_string = (step / SCHEDULE.len()).is_multiple_of(2);
            let document = |slot: usize| {
                format!(
                    "{}/v1/collections/soak/documents/c{number}-{slot}",
                    self.url
                )
            };
            let (request, body) = match route {
                Route::SearchDense | Route::SearchLexical | Route::SearchHybrid => {
                    let mode = match route {
                        Route::SearchDense => "dense",
                        Route::SearchLexical => "lexical",
                        _ => "hybrid",
                    };
                    let question = self.question();
                    if query_string {
                        let q = utf8_percent_encode(question, NON_ALPHANUMERIC);
                        let path = format!("{}/v1/search?q={q}&mode={mode}", self.url);
                        (agent.get(&path), None)
                    } else {
                        let body = json!({ "query": question, "mode": mode, "top_k": 5 });
                        (agent.post(&format!("{}/v1/search", self.url)), Some(body))
                    }
                }
                Route::Similar => {
                    let id = &self.passages[step % self.passages.len()];
                    let id = utf8_percent_encode(id, NON_ALPHANUMERIC);
                    let path = format!("{}/v1/passages/{id}/similar?top_k=5", self.url);
                    (agent.get(&path), None)
                }
                Route::Embeddings => {
                    // 1 to 16 texts, one more each cycle.
                    let count = 1 + step / SCHEDULE.len() % MAX_EMBEDDING_INPUTS;
                    let first = (number + step) % self.contexts.len();
                    let input: Vec<&String> = self
                        .contexts
                        .iter()
                        .cycle()
                        .skip(first)
                        .take(count)
                        .collect();
                    let body = json!({ "input": input, "model": "wenda" });
                    (
                        agent.post(&format!("{}/v1/embeddings", self.url)),
                        Some(body),
                    )
                }
                Route::DocumentPut => {
                    let text = &self.contexts[(number * 7919 + puts) % self.contexts.len()];
                    let body = json!({ "text": text, "title": format!("soak {number}") });
                    (agent.put(&document(puts % DOCUMENT_SLOTS)), Some(body))
                }
                Route::DocumentDelete => {
                    if !written[deletes % DOCUMENT_SLOTS] {
                        // Its write failed: nothing to delete.
                        deletes += 1;
                        continue;
                    }
                    (agent.delete(&document(deletes % DOCUMENT_SLOTS)), None)
                }
            };
            let sent = Instant::now();
            let answer = send(request, body.as_ref());
            tally.record(
                route,
                sent.elapsed(),
                answer.as_ref().err().map(String::as_str),
            );
            self.requests.fetch_add(1, Ordering::Relaxed);
            match route {
                Route::DocumentPut => {
                    written[puts % DOCUMENT_SLOTS] = answer.is_ok();
                    puts += 1;
                }
                Route::DocumentDelete => {
                    if answer.is_ok() {
                        written[deletes % DOCUMENT_SLOTS] = false;
                    }
                    deletes += 1;
                }
                _ => {}
            }
        }
        tally
    }

    fn question(&self) -> &str {
        let i = self.next_question.fetch_add(1, Ordering::Relaxed);
        &self.questions[i % self.questions.len()]
    }
}

/// Latencies and errors, per route and by kind of error.
#[derive(Default)]
struct Tally {
    routes: BTreeMap<Route, RouteTally>,
    /// `status code` or `transport kind` → how many.
    errors: BTreeMap<String, usize>,
}

#[derive(Default)]
struct RouteTally {
    latencies: Vec<Duration>,
    errors: usize,
}

impl Tally {
    fn record(&mut self, route: Route, latency: Duration, error: Option<&str>) {
        let route = self.routes.entry(route).or_default();
        route.latencies.push(latency);
        if let Some(error) = error {
            route.errors += 1;
            *self.errors.entry(error.to_owned()).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        for (route, tally) in other.routes {
            let mine = self.routes.entry(route).or_default();
            mine.latencies.extend(tally.latencies);
            mine.errors += tally.errors;
        }
        for (error, count) in other.errors {
            *self.errors.entry(error).or_default() += count;
        }
    }

    fn errors_other_than_overloaded(&self) -> usize {
        self.errors
            .iter()
            .filter(|(error, _)| *error != OVERLOADED)
            .map(|(_, count)| count)
            .sum()
    }

    fn print(&mut self, elapsed: Duration) {
        let requests: usize = self.routes.values().map(|r| r.latencies.len()).sum();
        println!(
            "requests: {requests} in {:.1} s = {:.1} per second",
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64()
        );
        println!(
            "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "route", "requests", "errors", "p50 ms", "p99 ms", "max ms"
        );
        for (route, tally) in &mut self.routes {
            tally.latencies.sort();
            let ms = |p: f64| crate::percentile(&tally.latencies, p).as_secs_f64() * 1e3;
            println!(
                "{:<16} {:>9} {:>7} {:>9.1} {:>9.1} {:>9.1}",
                route.label(),
                tally.latencies.len(),
                tally.errors,
                ms(0.50),
                ms(0.99),
                ms(1.0),
            );
        }
        println!("errors by status and code:");
        if self.errors.is_empty() {
            println!("  none");
        }
        for (error, count) in &self.errors {
            println!("  {error}: {count}");
        }
    }
}

/// A process's resident memory, from `/proc/<pid>/status` (Linux).
struct Memory {
    rss_kib: u64,
    peak_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("{path} has no {name}"))
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MiB (peak {:.1} MiB)",
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0
        )
    }
}

/// What the server did on a connection since it was last looked at.
#[derive(PartialEq, Eq)]
enum Peer {
    Silent,
    Answered,
    Closed,
}

/// Reads what the server sent on a non-blocking connection, without waiting.
fn peer(stream: &mut TcpStream) -> Peer {
    let mut buffer = [0; 4096];
    match stream.read(&mut buffer) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Peer::Silent,
        Ok(0) | Err(_) => Peer::Closed,
        Ok(_) => Peer::Answered,
    }
}

/// A non-blocking connection to `address`, or `None` when connecting failed.
fn connect(address: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// Sleeps one tick, or until `deadline`; false once it has passed.
fn tick(deadline: Instant) -> bool {
    std::thread::sleep(TICK.min(deadline.saturating_duration_since(Instant::now())));
    Instant::now() < deadline
}

#[derive(Default)]
struct IdleFigures {
    closed: usize,
    connect_failures: usize,
}

/// Holds `count` connections that send nothing until `deadline`, opening again any the server
/// closes (or answers, which it does only to close).
fn hold_idle(address: SocketAddr, count: usize, deadline: Instant) -> IdleFigures {
    let mut figures = IdleFigures::default();
    let mut connections: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
    loop {
        for connection in &mut connections {
            if connection.as_mut().is_some_and(|c| peer(c) != Peer::Silent) {
                figures.closed += 1;
                *connection = None;
            }
            if connection.is_none() {
                *connection = connect(address);
                figures.connect_failures += usize::from(connection.is_none());
            }
        }
        if !tick(deadline) {
            return figures;
        }
    }
}

#[derive(Default)]
struct SlowFigures {
    completed: usize,
    closed: usize,
    connect_failures: usize,
}

/// A connection sending its request one byte per tick.
struct Slow {
    stream: TcpStream,
    sent: usize,
}

/// Keeps `count` connections sending `GET /health` one byte a second until `deadline`,
/// opening a new one when a request is answered or the server closes the connection first.
fn send_slowly(address: SocketAddr, count: usize, deadline: Instant) -> SlowFigures {
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let request = request.as_bytes();
    let mut figures = SlowFigures::default();
    let mut connections: Vec<Option<Slow>> = (0..count).map(|_| None).collect();
    loop {
        for connection in &mut connections {
            if let Some(slow) = connection {
                let whole = slow.sent == request.len();
                match peer(&mut slow.stream) {
                    Peer::Answered if whole => figures.completed += 1,
                    // Answered early: a timeout, before it closes.
                    Peer::Answered | Peer::Closed => figures.closed += 1,
                    Peer::Silent if whole => continue,
                    Peer::Silent => {
                        let byte = &request[slow.sent..=slow.sent];
                        if slow.stream.write_all(byte).is_ok() {
                            slow.sent += 1;
                            continue;
                        }
                        figures.closed += 1;
                    }
                }
                *connection = None;
            }
            if connection.is_none() {
                *connection = connect(address).map(|stream| Slow { stream, sent: 0 });
                figures.connect_failures += usize::from(connection.is_none());
            }
        }
        if !tick(deadline) {
            return figures;
        }
    }
}
