//! `mmrt bench`: per-stage latency, throughput and memory of a bundle on each
//! execution provider, with a roofline figure for decoding.
//!
//! The parent process checks the bundle, measures memory bandwidth
//! ([`probe`]) and the decoder's weight bytes ([`weights`]), then runs one
//! child process per execution provider ([`measure_provider`] there). A child
//! per provider keeps the figures honest: its first load is a true cold load
//! for the process, and its peak resident memory ([`memory`]) belongs to that
//! provider alone. A GPU provider's child also measures its device memory
//! peak and the device bandwidth its roofline divides by ([`device`]). A
//! provider that cannot register is skipped, one whose child fails is
//! reported failed, each with the reason, and the others are still measured.
//! [`report`] and [`chart`] turn the results into a table, JSON, CSV and an
//! SVG chart.

pub mod chart;
pub mod device;
pub mod memory;
pub mod probe;
pub mod report;
pub mod start;
pub mod stats;
pub use mmrt::onnx_proto as weights;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use mmrt::tokenizer::TextTokenizer;

use mmrt::error::{Error, Result};
use mmrt::generate::Sampling;
use mmrt::manifest::Modality;
use mmrt::pipeline::{EmbeddingCache, LoadOptions};
use mmrt::runtime::{ExecutionProviderKind, OrtRuntime, SessionConfig, SessionPlan};
use mmrt::{Bundle, Pipeline, Request};
use stats::{Series, Summary};

/// Width and height of the synthetic photo used when no `--image` is given
/// (a full-HD frame, the size a camera or screenshot hands a user).
pub const SYNTHETIC_PHOTO_SIZE: (u32, u32) = (1920, 1080);
/// JPEG quality of the synthetic photo (a typical camera setting).
const SYNTHETIC_PHOTO_QUALITY: u8 = 90;
/// Timed repetitions of the bandwidth probe.
const PROBE_REPS: usize = 5;

/// What to measure, shared by the parent and the per-provider children.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Execution providers, in report order.
    pub providers: Vec<ExecutionProviderKind>,
    /// Intra-op threads (`None`: ONNX Runtime's choice).
    pub threads: Option<usize>,
    /// Images of every request (empty with an image encoder: a synthetic photo).
    pub images: Vec<PathBuf>,
    /// Videos of every request.
    pub videos: Vec<PathBuf>,
    /// The user prompt.
    pub prompt: PromptSpec,
    /// Tokens generated per request (stop tokens ignored).
    pub new_tokens: usize,
    /// Measured requests per provider.
    pub runs: usize,
    /// Unmeasured requests before them.
    pub warmup: usize,
    /// `--ort-lib`, passed on to the children.
    pub ort_lib: Option<PathBuf>,
    /// Fresh `mmrt run --max-tokens 1` processes timed per provider (0: none).
    pub start_runs: usize,
    /// Also time them with the page cache dropped before each.
    pub cold_start: bool,
}

/// The prompt text, given or built to a token count.
#[derive(Debug, Clone)]
pub enum PromptSpec {
    /// Use this text.
    Text(String),
    /// Build a text of this many tokens (see [`synthetic_prompt`]).
    Tokens(usize),
}

impl Default for PromptSpec {
    /// A short instruction, as a user would type it.
    fn default() -> Self {
        PromptSpec::Text("Describe the image.".into())
    }
}

/// Outcome of one execution provider: `figures`, else the reason in
/// `skipped` (it could not register) or `failed` (measuring it failed).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProviderResult {
    /// Provider asked for (`cpu`, `cuda`, ...).
    pub ep: ExecutionProviderKind,
    /// Why it was not measured (it could not register), if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why measuring it failed (it registered, then loading or running
    /// failed, or its process died), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The figures, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Figures>,
    /// Decode against the memory-bandwidth ceiling, or why there is none
    /// (filled in by the parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<device::Measured<Roofline>>,
    /// Process start -> first token (filled in by the parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<start::StartFigures>,
    /// Why the start-up probe failed, when it did (the figures above stand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_failed: Option<String>,
}

impl ProviderResult {
    /// `ep` with nothing filled in yet.
    fn empty(ep: ExecutionProviderKind) -> Self {
        ProviderResult { ep, skipped: None, failed: None, figures: None, roofline: None, start: None, start_failed: None }
    }

    /// `ep` measured: `figures`.
    pub fn measured(ep: ExecutionProviderKind, figures: Figures) -> Self {
        ProviderResult { figures: Some(figures), ..Self::empty(ep) }
    }

    /// `ep` could not register, because `reason`.
    pub fn skipped(ep: ExecutionProviderKind, reason: String) -> Self {
        ProviderResult { skipped: Some(reason), ..Self::empty(ep) }
    }

    /// Measuring `ep` failed, because `reason`.
    pub fn failed(ep: ExecutionProviderKind, reason: String) -> Self {
        ProviderResult { failed: Some(reason), ..Self::empty(ep) }
    }

