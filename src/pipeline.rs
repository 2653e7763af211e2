//! The end-to-end pipeline: the prompt stage (preprocess → encoder →
//! projector → tokenize with placeholder expansion → embed → merge → prefill)
//! then the decode stage (sample → embed → decoder step, KV cache moved).
//!
//! Media come as images and audio files; each item's projected rows replace
//! its placeholder's expanded tokens, in the order the placeholders appear in
//! the prompt. Audio is split into the encoder's `chunk_seconds` windows
//! (log-mel → audio encoder → projector per window), so a file's rows are its
//! windows' rows in order. Encoders run once per request, on the prompt only. When the bundle has an
//! output side and generation emits its signal tokens, the output projector
//! and modality generator run after decoding ([`crate::output_side`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{Array2, Array4, ArrayD, ArrayView2, Axis, Ix2};
use ort::value::DynValue;
use tokenizers::Tokenizer;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::generate::{self, GenerateParams, LanguageModel, Sampler, SamplingConfig, StopReason, StreamDecoder};
use crate::output_side::{GeneratedMedia, OutputSide};
use crate::stages::generator::GenerationSettings;
use crate::manifest::Modality;
use crate::preprocess::{self, audio, wav};
use crate::prompt;
use crate::runtime::{OrtRuntime, ProviderReport, RuntimeInfo, SessionConfig};
use crate::stages::decoder::Decoder;
use crate::stages::encoder::ImageEncoder;
use crate::stages::projector::InputProjector;
use crate::stages::seq2seq::AudioEncoder;
use crate::tensor;

/// One request: a prompt, optional images, sampling settings.
#[derive(Debug, Clone)]
pub struct Request {
    /// User text; may contain the bundle's image placeholder to place images.
    pub prompt: String,
    /// Image files, in prompt order.
    pub images: Vec<PathBuf>,
    /// WAV files, in prompt order (bundles with an audio encoder and projector).
    pub audio: Vec<PathBuf>,
    /// Sampling settings (see [`Pipeline::default_sampling`]).
    pub sampling: SamplingConfig,
    /// New tokens at most (`None`: the bundle's default).
    pub max_new_tokens: Option<usize>,
    /// Steps, guidance and noise of media generation (signal tokens emitted).
    pub generation: GenerationSettings,
    /// Where generated media files are written (`None`: kept in memory only).
    pub out_dir: Option<PathBuf>,
    /// Keep generating through stop tokens, so exactly `max_new_tokens` are
    /// produced (benchmarks need a fixed decode length).
    pub ignore_stop_tokens: bool,
    /// Render with the bundle's chat template (one user turn) instead of the raw template.
    pub chat: bool,
}

impl Request {
    /// A text request with greedy decoding.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            images: Vec::new(),
            audio: Vec::new(),
            sampling: SamplingConfig::default(),
            max_new_tokens: None,
            generation: GenerationSettings::default(),
            out_dir: None,
            ignore_stop_tokens: false,
            chat: false,
        }
    }

    /// Attach images.
    pub fn with_images(mut self, images: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.images = images.into_iter().map(Into::into).collect();
        self
    }

    /// Attach audio files.
    pub fn with_audio(mut self, audio: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.audio = audio.into_iter().map(Into::into).collect();
        self
    }

    /// Set sampling.
    pub fn with_sampling(mut self, sampling: SamplingConfig) -> Self {
        self.sampling = sampling;
        self
    }

    /// Set media generation settings.
    pub fn with_generation(mut self, generation: GenerationSettings) -> Self {
        self.generation = generation;
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
        self.max_new_tokens = Some(n);
        self
    }

    /// Generate through stop tokens (see [`Request::ignore_stop_tokens`]).
    pub fn with_ignore_stop_tokens(mut self, ignore: bool) -> Self {
        self.ignore_stop_tokens = ignore;
        self
    }
}

/// Milliseconds per stage of one request, in pipeline order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageTimings(pub Vec<(String, f64)>);

