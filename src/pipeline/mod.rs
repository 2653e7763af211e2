//! The one end-to-end pipeline, for every bundle: input modality branches
//! (preprocess -> encoder -> projector, looked up by modality), the decoder
//! driven by the one generation loop ([`crate::generate`]), and the output
//! side (signal tokens -> output projector -> generator).
//!
//! Two backbones share it: a decoder-only LLM, whose prompt embeddings get the
//! media rows spliced in at their placeholders ([`text`]), and an
//! encoder-decoder model (Whisper), whose decoder attends to each audio
//! window's encoder states through cross-attention ([`transcribe`]). Encoders
//! run once per request, on the prompt only. Every stage of the manifest must
//! be used by the pipeline: one it cannot use is an error at load.

pub mod branch;
pub mod cache;
pub mod clip;
pub mod conversation;
pub mod frames;
pub mod input;
pub mod request;
mod text;
mod transcribe;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use branch::{AudioBranch, MediaEmbeddings, ModalityBranch};
pub use conversation::Conversation;
pub use input::MediaInput;
pub use cache::{CacheStats, EmbeddingCache};
pub use clip::VideoReport;
pub use request::{CancelFlag, InputReport, MediaOptions, Output, Request, StageTimings, WindowResult};

use crate::bundle::Bundle;
use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::manifest::{Modality, Stage};
use crate::output_side::OutputSide;
use crate::runtime::{OrtRuntime, ProviderReport, RuntimeInfo, SessionConfig, SessionPlan};
use crate::stages::decoder::Decoder;
use crate::stages::graph::StageLoader;
use crate::stages::seq2seq::Seq2seqDecoder;
use crate::vad::SileroVad;
use crate::tokenizer::TextTokenizer;

/// How a pipeline is loaded besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Session settings per stage (the manifest's `sessions` block is applied first, these on top).
    pub sessions: SessionPlan,
    /// Silero VAD directory (holds `vad.json`), for voice-activity gating of a speech bundle.
    pub vad_model: Option<PathBuf>,
    /// Where image and video-frame encoder outputs are remembered (`None`: a
    /// private in-memory cache of [`cache::DEFAULT_CACHE_BYTES`]). Share one
    /// `Arc` between pipelines (or a frame encoder on another thread) to share hits.
    pub embedding_cache: Option<Arc<EmbeddingCache>>,
}

/// The decoder and what conditions it.
enum Backbone {
    /// A decoder-only LLM with its input modality branches.
    DecoderOnly { decoder: Decoder, branches: Vec<Box<dyn ModalityBranch>> },
    /// An encoder-decoder model: the audio front end and the cross-attending text decoder.
    EncoderDecoder { audio: Box<AudioBranch>, decoder: Box<Seq2seqDecoder>, vad: Option<SileroVad> },
}

/// A loaded bundle ready to serve requests.
pub struct Pipeline {
    bundle: Bundle,
    tokenizer: TextTokenizer,
    /// The bundle's Jinja chat template (`prompt.chat`), if any.
    chat: Option<ChatTemplate>,
    backbone: Backbone,
    output: Option<OutputSide>,
    provider: ProviderReport,
    runtime: RuntimeInfo,
    load_time: Duration,
}

impl Pipeline {
    /// Open every stage of `bundle` with the same session settings.
    pub fn load(runtime: &OrtRuntime, bundle: Bundle, config: &SessionConfig) -> Result<Pipeline> {
        Self::load_with(runtime, bundle, &LoadOptions { sessions: SessionPlan::uniform(config.clone()), ..LoadOptions::default() })
    }