    /// `measured`, `skipped` or `failed`.
    pub fn status(&self) -> &'static str {
        match (&self.figures, &self.skipped) {
            (Some(_), _) => "measured",
            (None, Some(_)) => "skipped",
            (None, None) => "failed",
        }
    }

    /// Why there are no figures, when there are none.
    pub fn reason(&self) -> Option<&str> {
        match self.figures {
            Some(_) => None,
            None => Some(self.skipped.as_deref().or(self.failed.as_deref()).unwrap_or("no figures and no reason given")),
        }
    }
}

/// Every figure measured for one provider. Times in milliseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// Loading the ONNX Runtime library and creating its environment.
    pub runtime_init_ms: f64,
    /// First bundle load in the process: manifest, checksums, tokenizer, sessions.
    pub load_cold_ms: f64,
    /// Later loads of the same bundle in the same process (one per run).
    pub load_warm_ms: Summary,
    /// Each stage of a request, in pipeline order, named as the pipeline names
    /// them (`preprocess`, encoder and projector stage names, `embed`,
    /// `prefill`, `decode`, and whatever stages a bundle adds).
    #[serde(with = "ordered")]
    pub stages_ms: Vec<(String, Summary)>,
    /// Prompt tokens / prefill time.
    pub prefill_tokens_per_s: Summary,
    /// From the start of a request to its first sampled token.
    pub time_to_first_token_ms: Summary,
    /// Decode steps / decode time (each step: embed, decoder forward, sample).
    pub decode_tokens_per_s: Summary,
    /// Decode time / decode steps.
    pub decode_ms_per_token: Summary,
    /// Prompt length after placeholder expansion (BOS, template, media rows included).
    pub prompt_tokens: usize,
    /// Tokens generated per request.
    pub new_tokens: usize,
    /// Per-token latency over every decode step of the measured runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_latency_ms: Option<stats::Percentiles>,
    /// Peak resident memory of the measuring process after its runs.
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory right after the cold load.
    pub rss_after_load_bytes: Option<u64>,
    /// That memory by kind: anonymous (heap: weights copied or prepacked, the
    /// tokenizer, buffers) and file-backed (mapped weights, libraries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_load: Option<memory::Breakdown>,
    /// Video reading and the embedding cache, when the requests have videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoFigures>,
    /// Accelerators: per stage, the nodes ONNX Runtime left to the CPU
    /// provider (`stage: what`), from its placement log; empty when none were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_on_cpu: Vec<String>,
    /// The ONNX Runtime library the measuring process loaded (a GPU provider's
    /// may differ from the report's `environment.onnxruntime_library`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime_library: Option<PathBuf>,
    /// GPU providers: the device memory the process held at its peak (load
    /// and runs), or why it was not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory: Option<device::Measured<device::DeviceMemory>>,
    /// GPU providers: device copy bandwidth (the roofline's ceiling), or why
    /// it was not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_bandwidth: Option<device::Measured<device::DeviceBandwidth>>,
}

/// Video figures: measured runs encode every frame (the embedding cache is
/// off for them, so encoder times are real); then one request is repeated
/// with the cache on and its second run's hits are reported.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VideoFigures {
    /// Frames used per request (all videos).
    pub frames: usize,
    /// Decoding and sampling, per request.
    pub decode_ms: Summary,
    /// Preprocessing per frame.
    pub preprocess_ms_per_frame: Summary,
    /// Encoder time per frame.
    pub encode_ms_per_frame: Summary,
    /// Hits / lookups of the repeated request with the cache on.
    pub cache_hit_rate: f64,
    /// Encoder time of that repeated request (0 when every frame hit).
    pub cached_encode_ms: f64,
}

/// Decoding against the machine's memory bandwidth.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Roofline {
    /// Decoder weight bytes read per generated token.
    pub weight_bytes_per_token: u64,
    /// Weight bytes × median decode tokens/s.
    pub achieved_bytes_per_s: f64,
    /// Median measured copy bandwidth.
    pub bandwidth_bytes_per_s: f64,
    /// Which memory that bandwidth is of: [`Roofline::HOST`] or [`Roofline::DEVICE`].
    #[serde(default)]
    pub bandwidth_of: String,
    /// `achieved / bandwidth`: the fraction of the physical limit reached.
    pub fraction: f64,
}

impl Roofline {
    /// Host providers: host memory, the report's `memory_bandwidth` probe.
    pub const HOST: &'static str = "host memory (memory_bandwidth)";
    /// GPU providers: device memory, the provider's `device_bandwidth` probe.
    pub const DEVICE: &'static str = "device memory (figures.device_bandwidth)";

    /// The roofline of `figures` given the weight bytes and measured
    /// bandwidth (of the memory `bandwidth_of` names).
    pub fn of(figures: &Figures, weight_bytes: u64, bandwidth: f64, bandwidth_of: &str) -> Roofline {
        let achieved = weight_bytes as f64 * figures.decode_tokens_per_s.median;
        Roofline {
            weight_bytes_per_token: weight_bytes,
            achieved_bytes_per_s: achieved,
            bandwidth_bytes_per_s: bandwidth,
            bandwidth_of: bandwidth_of.to_string(),
            fraction: achieved / bandwidth,
        }
    }