impl StageTimings {
    pub(crate) fn push(&mut self, name: &str, d: Duration) {
        self.push_ms(name, d.as_secs_f64() * 1e3);
    }

    pub(crate) fn push_ms(&mut self, name: &str, ms: f64) {
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

/// The result of a request.
#[derive(Debug, Clone)]
pub struct Output {
    /// Generated ids (a final stop token included).
    pub token_ids: Vec<u32>,
    /// Generated text (special tokens skipped).
    pub text: String,
    /// Prompt ids after placeholder expansion (BOS included).
    pub prompt_ids: Vec<u32>,
    /// Why generation ended.
    pub stop_reason: StopReason,
    /// Per-stage milliseconds.
    pub timings: StageTimings,
    /// Media generated from signal-token runs, in run order.
    pub media: Vec<GeneratedMedia>,
    /// From the start of [`Pipeline::run`] to the first sampled token
    /// (`None` when no token was produced).
    pub time_to_first_token: Option<Duration>,
}

/// Projected media embeddings, ready to merge.
pub struct MediaEmbeddings {
    /// `[n_items, tokens, d_llm]`.
    pub value: DynValue,
    /// Rows per item (placeholder expansion length).
    pub tokens_per_item: Vec<usize>,
}

/// Projected embeddings of one audio file, ready to merge.
pub struct AudioEmbeddings {
    /// `[windows * tokens, d_llm]`: the file's windows' rows, in order.
    pub rows: Array2<f32>,
    /// `chunk_seconds` windows the file was split into.
    pub windows: usize,
}

struct ImageBranch {
    encoder: ImageEncoder,
    projector: InputProjector,
}

struct AudioBranch {
    encoder: AudioEncoder,
    projector: InputProjector,
}

/// A loaded bundle ready to serve requests.
pub struct Pipeline {
    bundle: Bundle,
    tokenizer: Tokenizer,
    image: Option<ImageBranch>,
    audio: Option<AudioBranch>,
    decoder: Decoder,
    output: Option<OutputSide>,
    provider: ProviderReport,
    runtime: RuntimeInfo,
    load_time: Duration,
}

impl Pipeline {
    /// Open every stage of `bundle` with `config`.
    pub fn load(runtime: &OrtRuntime, bundle: Bundle, config: &SessionConfig) -> Result<Pipeline> {
        let start = Instant::now();
        let tokenizer_path = bundle.resolve(&bundle.manifest.tokenizer)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::Tokenizer {
            context: format!("loading {}", tokenizer_path.display()),
            message: e.to_string(),
        })?;
        let mut fallbacks = Vec::new();
        let image = match (bundle.manifest.encoder(Modality::Image), bundle.manifest.projector(Modality::Image)) {
            (Some(enc), Some(proj)) => {
                let (encoder, f1) = ImageEncoder::open(runtime, &bundle, enc, config)?;
                let (projector, f2) = InputProjector::open(runtime, &bundle, proj, config)?;
                fallbacks.extend([f1, f2]);
                Some(ImageBranch { encoder, projector })
            }
            _ => None,
        };
        let audio = match (bundle.manifest.encoder(Modality::Audio), bundle.manifest.projector(Modality::Audio)) {
            (Some(enc), Some(proj)) => {
                let (encoder, f1) = AudioEncoder::open(runtime, &bundle, enc, config)?;
                let (projector, f2) = InputProjector::open(runtime, &bundle, proj, config)?;
                fallbacks.extend([f1, f2]);
                Some(AudioBranch { encoder, projector })
            }
            _ => None,
        };
        let stage = bundle.manifest.llm_decoder().ok_or_else(|| {
            Error::Request(format!(
                "bundle \"{}\" has no llm_decoder (a speech-recognition bundle: use speech::SpeechPipeline)",
                bundle.name()
            ))
        })?;
        let (decoder, f) = Decoder::open(runtime, &bundle, stage, config)?;
        fallbacks.push(f);
        let output = match OutputSide::open(runtime, &bundle, &tokenizer, config)? {
            Some((side, f)) => {
                fallbacks.extend(f);
                Some(side)
            }
            None => None,
        };
        let fallback_reason = fallbacks.into_iter().flatten().next();
        let provider = ProviderReport {
            requested: config.provider,
            active: if fallback_reason.is_some() { crate::runtime::ExecutionProviderKind::Cpu } else { config.provider },
            fallback_reason,
        };
        Ok(Pipeline { bundle, tokenizer, image, audio, decoder, output, provider, runtime: runtime.info.clone(), load_time: start.elapsed() })
    }

    /// The bundle served.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Which execution provider runs, and why not the requested one.
    pub fn provider(&self) -> &ProviderReport {
        &self.provider
    }

    /// The ONNX Runtime library in use.
    pub fn runtime_info(&self) -> &RuntimeInfo {
        &self.runtime
    }

    /// The output side (output projector + generator), if the bundle has one.
    pub fn output_side(&mut self) -> Option<&mut OutputSide> {
        self.output.as_mut()
    }

    /// Time spent opening sessions and the tokenizer.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Sampling settings from the bundle's generation defaults (seed 0).
    pub fn default_sampling(&self) -> SamplingConfig {
        Self::sampling_defaults(&self.bundle.manifest)
    }

    /// Sampling settings from a manifest's generation defaults (seed 0).
    pub fn sampling_defaults(manifest: &crate::manifest::Manifest) -> SamplingConfig {
        manifest.generation.sampling(0)
    }

    /// Preprocess, encode and project images: `[n, tokens, d_llm]` embeddings.
    pub fn encode_images(&mut self, paths: &[PathBuf], timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        let branch = self.image.as_mut().ok_or_else(|| {
            Error::Request(format!("bundle \"{}\" has no image encoder; remove --image", self.bundle.name()))
        })?;
        let start = Instant::now();
        let mut batches: Vec<Array4<f32>> = Vec::with_capacity(paths.len());
        for path in paths {
            let rgb = preprocess::image::load_image(path)?;
            let pixels = preprocess::image::preprocess(std::slice::from_ref(&rgb), branch.encoder.preprocess())
                .map_err(|source| Error::Image { path: path.clone(), source })?;
            batches.push(pixels);
        }
        let views: Vec<_> = batches.iter().map(|b| b.view()).collect();
        let pixels = ndarray::concatenate(Axis(0), &views).expect("same preprocessing gives same shapes");
        timings.push("preprocess", start.elapsed());

        let (features, t) = branch.encoder.encode(pixels)?;
        timings.push(branch.encoder.name(), t);
        let (value, t) = branch.projector.project(features)?;
        timings.push(branch.projector.name(), t);
        let dims = tensor::dims(&value);
        if dims.len() != 3 || dims[0] as usize != paths.len() {
            return Err(Error::Tensor {
                stage: branch.projector.name().into(),
                tensor: "output".into(),
                expected: format!("[{}, tokens, d_llm]", paths.len()),
                found: format!("{dims:?}"),
            });
        }
        Ok(MediaEmbeddings { value, tokens_per_item: vec![dims[1] as usize; paths.len()] })
    }

    /// Read, resample, split into windows, log-mel, encode and project one
    /// audio file: `[windows * tokens, d_llm]` rows; stage times are added to `times`.
    pub fn encode_audio(&mut self, path: &Path, times: &mut AudioTimes) -> Result<AudioEmbeddings> {
        let branch = self.audio.as_mut().ok_or_else(|| {
            Error::Request(format!("bundle \"{}\" has no audio encoder; remove --audio", self.bundle.name()))
        })?;
        let start = Instant::now();
        let err = |source| Error::Audio { path: path.to_path_buf(), source };
        let wave = wav::read_wav(path).map_err(err)?;
        let rate = branch.encoder.settings().sample_rate;
        let samples = audio::resample(&wave.samples, wave.sample_rate, rate).map_err(err)?;
        times.preprocess += start.elapsed();
        let windows = audio::windows(&samples, branch.encoder.log_mel().window_samples());
        let mut rows: Vec<Array2<f32>> = Vec::with_capacity(windows.len());
        for window in &windows {
            let start = Instant::now();
            let features = branch.encoder.log_mel().compute(window);
            times.preprocess += start.elapsed();
            let (states, t) = branch.encoder.encode(features)?;
            times.encoder += t;
            let (value, t) = branch.projector.project(states)?;
            times.projector += t;
            let array = tensor::to_f32_array(&value, branch.projector.name(), "output")?;
            let dims = array.shape().to_vec();
            let window_rows = match dims[..] {
                [1, _, _] => array.index_axis_move(Axis(0), 0).into_dimensionality::<Ix2>().expect("rank checked"),
                _ => {
                    return Err(Error::Tensor {
                        stage: branch.projector.name().into(),
                        tensor: "output".into(),
                        expected: "[1, tokens, d_llm] per audio window".into(),
                        found: format!("{dims:?}"),
                    })
                }
            };
            rows.push(window_rows);
        }
        times.encoder_name = branch.encoder.name().to_string();
        times.projector_name = branch.projector.name().to_string();
        let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
        let rows = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Tensor {
            stage: branch.projector.name().into(),
            tensor: "output".into(),
            expected: "the same width for every audio window".into(),
            found: e.to_string(),
        })?;
        Ok(AudioEmbeddings { rows, windows: windows.len() })
    }

