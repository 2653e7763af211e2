//! `mmrt run` on a voice bundle: text -> speech, written as `speech.wav` into
//! `--out-dir` and/or streamed as raw 16-bit PCM to stdout (`--pcm-stdout`)
//! sentence by sentence.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use clap::Args;

use super::run::RunArgs;
use super::Cli;
use mmrt::error::{Error, Result};
use mmrt::runtime::OrtRuntime;
use mmrt::tts::{SpeechSettings, Voice};
use mmrt::Bundle;

/// Voice flags shared by `run` (voice bundles) and `assist`.
#[derive(Debug, Args, Clone, Default)]
pub struct SpeechArgs {
    /// Voice variation (0: none, the same waveform every run; default: the voice's, 0.667 for Piper).
    #[arg(long, value_name = "S")]
    pub noise_scale: Option<f32>,
    /// Speaking-rate factor on every phoneme's duration (> 1 slower; default: the voice's).
    #[arg(long, value_name = "S")]
    pub length_scale: Option<f32>,
    /// Rhythm variation (default: the voice's, 0.8 for Piper).
    #[arg(long, value_name = "S")]
    pub noise_w: Option<f32>,
    /// Speaker id of a multi-speaker voice.
    #[arg(long, value_name = "ID")]
    pub speaker: Option<i64>,
}

impl SpeechArgs {
    /// The flags as per-request settings.
    pub fn settings(&self) -> SpeechSettings {
        SpeechSettings {
            noise_scale: self.noise_scale,
            length_scale: self.length_scale,
            noise_w: self.noise_w,
            speaker: self.speaker,
            raw_amplitude: false,
        }
    }

    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        self.noise_scale.is_some() || self.length_scale.is_some() || self.noise_w.is_some() || self.speaker.is_some()
    }
}

/// Milliseconds since `start`.
pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Write 16-bit mono PCM as a WAV file.
pub fn write_wav(path: &Path, sample_rate: u32, samples: &[f32]) -> Result<()> {
    let pcm = mmrt::tts::to_pcm16(samples);
    std::fs::write(path, mmrt::media::encode_wav_pcm16(sample_rate, 1, &pcm)).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// Speak `--prompt` with the voice bundle `bundle`.
pub fn speak(cli: &Cli, args: &RunArgs, bundle: Bundle) -> Result<()> {
    let name = bundle.name().to_string();
    if !args.images.is_empty() || !args.audio.is_empty() || args.chat || args.beams.is_some() || args.steps.is_some() || args.guidance.is_some() {
        return Err(Error::Request(format!(
            "bundle \"{name}\" is a voice (text to speech): it takes --prompt TEXT only (no --image, --audio, --chat, --beams, --steps, --guidance)"
        )));
    }
    let text = args.prompt.clone().ok_or_else(|| Error::Request(format!("bundle \"{name}\" is a voice: pass the text to speak with --prompt")))?;
    if args.out_dir.is_none() && !args.pcm_stdout {
        return Err(Error::Request(format!(
            "bundle \"{name}\" writes speech: pass --out-dir DIR (speech.wav) and/or --pcm-stdout (raw 16-bit PCM on stdout)"
        )));
    }
    if args.pcm_stdout && args.json {
        return Err(Error::Request("--pcm-stdout and --json both write to stdout; keep one".into()));
    }
    let out_dir = args.out_dir.as_deref().map(mmrt::media::prepare_out_dir).transpose()?;
    let settings = args.speech.settings();
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let start = Instant::now();
    let mut voice = Voice::open(&runtime, &bundle, &plan)?;
    let load_ms = ms_since(start);
    if let Some(reason) = &voice.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let (scales, speaker) = voice.resolve(&settings)?;
    let rate = voice.sample_rate();
    let start = Instant::now();
    let mut first_audio_ms = None;
    let mut samples: Vec<f32> = Vec::new();
    let mut sentences = Vec::new();
    let mut stdout = std::io::stdout().lock();
    voice.speak(&text, &settings, |chunk| {
        first_audio_ms.get_or_insert_with(|| ms_since(start));
        if args.pcm_stdout {
            let bytes: Vec<u8> = mmrt::tts::to_pcm16(&chunk.samples).iter().flat_map(|s| s.to_le_bytes()).collect();
            stdout.write_all(&bytes).and_then(|_| stdout.flush()).map_err(|e| Error::io("<stdout>", e))?;
        }
        sentences.push(serde_json::json!({
            "phonemes": chunk.sentence.phonemes.concat(),
            "ids": chunk.sentence.ids.len(),
            "unknown_phonemes": chunk.sentence.unknown,
            "samples": chunk.samples.len(),
            "synth_ms": chunk.synth_ms,
        }));
        samples.extend_from_slice(&chunk.samples);
        Ok(())
    })?;
    let total_ms = ms_since(start);
    let audio_seconds = samples.len() as f64 / rate as f64;
    let path = out_dir.map(|d| d.join("speech.wav"));
    if let Some(path) = &path {
        write_wav(path, rate, &samples)?;
    }
    if args.json {
        let json = serde_json::json!({
            "bundle": name,
            "text": text,
            "wav": path,
            "sample_rate": rate,
            "audio_seconds": audio_seconds,
            "sentences": sentences,
            "scales": {"noise": scales[0], "length": scales[1], "noise_w": scales[2]},
            "speaker": speaker,
            "load_ms": load_ms,
            "first_audio_ms": first_audio_ms,
            "total_ms": total_ms,
            "real_time_factor": total_ms / 1e3 / audio_seconds.max(1e-9),
            "execution_provider": voice.provider(),
            "peak_rss_mib": crate::bench::memory::peak_rss_bytes().map(|b| b as f64 / (1 << 20) as f64),
        });
        writeln!(stdout, "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else if let Some(path) = &path {
        eprintln!(
            "wrote {} ({audio_seconds:.2} s of speech, {} sentence(s), {:.0} ms, real-time factor {:.3})",
            path.display(),
            sentences.len(),
            total_ms,
            total_ms / 1e3 / audio_seconds.max(1e-9)
        );
    }
    Ok(())
}