    /// The roofline of provider `ep`'s `figures`: against the host bandwidth
    /// for host providers, against the device bandwidth its child measured
    /// for GPU providers (the host figure would be the wrong ceiling there:
    /// no roofline rather than a wrong one when the device was not measured).
    pub fn for_provider(ep: ExecutionProviderKind, figures: &Figures, weight_bytes: u64, host_bandwidth: f64) -> device::Measured<Roofline> {
        if !ep.is_gpu() {
            return device::Measured::Value(Roofline::of(figures, weight_bytes, host_bandwidth, Roofline::HOST));
        }
        match &figures.device_bandwidth {
            Some(device::Measured::Value(bw)) => device::Measured::Value(Roofline::of(figures, weight_bytes, bw.bytes_per_s.median, Roofline::DEVICE)),
            Some(device::Measured::NotMeasured { not_measured }) => device::Measured::not(format!("device bandwidth not measured: {not_measured}")),
            None => device::Measured::not("device bandwidth not measured: the measuring process reported none"),
        }
    }
}

/// Everything a bench run produced (see [`report`] for its renderings).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// mmrt's version.
    pub mmrt_version: String,
    /// Machine, runtime and bundle.
    pub environment: Environment,
    /// What was run.
    pub settings: Settings,
    /// Measured memory bandwidth.
    pub memory_bandwidth: probe::Bandwidth,
    /// Decoder weights (the roofline's bytes per token).
    pub decoder_weights: DecoderWeights,
    /// How `peak_rss_bytes` and `rss_after_load_bytes` are measured.
    pub memory_method: String,
    /// One entry per provider asked for.
    pub providers: Vec<ProviderResult>,
}

/// The machine, runtime and bundle a report was measured on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Environment {
    /// CPU model name (`/proc/cpuinfo`), or "unknown".
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub logical_cores: usize,
    /// Intra-op threads asked for (`null`: ONNX Runtime's default, one per physical core).
    pub threads: Option<usize>,
    /// Operating system and architecture.
    pub os: String,
    /// ONNX Runtime version.
    pub onnxruntime_version: String,
    /// The ONNX Runtime library file.
    pub onnxruntime_library: PathBuf,
    /// Bundle name (from its manifest).
    pub bundle: String,
    /// Bundle directory.
    pub bundle_path: PathBuf,
    /// Weight format of the decoder (see [`weights::WeightInfo::quantization`]).
    pub quantization: String,
}

/// The request every provider ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// Measured requests.
    pub runs: usize,
    /// Warm-up requests before them.
    pub warmup: usize,
    /// Tokens generated per request (stop tokens ignored, greedy).
    pub new_tokens: usize,
    /// The user prompt text.
    pub prompt: String,
    /// `--prompt-tokens`, when the prompt was built to a length.
    pub prompt_text_tokens: Option<usize>,
    /// Images per request (a synthetic photo is described, not named by path).
    pub images: Vec<String>,
    /// Videos per request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub videos: Vec<String>,
    /// Sampling used.
    pub sampling: String,
}

/// The decoder graph's weights.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecoderWeights {
    /// The graph file, relative to the bundle.
    pub graph: String,
    /// How the bytes are counted.
    pub method: String,
    /// What was counted.
    #[serde(flatten)]
    pub info: weights::WeightInfo,
}