    /// Run a request, calling `on_text` with each newly decoded piece of text.
    pub fn run(&mut self, request: &Request, mut on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
        let request_start = Instant::now();
        request.sampling.validate()?;
        request.generation.validate()?;
        if let Some(side) = &self.output {
            side.check(&request.generation)?;
        }
        let mut timings = StageTimings::default();
        // Placeholders are checked before any encoder runs.
        let counts = BTreeMap::from([(Modality::Image, request.images.len()), (Modality::Audio, request.audio.len())]);
        let text = prompt::render_with(&self.bundle.manifest.prompt, &request.prompt, &counts, request.chat)?;
        if !request.audio.is_empty() && self.audio.is_none() {
            return Err(Error::Request(format!("bundle \"{}\" has no audio encoder; remove --audio", self.bundle.name())));
        }
        let images = if request.images.is_empty() { None } else { Some(self.encode_images(&request.images, &mut timings)?) };
        let image_rows = images.as_ref().map(|m| tensor::to_f32_array(&m.value, self.decoder.name(), "image embeddings")).transpose()?;
        let mut audio_times = AudioTimes::default();
        let audio = request.audio.iter().map(|p| self.encode_audio(p, &mut audio_times)).collect::<Result<Vec<_>>>()?;
        if !audio.is_empty() {
            audio_times.push_to(&mut timings);
        }

        let mut rows = BTreeMap::new();
        if let Some(m) = &images {
            rows.insert(Modality::Image, m.tokens_per_item.clone());
        }
        if !audio.is_empty() {
            rows.insert(Modality::Audio, audio.iter().map(|a| a.rows.nrows()).collect());
        }
        let format = &self.bundle.manifest.prompt;
        let encoded = prompt::encode(&self.tokenizer, format, &text, &rows)?;
        let context = self.decoder.context_length();
        if encoded.ids.len() >= context {
            return Err(Error::PromptTooLong { tokens: encoded.ids.len(), context });
        }

        let start = Instant::now();
        let text_embeds = self.decoder.embed(&encoded.ids)?;
        let embeds = if encoded.slots.is_empty() {
            text_embeds
        } else {
            let item_rows = |slot: &prompt::MediaSlot| -> ArrayView2<'_, f32> {
                match slot.modality {
                    Modality::Audio => audio[slot.item].rows.view(),
                    _ => image_rows.as_ref().expect("image slots come with image rows").index_axis(Axis(0), slot.item).into_dimensionality::<Ix2>().expect("[n, tokens, d]"),
                }
            };
            let placed: Vec<(usize, ArrayView2<'_, f32>)> = encoded.slots.iter().map(|s| (s.position, item_rows(s))).collect();
            self.merge(text_embeds, &placed)?
        };
        timings.push("embed", start.elapsed());

        let params = GenerateParams {
            max_new_tokens: request.max_new_tokens.unwrap_or(self.bundle.manifest.generation.max_new_tokens),
            stop_tokens: if request.ignore_stop_tokens { Vec::new() } else { format.eos_token_ids.clone() },
        };
        let mut sampler = Sampler::new(request.sampling.clone());
        let mut stream = StreamDecoder::new();
        let mut text_out = String::new();
        let tokenizer = &self.tokenizer;
        let signals = self.output.as_ref().map(|o| o.signals().clone());
        let mut time_to_first_token = None;
        let generation = generate::generate_with_signals(&mut self.decoder, embeds, &encoded.ids, &mut sampler, &params, signals.as_ref(), |id| {
            time_to_first_token.get_or_insert_with(|| request_start.elapsed());
            if let Some(piece) = stream.push(tokenizer, id)? {
                on_text(&piece)?;
                text_out.push_str(&piece);
            }
            Ok(())
        })?;
        if let Some(piece) = stream.finish(tokenizer)? {
            on_text(&piece)?;
            text_out.push_str(&piece);
        }
        timings.push("prefill", generation.prefill);
        timings.push("decode", generation.decode);
        let media = match self.output.as_mut() {
            Some(side) if !generation.signal_hidden.is_empty() => {
                let media = side.generate(&generation.signal_hidden, &request.generation, request.out_dir.as_deref())?;
                for m in &media {
                    timings.push_ms("output_projector", m.output_projector_ms);
                    timings.push_ms("denoise", m.timings.denoise_ms);
                    timings.push_ms("generator_decode", m.timings.decode_ms);
                }
                media
            }
            _ => Vec::new(),
        };
        Ok(Output {
            token_ids: generation.ids,
            prompt_ids: encoded.ids,
            text: text_out,
            stop_reason: generation.stop_reason,
            timings,
            media,
            time_to_first_token,
        })
    }

