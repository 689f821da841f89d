//! `wenda serve`: build the index over a corpus and answer questions over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use wenda::embedding::EmbedQueue;
use wenda::http::{self, AppState, Limits, Service};

use super::engine::{load_engine, CorpusArgs, Loaded};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WENDA_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Searches handled at once; more are refused with 503 instead of queueing without bound.
    #[arg(long, env = "WENDA_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most questions embedded together in one forward pass.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// `Host` names (or `host:port`) the MCP endpoint accepts, as a defence against DNS
    /// rebinding; repeat or separate with commas. Default: localhost, 127.0.0.1 and ::1.
    /// Add the public name when serving beyond this machine; `*` accepts any.
    #[arg(
        long = "allowed-host",
        env = "WENDA_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

impl ServeArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_in_flight: self.max_in_flight,
            ..Limits::default()
        }
    }

    /// The ready service over a loaded engine.
    pub fn service(&self, loaded: Loaded) -> Service {
        Service {
            engine: loaded.engine,
            queue: EmbedQueue::start(
                Arc::clone(&loaded.embedder),
                self.max_in_flight,
                self.max_batch,
            ),
            embedder: loaded.embedder,
            model: loaded.model,
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(serve(args));
    // A shutdown during loading leaves the loader running on a blocking thread; don't wait for it.
    runtime.shutdown_background();
    result
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        "listening; /ready answers 503 until the index is built"
    );
    if !args.addr.ip().is_loopback() && args.allowed_hosts.is_empty() {
        tracing::warn!(
            "/mcp answers only requests addressed to localhost; pass --allowed-host with the \
             name clients use to reach this server"
        );
    }
    let state = AppState::new(args.limits());
    let mut server = tokio::spawn(http::serve(
        listener,
        http::router(Arc::clone(&state), &args.allowed_hosts),
        shutdown_signal(),
    ));

    let (model, corpus) = (args.model.clone(), args.corpus.clone());
    let loader = tokio::task::spawn_blocking(move || load_engine(&model, &corpus));
    tokio::select! {
        stopped = &mut server => {
            stopped.context("server task")?.context("serving HTTP")?;
            tracing::info!("stopped before the index was ready");
            return Ok(());
        }
        loaded = loader => {
            let loaded = loaded.context("index loader task")??;
            state.set_ready(args.service(loaded));
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