    /// Open every stage of `bundle` with per-stage settings and options.
    pub fn load_with(runtime: &OrtRuntime, bundle: Bundle, options: &LoadOptions) -> Result<Pipeline> {
        let start = Instant::now();
        let manifest = &bundle.manifest;
        if let Some(stage) = manifest.stages.iter().find(|s| s.is_standalone()) {
            let opener = match stage {
                Stage::TextToSpeech(_) => "a voice bundle (text to speech): open it with mmrt::tts::Voice",
                _ => "a consistency generator bundle: open it with mmrt::stages::consistency::ConsistencyGenerator",
            };
            return Err(Error::Manifest { path: bundle.manifest_path(), message: format!("this is {opener}") });
        }
        let plan = options.sessions.for_manifest(manifest)?;
        let loader = StageLoader::new(runtime, &bundle, &plan);
        let mut used = BTreeSet::new();
        let embedding_cache = options.embedding_cache.clone().unwrap_or_default();
        // The tokenizer (33 MB of JSON for Gemma's 262k vocabulary, unless the bundle has its
        // compact form) is read on a second thread while the backbone's sessions are created.
        let (tokenizer, backbone) = std::thread::scope(|scope| {
            let parsing = scope.spawn(|| {
                let tokenizer = crate::tokenizer::open(&bundle);
                log::debug!("tokenizer ({}) read in {:.0?}", tokenizer.as_ref().map_or("failed", |t| t.form()), start.elapsed());
                tokenizer
            });
            let backbone = open_backbone(&loader, options, &embedding_cache, &mut used);
            log::debug!("backbone sessions open in {:.0?}", start.elapsed());
            let tokenizer = parsing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (tokenizer, backbone)
        });
        let tokenizer = tokenizer?;
        let backbone = backbone?;
        let mut chat = None;
        if manifest.seq2seq_decoder().is_none() {
            // Placeholders and stop tokens must be tokens of this tokenizer.
            crate::prompt::check_tokenizer(&manifest.prompt, &tokenizer).map_err(|message| Error::Manifest {
                path: bundle.root.join(crate::bundle::MANIFEST_FILE),
                message: format!("{message} (tokenizer {})", manifest.tokenizer),
            })?;
            // So must the chat template's special-token markers.
            chat = ChatTemplate::load(&bundle)?;
            if let Some(template) = &chat {
                template.check_tokenizer(&tokenizer).map_err(|message| Error::Manifest {
                    path: bundle.root.join(crate::bundle::MANIFEST_FILE),
                    message: format!("{message} (tokenizer {})", manifest.tokenizer),
                })?;
            }
        }
        let output = OutputSide::open(&loader, &tokenizer)?;
        if output.is_some() {
            used.extend(manifest.stages.iter().filter(|s| s.is_output_side()).map(|s| s.name().to_string()));
        }
        if let Some(unused) = manifest.stages.iter().find(|s| !used.contains(s.name())) {
            return Err(Error::Manifest {
                path: bundle.root.join(crate::bundle::MANIFEST_FILE),
                message: format!("stage \"{}\" ({}) has no place in this bundle's pipeline: {}", unused.name(), unused.kind(), unused_reason(&bundle, unused)),
            });
        }
        let provider = loader.provider_report();
        drop(loader);
        Ok(Pipeline { bundle, tokenizer, chat, backbone, output, provider, runtime: runtime.info.clone(), load_time: start.elapsed() })
    }

    /// The bundle served.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The bundle's Jinja chat template (`prompt.chat`), if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
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

    /// Whether the bundle is an encoder-decoder (speech-recognition) bundle.
    pub fn is_encoder_decoder(&self) -> bool {
        matches!(self.backbone, Backbone::EncoderDecoder { .. })
    }

    /// Preprocess, encode and project `paths` of `modality` (LLM bundles with that branch).
    pub fn encode_media(&mut self, modality: Modality, paths: &[MediaInput], timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        self.encode_media_with(modality, paths, &MediaOptions::default(), timings)
    }