    /// Replace the placeholder rows of `text_embeds` `[1, seq, d]` with each
    /// item's rows `[len, d]` at its first position, in the element type the
    /// decoder declares.
    fn merge(&self, text_embeds: DynValue, items: &[(usize, ArrayView2<'_, f32>)]) -> Result<DynValue> {
        let stage = self.decoder.name();
        let Some(dtype) = self.decoder.embeds_type() else {
            return Err(Error::Request(format!(
                "stage \"{stage}\" is the text-only form of the decoder (token ids in); media needs a bundle whose decoder takes inputs_embeds"
            )));
        };
        let mut merged: ArrayD<f32> = tensor::to_f32_array(&text_embeds, stage, "inputs_embeds")?;
        let d_text = merged.shape()[2];
        for &(pos, rows) in items {
            if rows.ncols() != d_text {
                return Err(Error::Tensor {
                    stage: stage.into(),
                    tensor: "inputs_embeds".into(),
                    expected: format!("projected embeddings of width {d_text} (the token embedding width)"),
                    found: format!("width {}", rows.ncols()),
                });
            }
            merged.slice_mut(ndarray::s![0, pos..pos + rows.nrows(), ..]).assign(&rows);
        }
        tensor::float_value(merged, dtype, stage, "inputs_embeds")
    }
}

/// Summed times of the audio branch over a request's files and windows.
#[derive(Debug, Default)]
pub struct AudioTimes {
    /// Read, resample and log-mel.
    pub preprocess: Duration,
    /// Audio encoder runs.
    pub encoder: Duration,
    /// Audio projector runs.
    pub projector: Duration,
    encoder_name: String,
    projector_name: String,
}

impl AudioTimes {
    fn push_to(&self, timings: &mut StageTimings) {
        timings.push("audio_preprocess", self.preprocess);
        timings.push(&self.encoder_name, self.encoder);
        timings.push(&self.projector_name, self.projector);
    }
}
