//! What a caller asks of a [`super::Pipeline`] and what it gets back: one
//! request type for every bundle (text, media inputs of any modality,
//! generation overrides, media-generation settings), one output type (text,
//! ids, per-window results of a transcription, generated media, timings).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::input::MediaInput;
use crate::chat::Message;

use crate::generate::{GenerationOverrides, Sampling, StopReason};
use crate::manifest::Modality;
use crate::output_side::GeneratedMedia;
use crate::stages::generator::DiffusionSettings;
use crate::vad::VadConfig;

/// One request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// User text; may contain the bundle's placeholders to place media (LLM
    /// bundles). Encoder-decoder (speech) bundles take none.
    pub prompt: String,
    /// Media per modality (files or in-memory data), each list in prompt order.
    pub inputs: BTreeMap<Modality, Vec<MediaInput>>,
    /// Earlier turns of a chat (system, user, assistant), rendered with the
    /// bundle's Jinja chat template before `prompt` as the last user turn
    /// (needs `chat`; media belong to the last turn).
    pub history: Vec<Message>,
    /// Changes to the bundle's generation settings.
    pub generation: GenerationOverrides,
    /// Steps, guidance and noise of media generation (when signal tokens are emitted).
    pub media_generation: DiffusionSettings,
    /// Where generated media files are written (`None`: kept in memory only).
    pub out_dir: Option<PathBuf>,
    /// Keep generating through stop tokens, so exactly `max_new_tokens` are
    /// produced (benchmarks need a fixed decode length).
    pub ignore_stop_tokens: bool,
    /// Render with the bundle's chat template (one user turn) instead of the raw template.
    pub chat: bool,
    /// Voice-activity gating of audio for a speech bundle (trim silence, split at pauses).
    pub vad: Option<VadConfig>,
    /// Stop strings: generation ends when the text contains one; the text ends before it.
    pub stop: Vec<String>,
    /// Set from elsewhere (a client that went away, a C caller's flag) to stop
    /// generation: the run ends with [`crate::Error::Cancelled`] at the next token.
    pub cancel: CancelFlag,
    /// How media are read (video sampling).
    pub media_options: MediaOptions,
}

/// How a request's media are read, where the bundle's defaults can be changed.
#[derive(Debug, Clone, Default)]
pub struct MediaOptions {
    /// Frames taken from each video (`None`: the video encoder's `preprocess` settings).
    pub video_sampling: Option<crate::video::Sampling>,
}

/// What reading a request's media took: one report per video, embedding-cache counts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InputReport {
    /// Per video, in prompt order.
    pub videos: Vec<super::clip::VideoReport>,
    /// Embedding-cache hits and misses of the request's images and frames.
    pub embedding_cache: super::cache::CacheStats,
}

/// A flag another thread raises to cancel a running request.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Ask the request to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`crate::Error::Cancelled`] once raised.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl Request {
    /// A text request with the bundle's generation settings.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self { prompt: prompt.into(), ..Self::default() }
    }

    /// A transcription of one audio file (speech-recognition bundles).
    pub fn transcribe(audio: impl Into<MediaInput>) -> Self {
        Self::default().with_audio([audio])
    }

    /// Attach media of `modality`: paths or [`MediaInput`]s (replacing earlier ones of it).
    pub fn with_media(mut self, modality: Modality, inputs: impl IntoIterator<Item = impl Into<MediaInput>>) -> Self {
        let inputs: Vec<MediaInput> = inputs.into_iter().map(Into::into).collect();
        if inputs.is_empty() {
            self.inputs.remove(&modality);
        } else {
            self.inputs.insert(modality, inputs);
        }
        self
    }

    /// Attach images.
    pub fn with_images(self, images: impl IntoIterator<Item = impl Into<MediaInput>>) -> Self {
        self.with_media(Modality::Image, images)
    }

    /// Attach audio.
    pub fn with_audio(self, audio: impl IntoIterator<Item = impl Into<MediaInput>>) -> Self {
        self.with_media(Modality::Audio, audio)
    }

    /// Attach videos: clip files, image directories, animated images (see [`crate::video`]).
    pub fn with_videos(self, videos: impl IntoIterator<Item = impl Into<MediaInput>>) -> Self {
        self.with_media(Modality::Video, videos)
    }

    /// Sample videos this way instead of the bundle's way.
    pub fn with_video_sampling(mut self, sampling: crate::video::Sampling) -> Self {
        self.media_options.video_sampling = Some(sampling);
        self
    }

    /// End generation at any of these strings (see [`Request::stop`]).
    pub fn with_stop(mut self, stop: Vec<String>) -> Self {
        self.stop = stop;
        self
    }

    /// Earlier chat turns before the prompt (see [`Request::history`]); sets `chat`.
    pub fn with_history(mut self, history: Vec<Message>) -> Self {
        self.history = history;
        self.chat = true;
        self
    }

    /// The inputs of `modality` (empty when none).
    pub fn media(&self, modality: Modality) -> &[MediaInput] {
        self.inputs.get(&modality).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many files of each modality.
    pub fn media_counts(&self) -> BTreeMap<Modality, usize> {
        self.inputs.iter().map(|(m, p)| (*m, p.len())).collect()
    }

    /// Set the sampling strategy and its seed.
    pub fn with_sampling(mut self, sampling: Sampling, seed: u64) -> Self {
        self.generation.sampling = Some(sampling);
        self.generation.seed = Some(seed);
        self
    }

    /// Set the repetition penalty.
    pub fn with_repetition_penalty(mut self, penalty: f32) -> Self {
        self.generation.repetition_penalty = Some(penalty);
        self
    }

    /// Set the beam width (1: one sequence).
    pub fn with_beams(mut self, num_beams: usize) -> Self {
        self.generation.num_beams = Some(num_beams);
        self
    }

    /// Set media generation settings.
    pub fn with_media_generation(mut self, settings: DiffusionSettings) -> Self {
        self.media_generation = settings;
        self
    }

    /// Write generated media into `dir`.
    pub fn with_out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Use the bundle's chat template.
    pub fn with_chat(mut self, chat: bool) -> Self {
        self.chat = chat;
        self
    }

    /// Set the new-token budget.
    pub fn with_max_new_tokens(mut self, n: usize) -> Self {
        self.generation.max_new_tokens = Some(n);
        self
    }

    /// Generate through stop tokens (see [`Request::ignore_stop_tokens`]).
    pub fn with_ignore_stop_tokens(mut self, ignore: bool) -> Self {
        self.ignore_stop_tokens = ignore;
        self
    }

    /// Gate audio with voice activity detection.
    pub fn with_vad(mut self, vad: Option<VadConfig>) -> Self {
        self.vad = vad;
        self
    }
}