/// Run the whole benchmark: `exe` is the `mmrt` binary the children run.
pub fn run(exe: &Path, config: &BenchConfig) -> Result<Report> {
    let bundle = Bundle::open(&config.bundle)?;
    let runtime = OrtRuntime::load(config.ort_lib.as_deref())?;
    let Some(decoder) = bundle.manifest.llm_decoder() else {
        return Err(Error::Bench(format!(
            "bundle \"{}\" has no LLM decoder: `mmrt bench` measures LLM bundles; time speech recognition, \
             voices and generators with `mmrt run --json` (per-stage timings) or benches/peers/",
            bundle.name()
        )));
    };
    let decoder_graph = decoder.graph.clone();
    let mut info = weights::read(&bundle.resolve(&decoder_graph)?)?;
    if let Some(table) = &decoder.token_table {
        // The output layer reads the whole token table every token (the lookup only the rows asked for).
        let path = bundle.resolve(&table.file)?;
        let bytes = std::fs::metadata(&path).map_err(|e| mmrt::Error::io(&path, e))?.len();
        info.bytes += bytes;
        info.bytes_per_step += bytes;
        info.tensors += 1;
        *info.bytes_by_type.entry("token table (uint8 codes + float16 scales)".into()).or_default() += bytes;
        *info.quantized_ops.entry("token table q8_0 (mmrt)".into()).or_default() += 1;
    }

    let (prompt, prompt_text_tokens) = match &config.prompt {
        PromptSpec::Text(t) => (t.clone(), None),
        PromptSpec::Tokens(n) => {
            let tokenizer = mmrt::tokenizer::open(&bundle)?;
            (synthetic_prompt(&tokenizer, *n)?, Some(*n))
        }
    };
    let scratch = ScratchDir::new()?;
    let (images, image_notes) = if config.images.is_empty() && bundle.manifest.encoder(Modality::Image).is_some() {
        let path = scratch.0.join("synthetic_photo.jpg");
        write_synthetic_photo(&path)?;
        let (w, h) = SYNTHETIC_PHOTO_SIZE;
        (vec![path], vec![format!("synthetic {w}x{h} JPEG photo (quality {SYNTHETIC_PHOTO_QUALITY})")])
    } else {
        (config.images.clone(), config.images.iter().map(|p| p.display().to_string()).collect())
    };

    let logical_cores = std::thread::available_parallelism().map_or(1, usize::from);
    let bandwidth = probe::measure(config.threads.unwrap_or(logical_cores), PROBE_REPS);

    let child = BenchConfig { images, prompt: PromptSpec::Text(prompt.clone()), ..config.clone() };
    let mut providers = Vec::new();
    // A provider that fails is reported as failed; the others are still measured.
    for &ep in &config.providers {
        let out = scratch.0.join(format!("{}.json", ep.cli_name()));
        let mut result = run_child(exe, &child, ep, &out).unwrap_or_else(|e| ProviderResult::failed(ep, e.to_string()));
        if let Some(f) = &result.figures {
            result.roofline = Some(Roofline::for_provider(ep, f, info.bytes_per_step, bandwidth.bytes_per_s.median));
            // The library this provider's processes load (a GPU build for GPU providers), for --cold-start to evict.
            let library = f.onnxruntime_library.clone().unwrap_or_else(|| runtime.info.library.clone());
            match start::measure(exe, &library, &child, ep) {
                Ok(start) => result.start = start,
                Err(e) => result.start_failed = Some(e.to_string()),
            }
        }
        providers.push(result);
    }

    Ok(Report {
        mmrt_version: env!("CARGO_PKG_VERSION").into(),
        environment: Environment {
            cpu_model: cpu_model(),
            logical_cores,
            threads: config.threads,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            onnxruntime_version: runtime.info.version.clone(),
            onnxruntime_library: runtime.info.library.clone(),
            bundle: bundle.name().to_string(),
            bundle_path: bundle.root.clone(),
            quantization: info.quantization.clone(),
        },
        settings: Settings {
            runs: config.runs,
            warmup: config.warmup,
            new_tokens: config.new_tokens,
            prompt,
            prompt_text_tokens,
            images: image_notes,
            videos: config.videos.iter().map(|p| p.display().to_string()).collect(),
            sampling: "greedy (arg-max), stop tokens ignored".into(),
        },
        memory_bandwidth: bandwidth,
        decoder_weights: DecoderWeights { graph: decoder_graph, method: weights::METHOD.into(), info },
        memory_method: memory::METHOD.into(),
        providers,
    })
}

/// `exe [--ort-lib L] SUBCOMMAND --bundle B --ep EP [--threads N] [--image P]...
/// [--video P]... [--prompt T]`: the request every child process of the
/// bench is given (the measuring worker and the start-up probes).
pub(crate) fn child_command(exe: &Path, config: &BenchConfig, subcommand: &str, ep: ExecutionProviderKind) -> Command {
    let mut cmd = Command::new(exe);
    if let Some(lib) = &config.ort_lib {
        cmd.arg("--ort-lib").arg(lib);
    }
    cmd.arg(subcommand).arg("--bundle").arg(&config.bundle).args(["--ep", ep.cli_name()]);
    if let Some(n) = config.threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    for image in &config.images {
        cmd.arg("--image").arg(image);
    }
    for video in &config.videos {
        cmd.arg("--video").arg(video);
    }
    if let PromptSpec::Text(t) = &config.prompt {
        cmd.arg("--prompt").arg(t);
    }
    cmd
}

/// Run `mmrt bench --worker-out FILE` for one provider and read its result.
/// A worker whose measuring failed writes a [`ProviderResult::failed`] with
/// its error before exiting non-zero; one that died without writing (a crash
/// in a provider library, a signal) becomes a failed result naming how it
/// ended. `Err` only when the worker cannot start or wrote an unreadable file.
fn run_child(exe: &Path, config: &BenchConfig, ep: ExecutionProviderKind, out: &Path) -> Result<ProviderResult> {
    let mut cmd = child_command(exe, config, "bench", ep);
    cmd.arg("--new-tokens").arg(config.new_tokens.to_string());
    cmd.arg("--runs").arg(config.runs.to_string()).arg("--warmup").arg(config.warmup.to_string());
    cmd.arg("--worker-out").arg(out);
    let _ = std::fs::remove_file(out);
    let status = cmd.status().map_err(|e| Error::Bench(format!("cannot start {}: {e}", exe.display())))?;
    let text = match std::fs::read_to_string(out) {
        Ok(text) => text,
        Err(_) => {
            return Ok(ProviderResult::failed(
                ep,
                format!("the measuring process {} without writing a result (its output is above)", ended(status)),
            ))
        }
    };
    let mut result: ProviderResult =
        serde_json::from_str(&text).map_err(|e| Error::Bench(format!("unreadable result {} of --ep {}: {e}", out.display(), ep.cli_name())))?;
    if !status.success() && result.reason().is_none() {
        // Figures written, then the process failed (while exiting): the figures stand, the failure is named.
        result.failed = Some(format!("the measuring process {} after writing its figures", ended(status)));
    }
    Ok(result)
}

