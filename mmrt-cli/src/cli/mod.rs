//! The clap front end: `mmrt run`, `mmrt chat`, `mmrt inspect`, `mmrt bench`, `mmrt import`, `mmrt assist`, `mmrt serve`, `mmrt watch`, `mmrt --version`.
//! Raw arguments are turned into library types here; the library never sees clap.

mod assist;
mod bench;
mod chat;
mod consistency;
mod frames;
mod import;
mod inspect;
mod run;
mod serve;
mod speak;
mod transcribe;
mod video_args;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use mmrt::runtime::provider_options::ProviderSpec;
use mmrt::runtime::{ExecutionProviderKind, OrtRuntime, SessionConfig, SessionPlan};

/// mmrt: run multimodal LLMs (every stage its own ONNX graph) on edge devices.
#[derive(Debug, Parser)]
#[command(name = "mmrt", disable_version_flag = true, arg_required_else_help = true)]
pub struct Cli {
    /// ONNX Runtime library to load (otherwise: $MMRT_ORT_LIB, next to the
    /// executable, .cache/onnxruntime/, a Python onnxruntime package).
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print mmrt's version, the ONNX Runtime version and its execution providers.
    #[arg(short = 'V', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text from a prompt and optional images, transcribe --audio with a speech bundle,
    /// speak with a voice bundle, or generate a height map with a consistency generator bundle.
    Run(run::RunArgs),
    /// Chat on stdin/stdout, one message per line, keeping the KV cache across turns (/reset, /exit).
    Chat(chat::ChatArgs),
    /// Show a bundle's stages, tensors, and the runtime's providers.
    Inspect(inspect::InspectArgs),
    /// Measure every stage's latency, throughput and memory on each execution provider.
    Bench(bench::BenchArgs),
    /// Import a model from another format as a bundle (GGUF: llama, qwen2, gemma3).
    Import(import::ImportArgs),
    /// Voice assistant: speech in -> speech recognition -> chat LLM -> text to speech -> WAV.
    Assist(assist::AssistArgs),
    /// OpenAI-compatible HTTP server (chat, completions, transcriptions, speech) over one or more bundles.
    Serve(serve::ServeArgs),
    /// Answer a prompt about the latest frames of a live stream (camera, pipe, clip) every interval.
    Watch(watch::WatchArgs),
    /// Decode and sample a video as `run --video` would; write the frames or report them (--json).
    Frames(frames::FramesArgs),
}

/// Options shared by commands that open sessions.
#[derive(Debug, Args, Clone)]
pub struct SessionArgs {
    /// Execution provider of every stage, with its options as ONNX Runtime names them:
    /// `cpu`, `cuda`, `tensorrt`, `coreml`, e.g. `cuda:device_id=0,gpu_mem_limit=4GiB`
    /// (TensorRT runs backed by CUDA, every provider backed by the CPU).
    #[arg(long, value_parser = parse_provider, default_value = "cpu", value_name = "PROVIDER[:KEY=VALUE,...]")]
    pub ep: ProviderSpec,
    /// Fail when a stage's provider cannot register, or leaves any of its nodes
    /// to another provider, instead of running them on the next provider.
    #[arg(long)]
    pub strict_ep: bool,
    /// One stage's provider and options, NAME=PROVIDER[:KEY=VALUE,...] (repeatable),
    /// e.g. `--ep-stage vision_encoder=cuda:device_id=0` with the rest on `--ep`.
    #[arg(long = "ep-stage", value_name = "NAME=PROVIDER[:KEY=VALUE,...]")]
    pub ep_stage: Vec<String>,
    /// Intra-op threads, 1 to 4x the logical cores (default: ONNX Runtime's choice).
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<u16>,
    /// Per-stage session setting, NAME:KEY=VALUE (repeatable): KEY is `ep`,
    /// `ep.OPTION` (a provider option), `threads`, `arena` (0: no CPU memory arena) or an ONNX Runtime session key
    /// (e.g. `decoder:session.disable_prepacking=1`).
    #[arg(long = "stage", value_name = "NAME:KEY=VALUE")]
    pub stage: Vec<String>,
}

/// Sampling flags shared by `run` and `chat`; a knob not given keeps the bundle's.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
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
}

