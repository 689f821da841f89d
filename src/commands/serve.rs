//! `wenda serve`: open the collections and answer questions (and take documents) over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use wenda::http::{self, Access, ApiKeys, AppState, Exposure, Limits, Transport};

use super::open::{self, LlmArgs, ServiceOptions, StoreArgs};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WENDA_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seconds requests in flight get to finish after SIGTERM or Ctrl-C; connections still
    /// open then are closed.
    #[arg(long, env = "WENDA_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Requests handled at once; more are refused with 503 `overloaded` (before their bodies
    /// are read) instead of queueing without bound.
    #[arg(long, env = "WENDA_MAX_IN_FLIGHT", default_value_t = ServiceOptions::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Connections served at once (lowered to fit the open-file limit). A few more are
    /// answered 503 `too_many_connections` (`/health` still answers on them);
    /// beyond those, new connections are closed.
    #[arg(long, env = "WENDA_MAX_CONNECTIONS", default_value_t = Transport::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; also how long a kept-alive
    /// connection may sit idle between requests. Slower clients are disconnected.
    #[arg(long, env = "WENDA_HEADER_TIMEOUT", default_value_t = Transport::default().header_timeout.as_secs())]
    pub header_timeout: u64,
    /// Seconds a body may pause between two pieces (408 `body_timeout` beyond).
    #[arg(long, env = "WENDA_BODY_TIMEOUT", default_value_t = Limits::default().body_timeout.as_secs())]
    pub body_timeout: u64,
    /// Seconds a search, passage, similar, MCP or Dify request may take, body included (504
    /// `request_timeout` beyond).
    #[arg(long, env = "WENDA_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.as_secs())]
    pub request_timeout: u64,
    /// Largest search request body accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest document body accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_document_bytes)]
    pub max_document_bytes: usize,
    /// Largest import body (NDJSON or uploaded files) accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_import_bytes)]
    pub max_import_bytes: usize,
    /// Most bytes a document's title, date, source, url and metadata (as JSON) may take
    /// together (422 `invalid_request` beyond): they are given with each of its passages.
    #[arg(long, env = "WENDA_MAX_METADATA_BYTES", default_value_t = ServiceOptions::default().max_metadata_bytes)]
    pub max_metadata_bytes: usize,
    /// What an answer says when the documents do not answer the question (default: 知识库中没有找到
    /// 这个问题的答案。 to Chinese questions, "The documents do not answer this question." to others).
    #[arg(long, env = "WENDA_NO_ANSWER_TEXT")]
    pub no_answer_text: Option<String>,
    /// Most questions embedded together in one forward pass.
    #[arg(long, default_value_t = ServiceOptions::default().max_batch)]
    pub max_batch: usize,
    /// `Host` names (or `host:port`) the server answers, as a defence against DNS
    /// rebinding; repeat or separate with commas. Default: localhost, 127.0.0.1 and ::1.
    /// Name the public host when serving beyond this machine; `*` answers any.
    #[arg(
        long = "allowed-host",
        env = "WENDA_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Origin of a browser app allowed to call the API across origins (CORS), e.g.
    /// `https://app.example.com`; repeat or separate with commas; `*` allows any. Default: none.
    #[arg(
        long = "cors-origin",
        env = "WENDA_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// API key that may read and write (repeat, or separate with commas in the environment).
    #[arg(
        long = "api-key",
        env = "WENDA_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// API key that may only read.
    #[arg(
        long = "read-api-key",
        env = "WENDA_READ_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_api_keys: Vec<String>,
    /// Serve without keys on an address other machines can reach (on purpose).
    #[arg(long)]
    pub no_auth: bool,
}