    /// [`Pipeline::encode_media`] with request media options (video sampling).
    pub fn encode_media_with(&mut self, modality: Modality, paths: &[MediaInput], options: &MediaOptions, timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        let name = self.bundle.name().to_string();
        let branch = match &mut self.backbone {
            Backbone::DecoderOnly { branches, .. } => branches.iter_mut().find(|b| b.modality() == modality),
            Backbone::EncoderDecoder { .. } => None,
        };
        let branch = branch.ok_or_else(|| Error::Request(format!("bundle \"{name}\" has no {modality} encoder; remove the {modality} input")))?;
        branch.embed(paths, options, timings)
    }

    /// Run a request, calling `on_text` with each newly decoded piece of text.
    pub fn run(&mut self, request: &Request, on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
        let config = self.bundle.manifest.generation.with_overrides(&request.generation);
        config.validate()?;
        request.media_generation.validate()?;
        match self.backbone {
            Backbone::DecoderOnly { .. } => text::run(self, request, &config, on_text),
            Backbone::EncoderDecoder { .. } => transcribe::run(self, request, &config, on_text),
        }
    }

    /// One turn of `conversation`: `request.prompt` is the user's message (no
    /// media), answered with the KV cache kept from the previous turn; see
    /// [`Conversation`]. `Output::prefill_tokens` says how many positions were fed.
    pub fn chat(&mut self, conversation: &mut Conversation, request: &Request, on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
        let config = self.bundle.manifest.generation.with_overrides(&request.generation);
        config.validate()?;
        conversation::turn(self, conversation, request, &config, on_text)
    }
}

/// The backbone and its inputs: the names of the stages it uses go to `used`.
fn open_backbone(loader: &StageLoader<'_>, options: &LoadOptions, cache: &Arc<EmbeddingCache>, used: &mut BTreeSet<String>) -> Result<Backbone> {
    let manifest = &loader.bundle.manifest;
    if let Some(stage) = manifest.seq2seq_decoder() {
        let encoder = manifest.encoder(Modality::Audio).ok_or_else(|| Error::Manifest {
            path: loader.bundle.root.join(crate::bundle::MANIFEST_FILE),
            message: format!("stage \"{}\" (seq2seq_decoder) needs an audio modality_encoder", stage.name),
        })?;
        let audio = AudioBranch::encoder_only(loader, encoder)?;
        let decoder = Box::new(Seq2seqDecoder::open(loader, stage)?);
        let vad = options.vad_model.as_deref().map(|dir| SileroVad::open(loader.runtime, dir, audio.sample_rate())).transpose()?;
        used.extend([stage.name.clone(), encoder.name.clone()]);
        return Ok(Backbone::EncoderDecoder { audio: Box::new(audio), decoder, vad });
    }
    let stage = manifest
        .llm_decoder()
        .ok_or_else(|| Error::Request(format!("bundle \"{}\" has neither an llm_decoder nor a seq2seq_decoder stage", loader.bundle.name())))?;
    let decoder = Decoder::open(loader, stage)?;
    used.insert(stage.name.clone());
    let mut branches = Vec::new();
    for (modality, encoder) in manifest.encoders() {
        let Some(projector) = manifest.projector(modality) else { continue };
        branches.push(branch::open_branch(loader, encoder, projector, cache)?);
        used.extend([encoder.name.clone(), projector.name.clone()]);
    }
    Ok(Backbone::DecoderOnly { decoder, branches })
}

/// Why a stage was left out, for the load error.
fn unused_reason(bundle: &Bundle, stage: &crate::manifest::Stage) -> String {
    let m = &bundle.manifest;
    match stage.modality() {
        _ if m.seq2seq_decoder().is_some() => "an encoder-decoder bundle uses only its seq2seq_decoder and audio modality_encoder".into(),
        Some(modality) if m.encoder(modality).is_none() => format!("there is no {modality} modality_encoder to feed it"),
        Some(modality) if m.projector(modality).is_none() => format!("there is no {modality} input_projector to take its features"),
        _ => "nothing in the pipeline consumes it".into(),
    }
}