impl SamplingArgs {
    /// These flags, `max_tokens` and `beams` as changes to the bundle's generation settings
    /// `defaults`, validated together with them.
    pub(crate) fn overrides(
        &self,
        defaults: &mmrt::generate::GenerationConfig,
        max_tokens: Option<usize>,
        beams: Option<usize>,
    ) -> mmrt::Result<mmrt::generate::GenerationOverrides> {
        let (temperature, top_k, top_p) = defaults.sampling.knobs();
        let sampling = mmrt::generate::Sampling::from_knobs(
            self.temperature.unwrap_or(temperature),
            self.top_k.unwrap_or(top_k),
            self.top_p.unwrap_or(top_p),
        )?;
        let overrides = mmrt::generate::GenerationOverrides {
            max_new_tokens: max_tokens,
            sampling: Some(sampling),
            repetition_penalty: self.repetition_penalty,
            num_beams: beams,
            seed: Some(self.seed),
        };
        defaults.with_overrides(&overrides).validate()?;
        Ok(overrides)
    }
}

/// `--threads N`: a whole number from 1 to [`mmrt::limits::max_threads`].
pub(crate) fn parse_threads(text: &str) -> Result<u16, String> {
    let n: u64 = text.trim().parse().map_err(|_| format!("--threads takes a whole number of threads, got \"{text}\""))?;
    mmrt::limits::check_threads(usize::try_from(n).unwrap_or(usize::MAX))?;
    u16::try_from(n).map_err(|_| format!("--threads {n} is too large"))
}

impl SessionArgs {
    fn config(&self) -> SessionConfig {
        SessionConfig {
            provider: self.ep.kind,
            provider_options: self.ep.options.clone(),
            strict_provider: self.strict_ep,
            threads: self.threads.map(usize::from),
            ..SessionConfig::default()
        }
    }

    /// The settings of every stage: `--ep`/`--threads` for all, `--ep-stage` then `--stage` overrides.
    fn plan(&self) -> mmrt::Result<SessionPlan> {
        let per_stage = self.ep_stage.iter().map(|s| mmrt::runtime::plan::parse_ep_stage_flag(s));
        let settings = self.stage.iter().map(|s| mmrt::runtime::plan::parse_stage_flag(s));
        let overrides = per_stage.chain(settings).collect::<mmrt::Result<Vec<_>>>()?;
        Ok(SessionPlan::uniform(self.config()).with_overrides(overrides.iter().map(|(n, o)| (n, o))))
    }
}

/// `--verify`: hash every checksummed file; otherwise checks remembered from earlier runs stand.
pub(crate) fn verification(full: bool) -> mmrt::verified::Verification {
    if full {
        mmrt::verified::Verification::Full
    } else {
        mmrt::verified::Verification::Remembered
    }
}

/// `--ep PROVIDER[:KEY=VALUE,...]`: the provider and its options, validated.
pub(crate) fn parse_provider(text: &str) -> Result<ProviderSpec, String> {
    text.parse()
}

/// `--ep` values of `bench`: the provider names, listed in clap's error for a wrong one.
pub(crate) fn ep_parser() -> impl clap::builder::TypedValueParser<Value = ExecutionProviderKind> {
    use clap::builder::TypedValueParser;
    let names: Vec<&'static str> = ExecutionProviderKind::ALL.iter().map(|k| k.cli_name()).collect();
    clap::builder::PossibleValuesParser::new(names).map(|s| s.parse::<ExecutionProviderKind>().expect("a listed name"))
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp(None).init();
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: &Cli) -> mmrt::Result<()> {
    if cli.version {
        return print_version(cli);
    }
    match &cli.command {
        Some(Command::Run(args)) => run::run(cli, args),
        Some(Command::Chat(args)) => chat::chat(cli, args),
        Some(Command::Inspect(args)) => inspect::inspect(cli, args),
        Some(Command::Bench(args)) => bench::bench(cli, args),
        Some(Command::Import(args)) => import::import(args),
        Some(Command::Assist(args)) => assist::assist(cli, args),
        Some(Command::Serve(args)) => serve::serve(cli, args),
        Some(Command::Watch(args)) => watch::watch(cli, args),
        Some(Command::Frames(args)) => frames::frames(args),
        None => Ok(()),
    }
}

fn print_version(cli: &Cli) -> mmrt::Result<()> {
    println!("mmrt {}", env!("CARGO_PKG_VERSION"));
    let rt = OrtRuntime::load(cli.ort_lib.as_deref())?;
    println!("onnxruntime {} ({}, found by: {})", rt.info.version, rt.info.library.display(), rt.info.found_by);
    println!("execution providers: {}", mmrt::runtime::ep::available_providers().join(", "));
    if let Some(cuda) = &rt.info.cuda {
        let root = cuda.root.as_ref().map_or("none found".to_string(), |r| r.display().to_string());
        println!("CUDA libraries: {} found in {root}; missing: {}", cuda.found.len(), if cuda.missing.is_empty() { "none".to_string() } else { cuda.missing.join(", ") });
        println!("NVIDIA driver: {}", cuda.driver.as_deref().unwrap_or("not found (CUDA 13 needs >= 580)"));
    }
    Ok(())
}