/// How a process ended, for a failure reason: "exited with status 3",
/// "was killed by signal 11 (SIGSEGV)".
fn ended(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL: out of memory?)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended ({status})"),
    }
}

/// Measure one provider in this process (the child side of [`run`]): cold
/// load, warm-up, measured runs, then warm loads; for a GPU provider also its
/// device memory peak (sampled over load and runs) and, last, the device
/// copy bandwidth. A provider that cannot register is reported as skipped,
/// with the reason.
pub fn measure_provider(config: &BenchConfig, ep: ExecutionProviderKind) -> Result<ProviderResult> {
    // Before the runtime loads: the device-wide fallback measures growth from here.
    let sampler = ep.is_gpu().then(|| device::MemorySampler::start(std::process::id()));
    let start = Instant::now();
    // A GPU provider: a GPU build first, its CUDA libraries preloaded.
    let runtime = OrtRuntime::load_for(config.ort_lib.as_deref(), ep.is_gpu())?;
    let runtime_init_ms = ms(start);
    // Not strict: nodes ONNX Runtime leaves to the CPU run there, as for a
    // user's `--ep`; a provider that does not register is caught below.
    let session = SessionConfig { provider: ep, strict_provider: false, threads: config.threads, ..SessionConfig::default() };
    // Off for the measured runs (real encoder times), on for the cache figures.
    let cache = Arc::new(EmbeddingCache::in_memory(0));
    let options = LoadOptions { sessions: SessionPlan::uniform(session), embedding_cache: Some(cache.clone()), ..LoadOptions::default() };
    let load = || -> Result<Pipeline> { Pipeline::load_with(&runtime, Bundle::open(&config.bundle)?, &options) };

    let start = Instant::now();
    let mut pipeline = match load() {
        Ok(p) => p,
        Err(Error::ExecutionProvider { reason, .. }) => return Ok(ProviderResult::skipped(ep, reason)),
        Err(e) => return Err(e),
    };
    let load_cold_ms = ms(start);
    // Some stage fell back (the provider did not register): its figures would be another provider's.
    if let Some(reason) = &pipeline.provider().fallback_reason {
        return Ok(ProviderResult::skipped(ep, reason.clone()));
    }
    let nodes_on_cpu: Vec<String> =
        pipeline.provider().stages.iter().filter_map(|s| s.nodes_on_cpu().map(|n| format!("{}: {n}", s.stage))).collect();
    let rss_after_load_bytes = memory::current_rss_bytes();
    let rss_after_load = memory::breakdown();

    let PromptSpec::Text(prompt) = &config.prompt else {
        return Err(Error::Bench("the worker needs the prompt text".into()));
    };
    let request = Request::new(prompt.clone())
        .with_images(config.images.iter().cloned())
        .with_videos(config.videos.iter().cloned())
        .with_sampling(Sampling::Greedy, 0)
        .with_max_new_tokens(config.new_tokens)
        .with_ignore_stop_tokens(true);

    let progress = indicatif::ProgressBar::new((config.warmup + 2 * config.runs) as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(ep.cli_name());

    progress.set_message("warm-up");
    let mut prompt_tokens = 0;
    for _ in 0..config.warmup.max(1) {
        let out = pipeline.run(&request, |_| Ok(()))?;
        prompt_tokens = out.prompt_ids.len();
        if out.token_ids.len() < config.new_tokens {
            return Err(Error::Request(format!(
                "the prompt ({prompt_tokens} tokens) plus {} new tokens does not fit the context of {} ({}); lower --prompt-tokens or --new-tokens",
                config.new_tokens,
                pipeline.bundle().name(),
                pipeline.bundle().manifest.decoder().context_length
            )));
        }
        if config.warmup > 0 {
            progress.inc(1);
        }
    }

    progress.set_message("runs");
    let mut stages = Series::default();
    let mut derived = Series::default();
    let mut video = Series::default();
    let mut frames = 0;
    let mut token_gaps = Vec::new();
    for _ in 0..config.runs {
        let out = pipeline.run(&request, |_| Ok(()))?;
        token_gaps.extend_from_slice(&out.token_gaps_ms);
        frames = record_video(&out, &mut video);
        for (name, value) in &out.timings.0 {
            stages.push(name, *value);
        }
        let prefill_s = out.timings.get("prefill").unwrap_or(f64::NAN) / 1e3;
        derived.push("prefill_tokens_per_s", out.prompt_ids.len() as f64 / prefill_s);
        derived.push("ttft_ms", out.time_to_first_token.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3));
        let steps = out.token_ids.len().saturating_sub(1) as f64;
        let decode_ms = out.timings.get("decode").unwrap_or(f64::NAN);
        derived.push("decode_tokens_per_s", steps / (decode_ms / 1e3));
        derived.push("decode_ms_per_token", decode_ms / steps);
        progress.inc(1);
    }
    let peak_rss_bytes = memory::peak_rss_bytes();
    let device_memory = sampler.map(device::MemorySampler::finish);
    let video = match config.videos.is_empty() {
        true => None,
        false => Some(video_figures(&mut pipeline, &request, &cache, video, frames)?),
    };
    drop(pipeline);

    progress.set_message("warm loads");
    let mut warm = Vec::with_capacity(config.runs);
    for _ in 0..config.runs {
        let start = Instant::now();
        drop(load()?);
        warm.push(ms(start));
        progress.inc(1);
    }
    if ep.is_gpu() {
        progress.set_message("device bandwidth");
    }
    // Last: its buffers must not count in the memory peak, nor its copies in the timings.
    let device_bandwidth = ep.is_gpu().then(|| device::gpu_copy_bandwidth(&runtime, PROBE_REPS));
    progress.finish_and_clear();

    let mut derived: std::collections::HashMap<String, Summary> = derived.summaries().into_iter().collect();
    let mut take = |name: &str| {
        derived.remove(name).ok_or_else(|| Error::Bench(format!("no finite sample of {name} (did a stage not run?)")))
    };
    let figures = Figures {
        runtime_init_ms,
        load_cold_ms,
        load_warm_ms: Summary::from_samples(warm).ok_or_else(|| Error::Bench("no warm load measured".into()))?,
        stages_ms: stages.summaries(),
        prefill_tokens_per_s: take("prefill_tokens_per_s")?,
        time_to_first_token_ms: take("ttft_ms")?,
        decode_tokens_per_s: take("decode_tokens_per_s")?,
        decode_ms_per_token: take("decode_ms_per_token")?,
        prompt_tokens,
        new_tokens: config.new_tokens,
        token_latency_ms: stats::Percentiles::from_samples(token_gaps),
        peak_rss_bytes,
        rss_after_load_bytes,
        rss_after_load,
        video,
        nodes_on_cpu,
        onnxruntime_library: Some(runtime.info.library.clone()),
        device_memory,
        device_bandwidth,
    };
    Ok(ProviderResult::measured(ep, figures))
}

