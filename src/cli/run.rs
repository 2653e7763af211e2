//! `mmrt run`: one request through the pipeline, text streamed to stdout or
//! one JSON object with ids, text and per-stage timings.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{Cli, SessionArgs};
use crate::error::{Error, Result};
use crate::generate::SamplingConfig;
use crate::runtime::OrtRuntime;
use crate::{Bundle, Pipeline, Request};

/// Arguments of `mmrt run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Bundle directory (holds bundle.json).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Image file; repeat for several images (in prompt order).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    /// User prompt; may contain the bundle's image placeholder (e.g. <image>).
    #[arg(long)]
    pub prompt: String,
    /// New tokens at most (default: the bundle's).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy (default: the bundle's).
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Keep the K most likely tokens; 0 keeps all.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass in (0, 1].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Penalty (> 0) on tokens already seen; 1 disables.
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub repetition_penalty: Option<f32>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Wrap the prompt in the bundle's chat template (one user turn) instead of raw completion.
    #[arg(long)]
    pub chat: bool,
    /// Print one JSON object (ids, text, stage timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

impl RunArgs {
    fn sampling(&self, defaults: SamplingConfig) -> SamplingConfig {
        SamplingConfig {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(defaults.repetition_penalty),
            seed: self.seed,
        }
    }
}

/// Run the command.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    // Check the cheap things before loading anything heavy.
    for image in &args.images {
        check_image_path(image)?;
    }
    let bundle = Bundle::open(&args.bundle)?;
    let runtime = OrtRuntime::load(cli.ort_lib.as_deref())?;
    let sampling = args.sampling(Pipeline::sampling_defaults(&bundle.manifest));
    sampling.validate()?;
    let mut pipeline = Pipeline::load(&runtime, bundle, &args.session.config())?;
    if let Some(reason) = &pipeline.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let mut request = Request::new(args.prompt.clone()).with_images(args.images.iter().cloned()).with_sampling(sampling).with_chat(args.chat);
    request.max_new_tokens = args.max_tokens;

    let mut stdout = std::io::stdout().lock();
    let output = pipeline.run(&request, |piece| {
        if !args.json {
            stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| Error::io("<stdout>", e))?;
        }
        Ok(())
    })?;
    if args.json {
        let decode_ms = output.timings.get("decode").unwrap_or(0.0);
        let steps = output.token_ids.len().saturating_sub(1);
        let json = serde_json::json!({
            "bundle": pipeline.bundle().name(),
            "prompt_tokens": output.prompt_ids.len(),
            "token_ids": output.token_ids,
            "text": output.text,
            "stop_reason": output.stop_reason,
            "stages": output.timings.to_json(),
            "load_ms": pipeline.load_time().as_secs_f64() * 1e3,
            "decode_tokens_per_s": if decode_ms > 0.0 { steps as f64 / (decode_ms / 1e3) } else { 0.0 },
            "sampling": request.sampling,
            "execution_provider": pipeline.provider(),
            "onnxruntime": pipeline.runtime_info(),
        });
        writeln!(stdout, "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        writeln!(stdout).map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}

/// A missing or non-file image is reported before any model is loaded.
fn check_image_path(image: &std::path::Path) -> Result<()> {
    let problem = match std::fs::metadata(image) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) if meta.is_dir() => "is a directory, expected an image file",
        Ok(_) => "is not a regular file, expected an image file",
        Err(e) => return Err(Error::io(image, e)),
    };
    Err(Error::io(image, std::io::Error::new(std::io::ErrorKind::InvalidInput, problem)))
}