/// Milliseconds per stage of one request, in pipeline order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageTimings(pub Vec<(String, f64)>);

impl StageTimings {
    /// Add a stage's time.
    pub fn push(&mut self, name: &str, d: Duration) {
        self.push_ms(name, d.as_secs_f64() * 1e3);
    }

    /// Add a stage's milliseconds.
    pub fn push_ms(&mut self, name: &str, ms: f64) {
        self.0.push((name.to_string(), ms));
    }

    /// Milliseconds of a stage, if it ran.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, ms)| *ms)
    }

    /// As a JSON object keeping pipeline order.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.iter().map(|(n, ms)| (n.clone(), serde_json::json!(ms))).collect())
    }
}

/// One transcribed audio window (encoder-decoder bundles).
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

/// The result of a request.
#[derive(Debug, Clone)]
pub struct Output {
    /// Generated ids (a final stop token included); a transcription's windows' ids, concatenated.
    pub token_ids: Vec<u32>,
    /// Generated text (special tokens skipped); a transcription's windows joined.
    pub text: String,
    /// Prompt ids after placeholder expansion (BOS included); a transcription's
    /// forced decoder prompt; a chat turn's whole rendered conversation.
    pub prompt_ids: Vec<u32>,
    /// Positions of `prompt_ids` fed to the prefill pass: all of them, except
    /// in a chat turn ([`super::Conversation`]), where the ones already in the
    /// kept KV cache are skipped.
    pub prefill_tokens: usize,
    /// Why generation ended (a transcription: its last window's reason).
    pub stop_reason: StopReason,
    /// Per-stage milliseconds.
    pub timings: StageTimings,
    /// Media generated from signal-token runs, in run order.
    pub media: Vec<GeneratedMedia>,
    /// Per window results of a transcription (empty for LLM bundles).
    pub windows: Vec<WindowResult>,
    /// Duration of the transcribed audio, seconds (0 for LLM bundles).
    pub audio_seconds: f64,
    /// From the start of [`super::Pipeline::run`] to the first chosen token
    /// (`None` when no token was produced).
    pub time_to_first_token: Option<Duration>,
    /// Videos read and embedding-cache counts.
    pub input_report: InputReport,
    /// Milliseconds from each generated token to the next (LLM bundles; empty
    /// for transcriptions): per-token latency, whose tail matters to control loops.
    pub token_gaps_ms: Vec<f64>,
}

impl Output {
    /// Tokens per second of the decode steps: the tokens after the first
    /// (which the prefill pass gives) over the `decode` stage's time; 0 when
    /// no decode step ran.
    pub fn decode_tokens_per_s(&self) -> f64 {
        let decode_ms = self.timings.get("decode").unwrap_or(0.0);
        let steps = self.token_ids.len().saturating_sub(1);
        if decode_ms > 0.0 && steps > 0 {
            steps as f64 / (decode_ms / 1e3)
        } else {
            0.0
        }
    }
}