/// One run's video samples; returns its frame count.
fn record_video(out: &mmrt::Output, series: &mut Series) -> usize {
    let videos = &out.input_report.videos;
    let frames: usize = videos.iter().map(|v| v.seconds.len()).sum();
    if frames > 0 {
        let per_frame = |f: fn(&mmrt::pipeline::VideoReport) -> f64| videos.iter().map(f).sum::<f64>() / frames as f64;
        series.push("decode_ms", videos.iter().map(|v| v.decode_ms).sum());
        series.push("preprocess_ms_per_frame", per_frame(|v| v.preprocess_ms));
        series.push("encode_ms_per_frame", per_frame(|v| v.encode_ms));
    }
    frames
}

/// The video summaries, then the request twice with the cache on: the second's hit rate.
fn video_figures(pipeline: &mut Pipeline, request: &Request, cache: &EmbeddingCache, series: Series, frames: usize) -> Result<VideoFigures> {
    cache.set_budget(mmrt::pipeline::cache::DEFAULT_CACHE_BYTES);
    pipeline.run(request, |_| Ok(()))?;
    let repeat = pipeline.run(request, |_| Ok(()))?;
    cache.set_budget(0);
    let mut summaries: std::collections::HashMap<String, Summary> = series.summaries().into_iter().collect();
    let mut take = |name: &str| summaries.remove(name).ok_or_else(|| Error::Bench(format!("no video sample of {name}")));
    Ok(VideoFigures {
        frames,
        decode_ms: take("decode_ms")?,
        preprocess_ms_per_frame: take("preprocess_ms_per_frame")?,
        encode_ms_per_frame: take("encode_ms_per_frame")?,
        cache_hit_rate: repeat.input_report.embedding_cache.hit_rate(),
        cached_encode_ms: repeat.input_report.videos.iter().map(|v| v.encode_ms).sum(),
    })
}

