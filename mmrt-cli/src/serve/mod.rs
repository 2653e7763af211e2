//! `mmrt serve`: an OpenAI-compatible HTTP server over loaded bundles.
//!
//! Each model has one worker thread and a bounded queue ([`engine`]); the
//! async side (axum on tokio) authenticates, parses, queues and streams
//! ([`routes`]). A full queue answers 429 with `Retry-After`; a client that
//! disconnects cancels its generation at the next token; SIGTERM (or Ctrl-C)
//! stops accepting, lets running requests finish within the grace period,
//! then cancels what is left. It binds 127.0.0.1 unless told otherwise.

pub mod engine;
pub mod error;
pub mod media;
pub mod metrics;
pub mod openai;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use mmrt::pipeline::CancelFlag;
use mmrt::runtime::{OrtRuntime, SessionPlan};
use mmrt::{Bundle, Error, Result};

use engine::{Model, Shared};
use media::MediaPolicy;
use metrics::Metrics;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `(name, bundle directory)`; the name is what clients send as `model`.
    pub models: Vec<(Option<String>, PathBuf)>,
    pub address: SocketAddr,
    pub api_key: Option<String>,
    pub sessions: SessionPlan,
    /// Waiting requests per model before 429.
    pub queue_depth: usize,
    pub max_body_bytes: usize,
    pub max_tokens_cap: usize,
    pub media: MediaPolicy,
    /// How long running requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

/// What every handler sees.
pub struct ServerState {
    pub models: Vec<Model>,
    pub shared: Arc<Shared>,
    pub api_key: Option<String>,
    pub max_body_bytes: usize,
    pub max_tokens_cap: usize,
    pub media: MediaPolicy,
    /// Set on SIGTERM: new requests get 503, `/health` says draining.
    pub draining: AtomicBool,
}

/// Load the models, bind, and serve until SIGTERM / Ctrl-C.
pub fn serve(runtime: &OrtRuntime, options: ServeOptions) -> Result<()> {
    let shared = Arc::new(Shared { metrics: Metrics::default(), shutdown: CancelFlag::default() });
    let mut models: Vec<Model> = Vec::with_capacity(options.models.len());
    for (name, dir) in &options.models {
        let bundle = Bundle::open(dir)?;
        let id = name.clone().unwrap_or_else(|| bundle.name().to_string());
        if models.iter().any(|m| m.info.id == id) {
            return Err(Error::Request(format!("two models are named \"{id}\"; name them with --model NAME=DIR")));
        }
        let start = std::time::Instant::now();
        models.push(Model::load(runtime, id.clone(), bundle, &options.sessions, options.queue_depth, shared.clone())?);
        eprintln!("mmrt serve: loaded model \"{id}\" from {} in {:.2} s", dir.display(), start.elapsed().as_secs_f64());
    }
    let state = Arc::new(ServerState {
        models,
        shared,
        api_key: options.api_key.clone(),
        max_body_bytes: options.max_body_bytes,
        max_tokens_cap: options.max_tokens_cap,
        media: options.media.clone(),
        draining: AtomicBool::new(false),
    });
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Request(format!("starting the async runtime: {e}")))?;
    tokio.block_on(run(state, options))
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/audio/transcriptions", post(routes::transcriptions))
        .route("/v1/audio/speech", post(routes::speech))
        .route("/v1/models", get(routes::list_models))
        .route("/v1/models/{id}", get(routes::get_model))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        // The handlers enforce --max-body-bytes themselves, with OpenAI-shaped errors.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn run(state: Arc<ServerState>, options: ServeOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(options.address).await.map_err(|e| Error::io(options.address.to_string(), e))?;
    let address = listener.local_addr().map_err(|e| Error::io(options.address.to_string(), e))?;
    let names: Vec<&str> = state.models.iter().map(|m| m.info.id.as_str()).collect();
    eprintln!("mmrt serve: listening on http://{address} (models: {})", names.join(", "));
    if !address.ip().is_loopback() && options.api_key.is_none() {
        eprintln!("warning: listening on {address}, beyond this machine, without an API key (--api-key)");
    }
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal(state, options.shutdown_grace))
        .await
        .map_err(|e| Error::io(address.to_string(), e))?;
    eprintln!("mmrt serve: stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C: from then on new requests are refused, and
/// after `grace` the running ones are cancelled (a hard exit follows if a
/// connection still lingers).
async fn shutdown_signal(state: Arc<ServerState>, grace: Duration) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    state.draining.store(true, Ordering::Relaxed);
    eprintln!("mmrt serve: shutting down: new requests get 503; running ones have {:.0} s to finish", grace.as_secs_f64());
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        eprintln!("mmrt serve: grace period over, cancelling what still runs");
        state.shared.shutdown.cancel();
        tokio::time::sleep(Duration::from_secs(5)).await;
        eprintln!("mmrt serve: connections still open 5 s after cancelling; exiting");
        std::process::exit(0);
    });
}
