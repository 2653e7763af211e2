//! `mmrt bench`: arguments → [`BenchConfig`], then either the whole benchmark
//! (table on stdout, `--json`/`--csv`/`--svg` files) or, with the hidden
//! `--worker-out`, one execution provider measured in this process (the
//! child side; see [`crate::bench`]). The benchmark succeeds when at least
//! one provider was measured; the others are reported skipped or failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Cli;
use crate::bench::{self, BenchConfig, PromptSpec};
use mmrt::error::{Error, Result};
use mmrt::runtime::ExecutionProviderKind;

/// Arguments of `mmrt bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Bundle directory (holds bundle.json).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Execution providers to measure, comma-separated; those that cannot
    /// register are skipped, those that fail are reported failed, each with
    /// the reason (the command fails only when none was measured).
    #[arg(long, value_parser = super::ep_parser(), value_delimiter = ',', default_value = "cpu")]
    pub ep: Vec<ExecutionProviderKind>,
    /// Intra-op threads, 1 to 4x the logical cores (default: ONNX Runtime's choice).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<u16>,
    /// Image file per request; repeat for several (default with an image
    /// encoder: a synthetic 1920x1080 JPEG photo).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    /// Video per request (clip, frame directory or animated image); repeat for several.
    /// Adds video decode, per-frame preprocess and encode times and the embedding cache's hit rate.
    #[arg(long = "video", value_name = "PATH")]
    pub videos: Vec<PathBuf>,
    /// User prompt text (default: "Describe the image.").
    #[arg(long, conflicts_with = "prompt_tokens")]
    pub prompt: Option<String>,
    /// Build a prompt whose text is N tokens (template, BOS and image rows come on top).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub prompt_tokens: Option<u32>,
    /// Tokens generated per request (greedy, stop tokens ignored); at least 2
    /// so decoding runs after the prefill's token.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..))]
    pub new_tokens: u32,
    /// Measured runs per execution provider.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Unmeasured warm-up runs before them (at least one always runs, to check
    /// the request fits the context).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub warmup: u32,
    /// Fresh `mmrt run --max-tokens 1` processes timed per provider, process
    /// start to first token with the page cache warm (0: none).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub start_runs: u32,
    /// Also time those processes with the page cache dropped before each
    /// (`/proc/sys/vm/drop_caches` where permitted, else `posix_fadvise` on
    /// every file they read).
    #[arg(long)]
    pub cold_start: bool,
    /// Write every figure, the samples and the environment as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one CSV row per figure.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write an SVG chart of per-stage latency per execution provider.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Internal: measure the single --ep in this process and write its result here.
    #[arg(long, value_name = "FILE", hide = true)]
    pub worker_out: Option<PathBuf>,
}

impl BenchArgs {
    fn config(&self, cli: &Cli) -> BenchConfig {
        let mut providers = Vec::new();
        for ep in &self.ep {
            if !providers.contains(ep) {
                providers.push(*ep);
            }
        }
        let prompt = match (&self.prompt, self.prompt_tokens) {
            (Some(text), _) => PromptSpec::Text(text.clone()),
            (None, Some(n)) => PromptSpec::Tokens(n as usize),
            (None, None) => PromptSpec::default(),
        };
        BenchConfig {
            bundle: self.bundle.clone(),
            providers,
            threads: self.threads.map(usize::from),
            images: self.images.clone(),
            videos: self.videos.clone(),
            prompt,
            new_tokens: self.new_tokens as usize,
            runs: self.runs as usize,
            warmup: self.warmup as usize,
            ort_lib: cli.ort_lib.clone(),
            start_runs: self.start_runs as usize,
            cold_start: self.cold_start,
        }
    }
}

/// Run the command.
pub fn bench(cli: &Cli, args: &BenchArgs) -> Result<()> {
    let config = args.config(cli);
    if let Some(out) = &args.worker_out {
        let [ep] = config.providers[..] else {
            return Err(Error::Bench("--worker-out measures exactly one --ep".into()));
        };
        let (result, failure) = match bench::measure_provider(&config, ep) {
            Ok(result) => (result, None),
            // The parent reports the error in its row; this process still fails.
            Err(e) => (bench::ProviderResult::failed(ep, e.to_string()), Some(e)),
        };
        let text = serde_json::to_string(&result).expect("results serialize");
        std::fs::write(out, text).map_err(|e| Error::io(out, e))?;
        return failure.map_or(Ok(()), Err);
    }

    // Cheap checks before minutes of measuring.
    for image in &args.images {
        super::run::check_input_path(image, "an image file")?;
    }
    super::video_args::check_video_paths(&args.videos)?;
    for out in [&args.json, &args.csv, &args.svg].into_iter().flatten() {
        check_output_path(out)?;
    }
    let exe = std::env::current_exe().map_err(|e| Error::Bench(format!("cannot find the mmrt executable: {e}")))?;
    let report = bench::run(&exe, &config)?;

    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bench::report::table(&report).as_bytes()).map_err(|e| Error::io("<stdout>", e))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&bench::report::json(&report)).expect("JSON value serializes");
        write(path, &text)?;
    }
    if let Some(path) = &args.csv {
        write(path, &bench::report::csv(&report))?;
    }
    if let Some(path) = &args.svg {
        write(path, &bench::chart::svg(&report)?)?;
    }
    if report.providers.iter().all(|p| p.figures.is_none()) {
        let reasons: Vec<String> =
            report.providers.iter().map(|p| format!("{} {}: {}", p.ep.cli_name(), p.status(), p.reason().unwrap_or_default())).collect();
        return Err(Error::Bench(format!("no execution provider could be measured ({})", reasons.join("; "))));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// An output file must be creatable: its folder exists and it is not a folder.
fn check_output_path(path: &Path) -> Result<()> {
    let invalid = |what: &str| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string()));
    if path.is_dir() {
        return Err(invalid("is a directory, expected an output file"));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(invalid("its folder does not exist"));
    }
    Ok(())
}