impl ServeArgs {
    pub fn limits(&self) -> Limits {
        // A generative answer waits for the LLM besides what a search takes.
        let llm_timeout = self
            .llm
            .llm_base_url
            .as_ref()
            .map_or(0, |_| self.llm.llm_timeout);
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_document_bytes: self.max_document_bytes,
            max_import_bytes: self.max_import_bytes,
            max_in_flight: self.max_in_flight,
            body_timeout: Duration::from_secs(self.body_timeout),
            request_timeout: Duration::from_secs(self.request_timeout),
            ..Limits::default()
        }
        .with_llm_timeout(Duration::from_secs(llm_timeout))
    }

    /// How connections are handled, the cap lowered to what the open-file limit allows.
    pub fn transport(&self) -> Transport {
        Transport {
            max_connections: fit_connections(self.max_connections),
            header_timeout: Duration::from_secs(self.header_timeout),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
        }
    }

    /// Who may call: names, origins and keys.
    pub fn access(&self) -> anyhow::Result<Access> {
        Ok(Access {
            exposure: Exposure::new(&self.allowed_hosts, &self.cors_origins)
                .map_err(anyhow::Error::msg)?,
            keys: self.keys(),
        })
    }

    pub fn service_options(&self) -> anyhow::Result<ServiceOptions> {
        Ok(ServiceOptions {
            max_in_flight: self.max_in_flight,
            max_batch: self.max_batch,
            max_metadata_bytes: self.max_metadata_bytes,
            no_answer_text: self.no_answer_text.clone(),
            llm: self.llm.config()?,
        })
    }

    pub fn keys(&self) -> ApiKeys {
        ApiKeys::new(&self.api_keys, &self.read_api_keys)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let keys = args.keys();
    if keys.is_open() && !args.addr.ip().is_loopback() && !args.no_auth {
        bail!(
            "refusing to serve {} without API keys: anyone who can reach it could read and change \
             every collection. Set a key (--api-key KEY or WENDA_API_KEYS, and --read-api-key for \
             read-only clients), listen on 127.0.0.1, or pass --no-auth to serve openly on purpose",
            args.addr
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(serve(args, keys));
    // A shutdown during loading leaves the loader running on a blocking thread; don't wait for it.
    runtime.shutdown_background();
    result
}

async fn serve(args: ServeArgs, keys: ApiKeys) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        api_keys = !keys.is_open(),
        "listening; /ready answers 503 until the collections are loaded"
    );
    if !args.addr.ip().is_loopback() && args.allowed_hosts.is_empty() {
        tracing::warn!(
            "only requests addressed to localhost are answered; pass --allowed-host with the \
             name clients use to reach this server"
        );
    }
    let state = AppState::new(args.limits());
    let mut server = tokio::spawn(http::serve(
        listener,
        http::router(Arc::clone(&state), args.access()?),
        shutdown_signal(),
        args.transport(),
    ));

    let (model, store, options) = (
        args.model.clone(),
        args.store.clone(),
        args.service_options()?,
    );
    let loader = tokio::task::spawn_blocking(move || open::service(&model, &store, options));
    tokio::select! {
        stopped = &mut server => {
            stopped.context("server task")?.context("serving HTTP")?;
            tracing::info!("stopped before the collections were ready");
            return Ok(());
        }
        loaded = loader => {
            state.set_ready(loaded.context("loader task")??);
            tracing::info!("ready");
        }
    }
    server
        .await
        .context("server task")?
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

/// Files the process keeps open besides connections: the store, the model, logs, the
/// database pool.
const FILES_BESIDES_CONNECTIONS: u64 = 128;

/// Raises the open-file limit to its hard limit and returns the connection cap that fits under
/// it, so running out of descriptors (which stops `accept` for everyone) cannot happen first.
fn fit_connections(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            return wanted;
        }
    };
    let reserved = FILES_BESIDES_CONNECTIONS + http::OVERFLOW_CONNECTIONS as u64;
    let fits = usize::try_from(limit.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    if fits < wanted {
        tracing::warn!(
            wanted,
            serving = fits,
            open_file_limit = limit,
            "the open-file limit allows fewer connections than --max-connections"
        );
    }
    wanted.min(fits)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down; finishing requests in flight");
}
