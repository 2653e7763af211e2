//! The encoder-decoder speech path (Whisper): audio file → mono waveform →
//! resample → windows of `chunk_seconds` (or voice-activity segments) → per
//! window: log-mel → audio encoder → cross-attention projection (once) →
//! text decoder with the forced prompt (start, language, task, no-timestamps),
//! greedy with the manifest's suppressed tokens, self-attention KV cache moved
//! between steps → text. Windows' texts are joined in order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokenizers::Tokenizer;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::generate::beam::{beam_search, BeamModel, BeamSettings};
use crate::generate::StopReason;
use crate::manifest::Modality;
use crate::pipeline::StageTimings;
use crate::preprocess::{audio, wav};
use crate::runtime::{OrtRuntime, ProviderReport, RuntimeInfo, SessionConfig};
use crate::stages::seq2seq::{AudioEncoder, Seq2seqDecoder};
use crate::vad::{SileroVad, VadConfig};

/// One transcription request.
#[derive(Debug, Clone)]
pub struct SpeechRequest {
    /// WAV file.
    pub audio: PathBuf,
    /// New tokens at most per window (`None`: the bundle's default).
    pub max_new_tokens: Option<usize>,
    /// Voice-activity gating (trim silence, split at pauses), when set.
    pub vad: Option<VadConfig>,
    /// Beam width; 1 (or 0) is greedy decoding.
    pub num_beams: usize,
}

impl SpeechRequest {
    /// Greedy transcription of `audio` with the bundle's token budget, no VAD.
    pub fn new(audio: impl Into<PathBuf>) -> Self {
        Self { audio: audio.into(), max_new_tokens: None, vad: None, num_beams: 1 }
    }

    /// Set the beam width (see [`crate::generate::beam`]).
    pub fn with_beams(mut self, num_beams: usize) -> Self {
        self.num_beams = num_beams;
        self
    }
}

/// One transcribed window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowResult {
    /// Start of the window in the (resampled) audio, seconds.
    pub start_s: f64,
    /// End of the window, seconds.
    pub end_s: f64,
    /// Generated ids (forced prompt excluded, a final end token included).
    pub token_ids: Vec<u32>,
    /// Decoded text of the window.
    pub text: String,
    /// Why decoding of the window ended.
    pub stop_reason: StopReason,
}

/// The result of a transcription.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// Whole transcript (windows joined, trimmed).
    pub text: String,
    /// Per window results.
    pub windows: Vec<WindowResult>,
    /// Audio duration, seconds.
    pub audio_seconds: f64,
    /// Milliseconds per stage (summed over windows).
    pub timings: StageTimings,
}

/// A loaded speech-recognition bundle.
pub struct SpeechPipeline {
    bundle: Bundle,
    tokenizer: Tokenizer,
    encoder: AudioEncoder,
    decoder: Seq2seqDecoder,
    vad: Option<SileroVad>,
    provider: ProviderReport,
    runtime: RuntimeInfo,
    load_time: Duration,
}

/// Whether a bundle is an encoder-decoder (speech) bundle served by [`SpeechPipeline`].
pub fn is_speech_bundle(bundle: &Bundle) -> bool {
    bundle.manifest.seq2seq_decoder().is_some()
}

