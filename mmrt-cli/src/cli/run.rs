//! `mmrt run`: one request through the pipeline, text streamed to stdout or
//! one JSON object with ids, text and per-stage timings; media generated from
//! signal tokens is written into `--out-dir`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{Cli, SamplingArgs, SessionArgs};
use mmrt::error::{Error, Result};
use mmrt::generate::{GenerationConfig, GenerationOverrides};
use mmrt::stages::generator::DiffusionSettings;
use mmrt::runtime::OrtRuntime;
use mmrt::pipeline::LoadOptions;
use mmrt::{Bundle, Pipeline, Request};

/// Arguments of `mmrt run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Bundle directory (holds bundle.json), or an ONNX model folder without one
    /// (onnxruntime-genai or Optimum / transformers.js: its manifest is inferred),
    /// or the decoder graph file of an Optimum folder (DIR/onnx/model_q4.onnx).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Graph variant of an Optimum / transformers.js folder without bundle.json
    /// (q4, fp16, quantized, ... as in onnx/model_q4.onnx; default: the unsuffixed model.onnx).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Image file; repeat for several images (in prompt order).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub video: super::video_args::VideoArgs,
    /// User prompt; may contain the bundle's placeholders (e.g. <image>, <audio>)
    /// to place the media; without them, images then audio go first.
    /// Required for LLM bundles unless the bundle sets `prompt.default_prompt`
    /// (`--prompt ""` then means no instruction); speech-recognition bundles take none.
    #[arg(long)]
    pub prompt: Option<String>,
    /// WAV file: transcribed by a speech-recognition bundle (e.g. models/whisper-base,
    /// one file), or spliced into the prompt by an LLM bundle with an audio encoder
    /// (e.g. models/tiny; repeat for several files, in prompt order).
    #[arg(long = "audio", value_name = "PATH")]
    pub audio: Vec<PathBuf>,
    /// Gate the audio with voice activity detection: trim silence, split long audio at pauses.
    #[arg(long)]
    pub vad: bool,
    /// Beam search with N beams when transcribing (speech-recognition bundles;
    /// default 1: greedy).
    #[arg(long, value_name = "N")]
    pub beams: Option<usize>,
    /// Silero VAD directory (holds vad.json); used with --vad.
    #[arg(long, value_name = "DIR", default_value = "models/silero-vad")]
    pub vad_model: PathBuf,
    /// New tokens at most (default: the bundle's).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Directory for generated media (images from signal tokens, speech, height maps); created if missing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Denoising steps of the generator, or graph calls of a consistency generator
    /// (models/terrain: 1 is the one-step sampler; default: the bundle's).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Consistency generator bundles (models/terrain): the difficulty to condition on,
    /// a whole number in the bundle's range (1 to 100 for terrain; default: the bundle's).
    #[arg(long, value_name = "D", allow_negative_numbers = true)]
    pub difficulty: Option<i64>,
    /// Classifier-free guidance scale of the generator, >= 0; guidance runs above 1 (default: the bundle's).
    #[arg(long, value_name = "G", allow_negative_numbers = true)]
    pub guidance: Option<f32>,
    /// Stop when the generated text contains STR (repeatable); the text ends before it.
    #[arg(long = "stop", value_name = "STR")]
    pub stop: Vec<String>,
    /// Wrap the prompt in the bundle's chat template (one user turn) instead of raw completion.
    #[arg(long)]
    pub chat: bool,
    /// Print one JSON object (ids, text, stage timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Hash every checksummed file, even those verified before and unchanged since.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub speech: super::speak::SpeechArgs,
    /// Voice bundles: stream the speech to stdout as raw 16-bit little-endian mono PCM
    /// at the voice's rate, sentence by sentence (e.g. `| aplay -f S16_LE -r 22050`).
    #[arg(long)]
    pub pcm_stdout: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

impl RunArgs {
    /// The flags' changes to the bundle's generation settings `defaults`
    /// (sampling knobs not given keep the bundle's).
    fn overrides(&self, defaults: &GenerationConfig) -> Result<GenerationOverrides> {
        self.sampling.overrides(defaults, self.max_tokens, self.beams)
    }
}

