//! What the HTTP tests share: the real model over the seed corpus, served on an ephemeral port,
//! and small clients for its JSON API.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

pub mod webdriver;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use wenda::corpus::{self, ChunkConfig};
use wenda::embedding::{
    Backend, BatchLimits, EmbedQueue, Embedder, ModelFingerprint, ModelLocator, VectorCache,
    DEFAULT_MODEL,
};
use wenda::http::wire::ModelInfo;
use wenda::http::{self, AppState, Limits, Service};
use wenda::search::{self, SearchEngine};

/// A server running on a background runtime for the whole test binary.
pub struct Server {
    pub url: String,
    _runtime: tokio::runtime::Runtime,
}

pub struct Model {
    embedder: Arc<Embedder>,
    fingerprint: ModelFingerprint,
    cache_dir: PathBuf,
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
        let cache_dir =
            std::env::temp_dir().join(format!("wenda-http-test-{}", std::process::id()));
        Model {
            embedder: Arc::new(embedder),
            fingerprint,
            cache_dir,
        }
    })
}

/// The seed corpus, indexed (vectors shared between servers through the cache).
pub fn seed_engine() -> SearchEngine {
    let model = model();
    let report = corpus::load(&[root().join("seeds")], &ChunkConfig::new(&*model.embedder));
    let (mut cache, _) = VectorCache::open(
        &model.cache_dir,
        "seeds",
        model.fingerprint,
        model.embedder.dimensions(),
    );
    search::build(report, &model.embedder, &mut cache, &mut |_, _| {})
        .unwrap()
        .0
}

pub fn start(limits: Limits, ready: bool) -> Server {
    let state = AppState::new(limits);
    if ready {
        let model = model();
        state.set_ready(Service {
            engine: seed_engine(),
            queue: EmbedQueue::start(Arc::clone(&model.embedder), 64, 32),
            embedder: Arc::clone(&model.embedder),
            model: ModelInfo {
                id: DEFAULT_MODEL.into(),
                dimensions: model.embedder.dimensions(),
                pooling: "mean".into(),
                max_tokens: model.embedder.config().max_tokens,
            },
        });
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(http::serve(
        listener,
        http::router(state, &[]),
        std::future::pending(),
    ));
    Server {
        url,
        _runtime: runtime,
    }
}

pub fn server() -> &'static str {
    static SERVER: OnceLock<Server> = OnceLock::new();
    &SERVER.get_or_init(|| start(Limits::default(), true)).url
}

/// Sends a request and returns the status and the JSON body (every answer must be JSON).
pub fn call(base: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, Value) {
    let request = ureq::request(method, &format!("{base}{path}"));
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
    let bytes = body.to_string().into_bytes();
    call(server(), "POST", path, Some(("application/json", &bytes)))
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
