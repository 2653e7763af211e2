//! `mmrt serve`: flags to [`crate::serve::ServeOptions`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Cli, SessionArgs};
use crate::serve::{self, media::MediaPolicy, ServeOptions};
use mmrt::error::{Error, Result};
use mmrt::runtime::OrtRuntime;

/// Arguments of `mmrt serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A bundle to serve, as DIR (named by its manifest) or NAME=DIR; repeat for several.
    #[arg(long = "model", value_name = "[NAME=]DIR", required = true)]
    pub models: Vec<String>,
    /// Address to bind (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1 routes (or set MMRT_API_KEY).
    #[arg(long, env = "MMRT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests that may wait per model; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue_depth: usize,
    /// Largest request body in bytes (413 above it).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Largest media item (image, audio) in bytes after base64 decoding.
    #[arg(long, default_value_t = 20 << 20)]
    pub max_media_bytes: usize,
    /// Largest image in pixels (width x height), checked from its header before decoding.
    #[arg(long, default_value_t = 4096 * 4096)]
    pub max_image_pixels: u64,
    /// Most new tokens a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens_cap: usize,
    /// Directory that file:// image URLs may point into (default: file URLs refused).
    #[arg(long, value_name = "DIR")]
    pub allow_file_dir: Option<PathBuf>,
    /// Seconds running requests get to finish after SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 10.0)]
    pub shutdown_grace: f64,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Run the command.
pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let models = args
        .models
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !name.contains('/') => (Some(name.to_string()), PathBuf::from(dir)),
            _ => (None, PathBuf::from(spec)),
        })
        .collect();
    let bad = |flag: &str, why: &str| Error::Request(format!("{flag}: {why}"));
    if args.queue_depth == 0 || args.queue_depth > 1 << 16 {
        return Err(bad("--queue-depth", "must be 1 to 65536"));
    }
    if args.max_tokens_cap == 0 || args.max_tokens_cap > mmrt::limits::MAX_NEW_TOKENS {
        return Err(bad("--max-tokens-cap", "must be at least 1 and within limits::MAX_NEW_TOKENS"));
    }
    if !(args.shutdown_grace.is_finite() && (0.0..=3600.0).contains(&args.shutdown_grace)) {
        return Err(bad("--shutdown-grace", "must be 0 to 3600 seconds"));
    }
    if args.api_key.as_deref() == Some("") {
        return Err(bad("--api-key", "is empty; give a key or leave the flag out"));
    }
    let file_root = args
        .allow_file_dir
        .as_ref()
        .map(|d| d.canonicalize().map_err(|e| Error::io(d, e)))
        .transpose()?;
    let options = ServeOptions {
        models,
        address: SocketAddr::new(args.host, args.port),
        api_key: args.api_key.clone(),
        sessions: args.session.plan()?,
        queue_depth: args.queue_depth,
        max_body_bytes: args.max_body_bytes,
        max_tokens_cap: args.max_tokens_cap,
        media: MediaPolicy { max_image_pixels: args.max_image_pixels, max_media_bytes: args.max_media_bytes, file_root },
        shutdown_grace: Duration::from_secs_f64(args.shutdown_grace),
    };
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), options.sessions.wants_gpu())?;
    serve::serve(&runtime, options)
}