/// Run the command.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    // Check the cheap things before loading anything heavy.
    for image in &args.images {
        check_input_path(image, "an image file")?;
    }
    for audio in &args.audio {
        check_input_path(audio, "a WAV file")?;
    }
    args.video.check_paths()?;
    // Decode the media once up front (bounded, strict): a bad file fails in
    // milliseconds, before any model is loaded.
    let mut image_sizes = Vec::with_capacity(args.images.len());
    for image in &args.images {
        image_sizes.push(mmrt::preprocess::image::load_image(image)?.dimensions());
    }
    for audio in &args.audio {
        mmrt::preprocess::wav::validate_wav(audio).map_err(|source| Error::Audio { path: audio.clone(), source })?;
    }
    let generation = DiffusionSettings {
        steps: args.steps,
        guidance_scale: args.guidance,
        noise: mmrt::diffusion::Noise::Seed(args.sampling.seed),
    };
    generation.validate()?;
    let out_dir = args.out_dir.as_deref().map(mmrt::media::prepare_out_dir).transpose()?;
    let bundle = Bundle::open_verified(&args.bundle, &mmrt::import::ImportOptions::with_variant(args.variant.clone()), super::verification(args.verify))?;
    if bundle.manifest.consistency_generator().is_some() {
        return super::consistency::generate(cli, args, bundle);
    }
    if args.difficulty.is_some() {
        return Err(Error::Request(format!(
            "--difficulty applies to consistency generator bundles (e.g. models/terrain); bundle \"{}\" is not one",
            bundle.name()
        )));
    }
    if bundle.manifest.text_to_speech().is_some() {
        return super::speak::speak(cli, args, bundle);
    }
    if args.speech.any() || args.pcm_stdout {
        return Err(Error::Request(format!(
            "--noise-scale, --length-scale, --noise-w, --speaker and --pcm-stdout apply to voice bundles; bundle \"{}\" is not one",
            bundle.name()
        )));
    }
    // Images of one request are one encoder batch: they must preprocess to one size.
    if let Some(mmrt::manifest::Preprocess::Image(cfg)) =
        bundle.manifest.encoder(mmrt::manifest::Modality::Image).map(|e| &e.preprocess)
    {
        if let Err((index, source)) = mmrt::preprocess::image::check_batch(&image_sizes, cfg) {
            return Err(Error::Image { path: args.images[index].clone(), source });
        }
    }
    if (args.steps.is_some() || args.guidance.is_some()) && !has_generator(&bundle) {
        return Err(Error::Request(format!(
            "--steps and --guidance apply to a modality generator, and bundle \"{}\" has none",
            bundle.name()
        )));
    }
    if args.beams == Some(0) {
        return Err(Error::Request("--beams must be at least 1 (1 is greedy decoding)".into()));
    }
    if let Some(n) = args.beams.filter(|&n| n > mmrt::limits::MAX_BEAMS) {
        return Err(Error::Request(format!("--beams {n} is above the limit of {} beams (limits::MAX_BEAMS)", mmrt::limits::MAX_BEAMS)));
    }
    if let Some(n) = args.max_tokens.filter(|&n| n > mmrt::limits::MAX_NEW_TOKENS) {
        return Err(Error::Request(format!(
            "--max-tokens {n} is above the limit of {} tokens (limits::MAX_NEW_TOKENS); the bundle's context length bounds generation anyway",
            mmrt::limits::MAX_NEW_TOKENS
        )));
    }
    if bundle.manifest.seq2seq_decoder().is_some() {
        return super::transcribe::transcribe(cli, args, bundle);
    }
    if args.beams.is_some() {
        return Err(Error::Request(format!(
            "--beams applies to speech-recognition bundles; bundle \"{}\" is a language model (use --temperature / --top-k for sampling)",
            bundle.name()
        )));
    }
    if !args.video.videos.is_empty() && bundle.manifest.encoder(mmrt::manifest::Modality::Video).is_none() {
        return Err(Error::Request(format!("bundle \"{}\" has no video encoder; remove --video", bundle.name())));
    }
    let video_sampling = args.video.sampling(super::video_args::bundle_video_frames(&bundle))?;
    if !args.audio.is_empty() && bundle.manifest.encoder(mmrt::manifest::Modality::Audio).is_none() {
        return Err(Error::Request(format!(
            "bundle \"{}\" has no audio path (no speech decoder and no audio encoder); remove --audio",
            bundle.name()
        )));
    }
    let prompt = args.prompt.clone().or_else(|| bundle.manifest.prompt.default_prompt.clone()).ok_or_else(|| {
        Error::Request(format!(
            "bundle \"{}\" is a language model with no default prompt: --prompt is required",
            bundle.name()
        ))
    })?;
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let overrides = args.overrides(&bundle.manifest.generation)?;
    let options = LoadOptions { sessions: plan, embedding_cache: args.video.embedding_cache()?, ..LoadOptions::default() };
    let mut pipeline = Pipeline::load_with(&runtime, bundle, &options)?;
    if let Some(reason) = &pipeline.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let mut request = Request::new(prompt)
        .with_images(args.images.iter().cloned())
        .with_audio(args.audio.iter().cloned())
        .with_videos(args.video.videos.iter().cloned())
        .with_chat(args.chat)
        .with_stop(args.stop.clone())
        .with_media_generation(generation);
    request.generation = overrides;
    request.out_dir = out_dir;
    request.media_options.video_sampling = video_sampling;
    let generation_used = pipeline.bundle().manifest.generation.with_overrides(&request.generation);

    let mut stdout = std::io::stdout().lock();
    let output = pipeline.run(&request, |piece| {
        if !args.json {
            stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| Error::io("<stdout>", e))?;
        }
        Ok(())
    })?;
    if args.json {
        let json = serde_json::json!({
            "bundle": pipeline.bundle().name(),
            "prompt_tokens": output.prompt_ids.len(),
            "token_ids": output.token_ids,
            "text": output.text,
            "stop_reason": output.stop_reason,
            "stages": output.timings.to_json(),
            "load_ms": pipeline.load_time().as_secs_f64() * 1e3,
            "decode_tokens_per_s": output.decode_tokens_per_s(),
            "sampling": generation_used,
            "media": output.media.iter().map(media_json).collect::<Vec<_>>(),
            "inputs": output.input_report,
            "execution_provider": pipeline.provider(),
            "onnxruntime": pipeline.runtime_info(),
        });
        writeln!(stdout, "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        writeln!(stdout).map_err(|e| Error::io("<stdout>", e))?;
        for m in &output.media {
            match &m.path {
                Some(path) => eprintln!("wrote {} ({})", path.display(), m.modality),
                None => eprintln!("note: generated one {} item; pass --out-dir DIR to write it", m.modality),
            }
        }
    }
    stdout.flush().map_err(|e| Error::io("<stdout>", e))?;
    // The process ends here: freeing the pipeline (the tokenizer's ~1M small allocations, ONNX
    // Runtime's sessions and prepacked weights) would cost ~120 ms (Gemma 3 270M) for memory the
    // OS takes back at exit anyway.
    std::mem::forget(pipeline);
    Ok(())
}

fn has_generator(bundle: &Bundle) -> bool {
    bundle.manifest.stages.iter().any(|s| s.kind() == "modality_generator")
}

/// One generated file in `--json`: where, what, and its stage timings (ms).
fn media_json(m: &mmrt::output_side::GeneratedMedia) -> serde_json::Value {
    serde_json::json!({
        "path": m.path,
        "modality": m.modality,
        "format": m.format,
        "scheduler": m.settings.scheduler,
        "steps": m.settings.steps,
        "guidance_scale": m.settings.guidance_scale,
        "timings": {
            "output_projector": m.output_projector_ms,
            "denoise": m.timings.denoise_ms,
            "denoise_steps": m.timings.denoise_step_ms,
            "decode": m.timings.decode_ms,
        },
    })
}

/// A missing or non-file input is reported before any model is loaded.
pub(super) fn check_input_path(path: &std::path::Path, what: &str) -> Result<()> {
    let problem = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) if meta.is_dir() => format!("is a directory, expected {what}"),
        Ok(_) => format!("is not a regular file, expected {what}"),
        Err(e) => return Err(Error::io(path, e)),
    };
    Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, problem)))
}