/// A prompt whose text is exactly `tokens` tokens when it can be (a repeated
/// common word; the tokenizer decides), else the shortest text above it.
pub fn synthetic_prompt(tokenizer: &TextTokenizer, tokens: usize) -> Result<String> {
    let text = |words: usize| vec!["the"; words].join(" ");
    let count = |words: usize| -> Result<usize> {
        let enc = tokenizer.encode(&text(words), false).map_err(|e| Error::Tokenizer {
            context: "building the benchmark prompt".into(),
            message: e.to_string(),
        })?;
        Ok(enc.len())
    };
    // Each word is at least one token, so `tokens` words always reach the target.
    let (mut lo, mut hi) = (1, tokens.max(1));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if count(mid)? >= tokens {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(text(lo))
}

/// A deterministic photo-like RGB image: smooth lighting, a few soft shapes
/// and sensor noise, so JPEG decoding and resizing work as hard as on a photo.
pub fn synthetic_photo(width: u32, height: u32) -> image::RgbImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..12)
        .map(|_| {
            let (x, y) = (rng.random::<f32>() * width as f32, rng.random::<f32>() * height as f32);
            let r = (0.05 + rng.random::<f32>() * 0.2) * width as f32;
            (x, y, r, [rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0])
        })
        .collect();
    image::RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let mut px = [90.0 + 120.0 * fy, 110.0 + 60.0 * fx, 160.0 - 80.0 * fy];
        for &(bx, by, r, color) in &blobs {
            let d2 = ((x as f32 - bx).powi(2) + (y as f32 - by).powi(2)) / (r * r);
            let w = (-d2).exp();
            for c in 0..3 {
                px[c] = px[c] * (1.0 - w) + color[c] * w;
            }
        }
        let noise = (rng.random::<f32>() - 0.5) * 16.0;
        image::Rgb(px.map(|v| (v + noise).clamp(0.0, 255.0) as u8))
    })
}

/// Encode [`synthetic_photo`] at [`SYNTHETIC_PHOTO_SIZE`] as JPEG into `path`.
pub fn write_synthetic_photo(path: &Path) -> Result<()> {
    let (w, h) = SYNTHETIC_PHOTO_SIZE;
    let photo = synthetic_photo(w, h);
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, SYNTHETIC_PHOTO_QUALITY)
        .encode_image(&photo)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))
}

