//! `mmrt run --bundle <speech bundle> --audio FILE.wav [--vad]`: transcription
//! with an encoder-decoder (Whisper) bundle; prints the transcript, or with
//! `--json` one object with per-window ids and text and stage timings.

use std::io::Write;

use super::run::RunArgs;
use super::Cli;
use mmrt::error::{Error, Result};
use mmrt::runtime::OrtRuntime;
use mmrt::generate::GenerationOverrides;
use mmrt::pipeline::LoadOptions;
use mmrt::vad::VadConfig;
use mmrt::{Bundle, Pipeline, Request};

/// Transcribe the one `args.audio` file with the speech bundle `bundle`.
pub fn transcribe(cli: &Cli, args: &RunArgs, bundle: Bundle) -> Result<()> {
    let audio = match &args.audio[..] {
        [one] => one.clone(),
        [] => return Err(Error::Request(format!("bundle \"{}\" is a speech-recognition bundle: pass --audio FILE.wav", bundle.name()))),
        more => {
            return Err(Error::Request(format!(
                "bundle \"{}\" transcribes one file per run; {} --audio files were given",
                bundle.name(),
                more.len()
            )))
        }
    };
    if args.prompt.is_some() || !args.images.is_empty() {
        return Err(Error::Request(format!(
            "bundle \"{}\" transcribes audio only; remove --prompt / --image",
            bundle.name()
        )));
    }
    if args.vad {
        let spec = args.vad_model.join("vad.json");
        if !spec.is_file() {
            return Err(Error::Request(format!(
                "--vad needs a Silero VAD directory with vad.json; {} does not exist (build it with `bash exporters/whisper/build.sh`, or pass --vad-model DIR)",
                spec.display()
            )));
        }
    }
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let options = LoadOptions { sessions: plan, vad_model: args.vad.then(|| args.vad_model.clone()), ..LoadOptions::default() };
    let mut pipeline = Pipeline::load_with(&runtime, bundle, &options)?;
    if let Some(reason) = &pipeline.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let context = pipeline.bundle().manifest.seq2seq_decoder().map_or(0, |d| d.context_length);
    let mut request = Request::transcribe(audio).with_vad(args.vad.then(VadConfig::default));
    request.generation = GenerationOverrides { max_new_tokens: args.max_tokens.map(|n| mmrt::limits::clamp_new_tokens(n, 0, context)), num_beams: args.beams, ..Default::default() };
    let num_beams = pipeline.bundle().manifest.generation.with_overrides(&request.generation).num_beams;
    let start = std::time::Instant::now();
    let out = pipeline.run(&request, |_| Ok(()))?;
    let total_s = start.elapsed().as_secs_f64();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "bundle": pipeline.bundle().name(),
            "text": out.text,
            "windows": out.windows,
            "audio_seconds": out.audio_seconds,
            "stages": out.timings.to_json(),
            "total_ms": total_s * 1e3,
            "real_time_factor": if out.audio_seconds > 0.0 { total_s / out.audio_seconds } else { 0.0 },
            "load_ms": pipeline.load_time().as_secs_f64() * 1e3,
            "vad": request.vad,
            "num_beams": num_beams,
            "execution_provider": pipeline.provider(),
            "onnxruntime": pipeline.runtime_info(),
        });
        writeln!(stdout, "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        writeln!(stdout, "{}", out.text).map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}