impl SpeechPipeline {
    /// Open the encoder and decoder graphs (and the VAD model, when `vad_model` is given).
    pub fn load(runtime: &OrtRuntime, bundle: Bundle, config: &SessionConfig, vad_model: Option<&Path>) -> Result<Self> {
        let start = Instant::now();
        let stage = bundle.manifest.seq2seq_decoder().ok_or_else(|| {
            Error::Request(format!("bundle \"{}\" has no seq2seq_decoder stage (not a speech-recognition bundle)", bundle.name()))
        })?;
        let enc_stage = bundle.manifest.encoder(Modality::Audio).expect("validated: a seq2seq bundle has an audio encoder");
        let tokenizer_path = bundle.resolve(&bundle.manifest.tokenizer)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::Tokenizer {
            context: format!("loading {}", tokenizer_path.display()),
            message: e.to_string(),
        })?;
        let (encoder, f1) = AudioEncoder::open(runtime, &bundle, enc_stage, config)?;
        let (decoder, f2) = Seq2seqDecoder::open(runtime, &bundle, stage, config)?;
        let vad = vad_model.map(|p| SileroVad::open(runtime, p, encoder.settings().sample_rate)).transpose()?;
        let fallback_reason = f1.or(f2);
        let provider = ProviderReport {
            requested: config.provider,
            active: if fallback_reason.is_some() { crate::runtime::ExecutionProviderKind::Cpu } else { config.provider },
            fallback_reason,
        };
        Ok(Self { bundle, tokenizer, encoder, decoder, vad, provider, runtime: runtime.info.clone(), load_time: start.elapsed() })
    }

    /// The bundle served.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Which execution provider runs.
    pub fn provider(&self) -> &ProviderReport {
        &self.provider
    }

    /// The ONNX Runtime library in use.
    pub fn runtime_info(&self) -> &RuntimeInfo {
        &self.runtime
    }

    /// Time spent opening sessions.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Read, resample and return the mono waveform at the encoder's rate.
    pub fn load_audio(&self, path: &Path) -> Result<Vec<f32>> {
        let err = |source| Error::Audio { path: path.to_path_buf(), source };
        let wave = wav::read_wav(path).map_err(err)?;
        audio::resample(&wave.samples, wave.sample_rate, self.encoder.settings().sample_rate).map_err(err)
    }

    /// Transcribe one WAV file.
    pub fn transcribe(&mut self, request: &SpeechRequest) -> Result<Transcript> {
        let mut timings = StageTimings::default();
        let start = Instant::now();
        let samples = self.load_audio(&request.audio)?;
        let rate = self.encoder.settings().sample_rate as f64;
        let window = self.encoder.log_mel().window_samples();
        timings.push("read_resample", start.elapsed());

        let spans: Vec<(usize, usize)> = match (&request.vad, self.vad.as_mut()) {
            (Some(cfg), Some(vad)) => {
                let start = Instant::now();
                let speech = vad.speech_segments(&samples, cfg)?;
                timings.push("vad", start.elapsed());
                if speech.is_empty() {
                    return Err(Error::Request(format!(
                        "{}: voice activity detection found no speech in {:.1} s of audio (threshold {}); nothing to transcribe",
                        request.audio.display(),
                        samples.len() as f64 / rate,
                        cfg.threshold
                    )));
                }
                crate::vad::pack_segments(&speech, window)
            }
            (Some(_), None) => return Err(Error::Request("voice activity detection was requested but no VAD model is loaded".into())),
            (None, _) => (0..samples.len()).step_by(window).map(|s| (s, (s + window).min(samples.len()))).collect(),
        };

        let max_new = request.max_new_tokens.unwrap_or(self.bundle.manifest.generation.max_new_tokens);
        let mut windows = Vec::with_capacity(spans.len());
        let (mut t_mel, mut t_enc, mut t_cross, mut t_dec) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut features = Vec::new();
        for &(s, e) in &spans {
            let t = Instant::now();
            self.encoder.log_mel().compute_into(&samples[s..e], &mut features);
            t_mel += t.elapsed();
            let (states, t) = self.encoder.encode(std::mem::take(&mut features))?;
            t_enc += t;
            let (cross, t) = self.decoder.cross_kv(states)?;
            t_cross += t;
            let t = Instant::now();
            let (ids, stop_reason) = if request.num_beams > 1 {
                self.beam_window(&cross, max_new, request.num_beams)?
            } else {
                self.decode_window(&cross, max_new)?
            };
            t_dec += t.elapsed();
            let text = self.tokenizer.decode(&ids, true).map_err(|e| Error::Tokenizer {
                context: "decoding the transcript".into(),
                message: e.to_string(),
            })?;
            windows.push(WindowResult { start_s: s as f64 / rate, end_s: e as f64 / rate, token_ids: ids, text, stop_reason });
        }
        timings.push("log_mel", t_mel);
        timings.push(self.encoder.name(), t_enc);
        timings.push(&format!("{}.cross_kv", self.decoder.name()), t_cross);
        timings.push(self.decoder.name(), t_dec);
        let text = windows.iter().map(|w| w.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ");
        Ok(Transcript { text, windows, audio_seconds: samples.len() as f64 / rate, timings })
    }

    /// Greedy decoding of one window after the forced prompt.
    fn decode_window(&mut self, cross: &crate::stages::seq2seq::CrossKv, max_new: usize) -> Result<(Vec<u32>, StopReason)> {
        let stage = self.decoder.stage().clone();
        let prompt = stage.decoder_prompt.ids();
        let eos = &self.bundle.manifest.prompt.eos_token_ids;
        let mut logits = Vec::new();
        let mut cache = self.decoder.empty_cache()?;
        cache = self.decoder.step(&prompt, cache, cross, &mut logits)?;
        let mut ids = Vec::new();
        let stop = loop {
            if ids.len() >= max_new {
                break StopReason::MaxTokens;
            }
            for &t in &stage.suppress_tokens {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
            if ids.is_empty() {
                for &t in &stage.begin_suppress_tokens {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let next = argmax(&logits).ok_or_else(|| Error::Tensor {
                stage: stage.name.clone(),
                tensor: stage.logits.clone(),
                expected: "a non-empty row of finite logits".into(),
                found: format!("{} values", logits.len()),
            })?;
            ids.push(next);
            if eos.contains(&next) {
                break StopReason::StopToken;
            }
            if cache.seq_len() + 1 >= stage.context_length {
                break StopReason::ContextFull;
            }
            cache = self.decoder.step(&[next], cache, cross, &mut logits)?;
        };
        Ok((ids, stop))
    }
}

/// One window's decoder with its cross keys/values, as beam search sees it.
struct WindowDecoder<'a> {
    decoder: &'a mut Seq2seqDecoder,
    cross: &'a crate::stages::seq2seq::CrossKv,
}

impl BeamModel for WindowDecoder<'_> {
    type State = crate::kv_cache::KvCache;

    fn step(&mut self, state: Self::State, token: u32, logits: &mut Vec<f32>) -> Result<Self::State> {
        self.decoder.step(&[token], state, self.cross, logits)
    }

    fn fork(&mut self, state: &Self::State) -> Result<Self::State> {
        state.duplicate(self.decoder.name())
    }
}

impl SpeechPipeline {
    /// Beam search over one window after the forced prompt, with the same
    /// suppressed tokens as greedy decoding (see [`crate::generate::beam`]).
    fn beam_window(&mut self, cross: &crate::stages::seq2seq::CrossKv, max_new: usize, num_beams: usize) -> Result<(Vec<u32>, StopReason)> {
        let stage = self.decoder.stage().clone();
        let prompt = stage.decoder_prompt.ids();
        let mut logits = Vec::new();
        let cache = self.decoder.empty_cache()?;
        let cache = self.decoder.step(&prompt, cache, cross, &mut logits)?;
        let settings = BeamSettings {
            num_beams,
            length_penalty: 1.0,
            // The context bounds prompt + generated, as transformers' max_length does.
            max_new_tokens: max_new.min(stage.context_length.saturating_sub(prompt.len())),
            stop_tokens: self.bundle.manifest.prompt.eos_token_ids.clone(),
        };
        let mut model = WindowDecoder { decoder: &mut self.decoder, cross };
        let result = beam_search(&mut model, cache, logits, &settings, |step, logprobs| {
            let begin = if step == 0 { &stage.begin_suppress_tokens[..] } else { &[] };
            for &t in stage.suppress_tokens.iter().chain(begin) {
                if let Some(l) = logprobs.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        })?;
        Ok((result.ids, result.stop_reason))
    }
}

/// Index of the largest value (the first of ties), skipping NaN.
fn argmax(values: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.filter(|(_, v)| *v > f32::NEG_INFINITY).map(|(i, _)| i as u32)
}