/// The CPU's model name from `/proc/cpuinfo`, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// A private temporary folder (children's results, the synthetic photo),
/// removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("mmrt-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serialize `[(name, summary)]` as a JSON object keeping the order.
mod ordered {
    use super::Summary;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[(String, Summary)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Summary)>, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        map.into_iter()
            .map(|(k, v)| serde_json::from_value(v).map(|s| (k, s)).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// A report with two measured providers (CPU, and CUDA with device figures),
/// one skipped and one failed, for rendering tests.
#[cfg(test)]
pub(crate) fn sample_report() -> Report {
    let s = |v: f64| Summary::from_samples(vec![v * 0.9, v, v * 1.2]).unwrap();
    let figures = |scale: f64, extra: Option<&str>| {
        let mut stages = vec![("preprocess".to_string(), s(12.0)), ("vision_encoder".to_string(), s(0.3 * scale))];
        stages.extend(extra.map(|name| (name.to_string(), s(5.0 * scale))));
        stages.extend([("prefill".to_string(), s(0.5 * scale)), ("decode".to_string(), s(8.0 * scale))]);
        Figures {
            runtime_init_ms: 40.0,
            load_cold_ms: 50.0,
            load_warm_ms: s(40.0),
            stages_ms: stages,
            prefill_tokens_per_s: s(50000.0 / scale),
            time_to_first_token_ms: s(14.0),
            decode_tokens_per_s: s(4000.0 / scale),
            decode_ms_per_token: s(0.25 * scale),
            prompt_tokens: 27,
            new_tokens: 32,
            token_latency_ms: stats::Percentiles::from_samples(vec![0.2 * scale, 0.25 * scale, 0.4 * scale]),
            peak_rss_bytes: Some(48 << 20),
            rss_after_load_bytes: Some(40 << 20),
            rss_after_load: Some(memory::Breakdown { anon_bytes: 30 << 20, file_bytes: 10 << 20 }),
            video: None,
            nodes_on_cpu: Vec::new(),
            onnxruntime_library: None,
            device_memory: None,
            device_bandwidth: None,
        }
    };
    let measured = |ep, f: Figures| {
        let roofline = Some(Roofline::for_provider(ep, &f, 400_000, 8e9));
        let start = Summary::from_samples(vec![300.0, 310.0]).map(|warm_ms| start::StartFigures { warm_ms, cold_ms: None, cold_method: None });
        ProviderResult { roofline, start, ..ProviderResult::measured(ep, f) }
    };
    let mut cuda = figures(0.5, Some("denoiser"));
    cuda.device_memory = Some(device::Measured::Value(device::DeviceMemory { peak_bytes: 600 << 20, samples: 9, method: "test".into() }));
    cuda.device_bandwidth = Some(device::Measured::Value(device::DeviceBandwidth {
        bytes_per_s: s(2e12),
        buffer_bytes: 512 << 20,
        device: "Cuda:0".into(),
        method: "test".into(),
    }));
    Report {
        mmrt_version: "test".into(),
        environment: Environment {
            cpu_model: "Test CPU, 3 GHz".into(),
            logical_cores: 2,
            threads: Some(1),
            os: "linux x86_64".into(),
            onnxruntime_version: "1.31.1".into(),
            onnxruntime_library: "/lib/libonnxruntime.so".into(),
            bundle: "tiny".into(),
            bundle_path: "/models/tiny".into(),
            quantization: "float32".into(),
        },
        settings: Settings {
            runs: 3,
            warmup: 1,
            new_tokens: 32,
            prompt: "Describe the image.".into(),
            prompt_text_tokens: None,
            images: vec!["synthetic".into()],
            videos: Vec::new(),
            sampling: "greedy".into(),
        },
        memory_bandwidth: probe::Bandwidth {
            bytes_per_s: s(8e9),
            buffer_bytes: 64 << 20,
            threads: 1,
            method: "test".into(),
        },
        decoder_weights: DecoderWeights { graph: "decoder.onnx".into(), method: weights::METHOD.into(), info: Default::default() },
        memory_method: memory::METHOD.into(),
        providers: vec![
            measured(ExecutionProviderKind::Cpu, figures(1.0, None)),
            measured(ExecutionProviderKind::Cuda, cuda),
            ProviderResult::skipped(ExecutionProviderKind::Coreml, "not in this build".into()),
            ProviderResult::failed(ExecutionProviderKind::Tensorrt, "loading the decoder: TensorRT could not build an engine".into()),
        ],
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stand-in for the `mmrt` worker: a shell script running `body` with
    /// `$out` set to its `--worker-out` file (the last argument).
    ///
    /// `sh` writes the script, not this process: a test running beside this
    /// one may fork while a write handle of ours is open, and until that
    /// child execs it holds the handle, so running the script would fail
    /// with "Text file busy" (ETXTBSY).
    fn fake_worker(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        let script = format!("#!/bin/sh\nfor a in \"$@\"; do out=\"$a\"; done\n{body}\n");
        let status = std::process::Command::new("sh")
            .args(["-c", r#"printf '%s' "$1" > "$2" && chmod 755 "$2""#, "sh", &script])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "writing {}", path.display());
        path
    }

    fn config() -> BenchConfig {
        BenchConfig {
            bundle: "models/tiny".into(),
            providers: vec![ExecutionProviderKind::Cuda],
            threads: None,
            images: Vec::new(),
            videos: Vec::new(),
            prompt: PromptSpec::default(),
            new_tokens: 2,
            runs: 1,
            warmup: 0,
            ort_lib: None,
            start_runs: 0,
            cold_start: false,
        }
    }

    #[test]
    fn a_failing_worker_becomes_a_failed_result_with_its_reason() {
        let scratch = ScratchDir::new().unwrap();
        let out = scratch.0.join("cuda.json");
        let cuda = ExecutionProviderKind::Cuda;
        let cases = [
            // The worker's own error, written before it exits non-zero.
            (r#"printf '{"ep":"cuda","failed":"CUDA failure 2: out of memory"}' > "$out"; exit 1"#, "CUDA failure 2: out of memory"),
            // Died without writing: how it ended.
            ("exit 3", "the measuring process exited with status 3 without writing a result (its output is above)"),
            ("kill -SEGV $$", "the measuring process was killed by signal 11 (SIGSEGV) without writing a result (its output is above)"),
            // A skipped provider stays skipped.
            (r#"printf '{"ep":"cuda","skipped":"no CUDA here"}' > "$out""#, "no CUDA here"),
        ];
        for (i, (body, reason)) in cases.into_iter().enumerate() {
            let exe = fake_worker(&scratch.0, &format!("worker{i}"), body);
            let result = run_child(&exe, &config(), cuda, &out).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!((result.ep, result.reason()), (cuda, Some(reason)), "{body}");
            assert_eq!(result.status(), if reason.starts_with("no CUDA") { "skipped" } else { "failed" }, "{body}");
        }
    }

    #[test]
    fn figures_then_a_failed_exit_keep_the_figures_and_name_the_failure() {
        let scratch = ScratchDir::new().unwrap();
        let out = scratch.0.join("cpu.json");
        let measured = serde_json::to_string(&sample_report().providers[0]).unwrap();
        let exe = fake_worker(&scratch.0, "worker", &format!("printf '%s' '{measured}' > \"$out\"; exit 101"));
        let result = run_child(&exe, &config(), ExecutionProviderKind::Cpu, &out).unwrap();
        assert_eq!(result.status(), "measured");
        assert_eq!(result.failed.as_deref(), Some("the measuring process exited with status 101 after writing its figures"));
        // An unreadable result is an error of the bench itself, naming the file.
        let exe = fake_worker(&scratch.0, "garbage", r#"echo '{' > "$out""#);
        let err = run_child(&exe, &config(), ExecutionProviderKind::Cpu, &out).unwrap_err().to_string();
        assert!(err.contains("unreadable result") && err.contains("cpu.json"), "{err}");
    }
}
