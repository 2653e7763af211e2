//! The bundle manifest (`bundle.json`, format version 1): plain serde structs
//! describing every stage of an MM-LLM, the tensors the runtime touches, the
//! preprocessing, the prompt format and generation defaults.
//!
//! Parsing is strict (`deny_unknown_fields`, tagged enums) so a typo in a
//! manifest is an error naming the field, not a silently ignored setting.
//! [`Manifest::validate`] checks what serde cannot: cross references, value
//! ranges and that every path stays inside the bundle.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits;

/// The `format` string every manifest carries.
pub const FORMAT: &str = "mmrt.bundle";
/// The manifest version this runtime reads.
pub const VERSION: u32 = 1;

/// A parsed `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this runtime.
    pub version: u32,
    /// Short bundle name (shown by `inspect` and benchmarks).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Hugging Face `tokenizer.json`, relative to the bundle.
    pub tokenizer: String,
    /// The model's stages, in no particular order; each kind is found by its tag.
    pub stages: Vec<Stage>,
    /// How a request becomes token ids.
    pub prompt: PromptFormat,
    /// Generation defaults, overridable per request.
    #[serde(default)]
    pub generation: crate::generate::GenerationConfig,
    /// Session settings per stage name (execution provider, threads, ONNX
    /// Runtime options), applied before the command line's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sessions: BTreeMap<String, crate::runtime::StageSession>,
    /// sha256 (hex) of bundle files, verified on load. Keys are bundle-relative paths.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// The media a modality stage handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Still images.
    Image,
    /// Waveforms.
    Audio,
    /// Frame sequences.
    Video,
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Modality::Image => "image",
            Modality::Audio => "audio",
            Modality::Video => "video",
        })
    }
}

/// One stage of the five-stage MM-LLM architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stage {
    /// Raw modality → feature vectors (ViT / CLIP, Whisper encoder, per-frame ViT).
    ModalityEncoder(EncoderStage),
    /// Encoder features → LLM embedding space (linear / MLP / cross-attention).
    InputProjector(ProjectorStage),
    /// Token embedding + decoder-only LLM with KV cache.
    LlmDecoder(DecoderStage),
    /// Encoder-decoder text decoder (Whisper): cross-attention over encoder
    /// states (projected once per window by its `cross_kv` graph) plus self-attention KV cache.
    Seq2seqDecoder(Seq2seqDecoderStage),
    /// LLM hidden states at signal tokens → generator conditioning.
    OutputProjector(OutputProjectorStage),
    /// Conditioning → media (diffusion denoiser + scheduler + decoder, vocoder).
    ModalityGenerator(GeneratorStage),
}

impl Stage {
    /// The stage's name as written in the manifest.
    pub fn name(&self) -> &str {
        match self {
            Stage::ModalityEncoder(s) => &s.name,
            Stage::InputProjector(s) => &s.name,
            Stage::LlmDecoder(s) => &s.name,
            Stage::Seq2seqDecoder(s) => &s.name,
            Stage::OutputProjector(s) => &s.name,
            Stage::ModalityGenerator(s) => &s.name,
        }
    }

    /// The stage kind, as its JSON tag spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Stage::ModalityEncoder(_) => "modality_encoder",
            Stage::InputProjector(_) => "input_projector",
            Stage::LlmDecoder(_) => "llm_decoder",
            Stage::Seq2seqDecoder(_) => "seq2seq_decoder",
            Stage::OutputProjector(_) => "output_projector",
            Stage::ModalityGenerator(_) => "modality_generator",
        }
    }

    /// The modality of a modality stage (`None` for decoders).
    pub fn modality(&self) -> Option<Modality> {
        match self {
            Stage::ModalityEncoder(s) => Some(s.modality),
            Stage::InputProjector(s) => Some(s.modality),
            Stage::OutputProjector(s) => Some(s.modality),
            Stage::ModalityGenerator(s) => Some(s.modality),
            Stage::LlmDecoder(_) | Stage::Seq2seqDecoder(_) => None,
        }
    }

    /// One line for `mmrt inspect`: kind, name, graphs, tensors.
    pub fn summary(&self) -> String {
        match self {
            Stage::ModalityEncoder(s) => format!("modality_encoder  {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
            Stage::InputProjector(s) => format!("input_projector   {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
            Stage::LlmDecoder(s) => format!(
                "llm_decoder       {:<16} {} ({}): {} layers, context {}",
                s.name,
                s.graph,
                match &s.embedding {
                    Some(e) => format!("inputs_embeds, + {}", e.graph),
                    None => "token ids in, text only".into(),
                },
                s.kv_cache.num_layers,
                s.context_length
            ),
            Stage::Seq2seqDecoder(s) => format!(
                "seq2seq_decoder   {:<16} {} (+ cross-attention projection {}): {} layers, context {}",
                s.name, s.graph, s.cross_kv.graph, s.kv_cache.num_layers, s.context_length
            ),
            Stage::OutputProjector(s) => format!("output_projector  {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
            Stage::ModalityGenerator(s) => {
                format!(
                    "modality_generator {:<15} {} {} + {}: {}, {} steps, guidance {}, latents {:?}",
                    s.name,
                    s.modality,
                    s.denoiser.graph,
                    s.decoder.graph,
                    s.scheduler.class_name(),
                    s.steps,
                    s.guidance_scale,
                    s.latent_shape
                )
            }
        }
    }

    /// Whether the stage belongs to the output side (output projector, generator).
    pub fn is_output_side(&self) -> bool {
        matches!(self, Stage::OutputProjector(_) | Stage::ModalityGenerator(_))
    }

    /// Every bundle file the stage references.
    pub fn files(&self) -> Vec<&str> {
        match self {
            Stage::ModalityEncoder(s) => vec![s.graph.as_str()],
            Stage::InputProjector(s) => vec![s.graph.as_str()],
            Stage::LlmDecoder(s) => s.embedding.iter().map(|e| e.graph.as_str()).chain([s.graph.as_str()]).collect(),
            Stage::Seq2seqDecoder(s) => vec![s.cross_kv.graph.as_str(), s.graph.as_str()],
            Stage::OutputProjector(s) => vec![s.graph.as_str()],
            Stage::ModalityGenerator(s) => vec![s.denoiser.graph.as_str(), s.decoder.graph.as_str()],
        }
    }
}

/// `modality_encoder`: `input` (preprocessed media) -> `output` features `[n, tokens, d_enc]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderStage {
    /// Stage name, used in errors and timings.
    pub name: String,
    /// Which media it encodes.
    pub modality: Modality,
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Graph input name for the preprocessed media.
    pub input: String,
    /// Graph output name for the features.
    pub output: String,
    /// Native preprocessing before the graph.
    pub preprocess: Preprocess,
}

/// `input_projector`: encoder features -> embeddings `[n, tokens, d_llm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorStage {
    /// Stage name.
    pub name: String,
    /// Which modality's encoder output it projects.
    pub modality: Modality,
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Graph input name (encoder features).
    pub input: String,
    /// Graph output name (LLM-space embeddings).
    pub output: String,
}

/// `llm_decoder`: token embedding graph plus the decoder graph with KV cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderStage {
    /// Stage name.
    pub name: String,
    /// Token ids -> embeddings graph; required when the decoder takes
    /// `inputs_embeds` (the multimodal-ready form), absent when it takes ids.
    #[serde(default)]
    pub embedding: Option<EmbeddingGraph>,
    /// Decoder ONNX graph, bundle-relative.
    pub graph: String,
    /// Names of the decoder's non-cache inputs.
    pub inputs: DecoderInputs,
    /// Names of the decoder's non-cache outputs.
    pub outputs: DecoderOutputs,
    /// Names of the past/present key-value tensors.
    pub kv_cache: KvCacheNames,
    /// Maximum total sequence length (prompt + generated tokens).
    pub context_length: usize,
}

/// The token embedding graph: `input` ids `[batch, seq]` -> `output` `[batch, seq, d_llm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingGraph {
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Input ids tensor name.
    pub input: String,
    /// Embeddings tensor name.
    pub output: String,
    /// Factor applied to embeddings outside the graph (1.0 when the graph already scales).
    #[serde(default = "one")]
    pub scale: f32,
}

fn one() -> f32 {
    1.0
}

/// Decoder inputs besides the KV cache. Exactly one of `inputs_embeds`
/// (multimodal-ready: media rows are spliced between text embeddings) and
/// `input_ids` (text-only: the graph embeds, one session call per step).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderInputs {
    /// `[batch, seq, d_llm]` embeddings.
    #[serde(default)]
    pub inputs_embeds: Option<String>,
    /// `[batch, seq]` token ids.
    #[serde(default)]
    pub input_ids: Option<String>,
    /// `[batch, past + seq]` int64 ones, when the graph takes it.
    #[serde(default)]
    pub attention_mask: Option<String>,
    /// `[batch, seq]` int64 positions, when the graph takes it.
    #[serde(default)]
    pub position_ids: Option<String>,
}

/// Decoder outputs besides the KV cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderOutputs {
    /// `[batch, seq, vocab]` logits.
    pub logits: String,
    /// `[batch, seq, d_llm]` last hidden state, when an output projector needs it.
    #[serde(default)]
    pub hidden_states: Option<String>,
}

/// Past/present tensor name patterns; `{layer}` is replaced by the layer index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvCacheNames {
    /// Number of decoder layers (one key and one value tensor each).
    pub num_layers: usize,
    /// e.g. `past_key_values.{layer}.key`.
    pub past_key: String,
    /// e.g. `past_key_values.{layer}.value`.
    pub past_value: String,
    /// e.g. `present.{layer}.key`.
    pub present_key: String,
    /// e.g. `present.{layer}.value`.
    pub present_value: String,
    /// Head size of the cache tensors, for graphs that leave it symbolic
    /// (onnxruntime-genai's exports name it `kv_cache_dim`); read from the
    /// graph otherwise.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Past and present are one preallocated buffer of `context_length`
    /// positions per tensor, bound as both input and output, which the graph
    /// updates in place (GroupQueryAttention's past_present_share_buffer):
    /// no KV bytes are copied per step. Requires a graph that supports it.
    #[serde(default)]
    pub shared_buffer: bool,
}

impl KvCacheNames {
    /// Past input names in feeding order: layer 0 key, layer 0 value, layer 1 key, ...
    pub fn past_names(&self) -> Vec<String> {
        self.expand(&self.past_key, &self.past_value)
    }

    /// Present output names, in the same order as [`Self::past_names`].
    pub fn present_names(&self) -> Vec<String> {
        self.expand(&self.present_key, &self.present_value)
    }

    fn expand(&self, key: &str, value: &str) -> Vec<String> {
        (0..self.num_layers)
            .flat_map(|l| {
                let l = l.to_string();
                [key.replace("{layer}", &l), value.replace("{layer}", &l)]
            })
            .collect()
    }
}

/// `seq2seq_decoder`: the text decoder of an encoder-decoder model (Whisper).
///
/// * `cross_kv` graph: `input` encoder states `[1, positions, d]` -> per layer
///   `key`/`value` `[1, heads, positions, head_dim]` (the cross-attention input
///   projection, run once per audio window);
/// * decoder graph: `input_ids [1, n]`, `past.* [1, heads, past, head_dim]`,
///   cross keys/values -> `logits [1, n, vocab]`, `present.* [1, heads, past + n, head_dim]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2seqDecoderStage {
    /// Stage name.
    pub name: String,
    /// Decoder step graph, bundle-relative.
    pub graph: String,
    /// The cross-attention key/value projection of encoder states.
    pub cross_kv: CrossKvGraph,
    /// Decoder input: token ids `[1, n]`.
    pub input_ids: String,
    /// Decoder output: logits `[1, n, vocab]`.
    pub logits: String,
    /// Self-attention past/present names (the cross keys/values use `cross_kv.key`/`value`).
    pub kv_cache: KvCacheNames,
    /// Maximum decoder positions (forced prompt + generated tokens).
    pub context_length: usize,
    /// Tokens forced at the start of every window.
    pub decoder_prompt: DecoderPrompt,
    /// Token ids whose logits are set to -inf at every step.
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Token ids suppressed at the first generated position only.
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

/// The cross-attention projection graph of a [`Seq2seqDecoderStage`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossKvGraph {
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Input: encoder states `[1, positions, d]`.
    pub input: String,
    /// Output (and decoder input) name pattern of cross keys, with `{layer}`.
    pub key: String,
    /// Output (and decoder input) name pattern of cross values, with `{layer}`.
    pub value: String,
}

impl CrossKvGraph {
    /// Names in feeding order: layer 0 key, layer 0 value, layer 1 key, ...
    pub fn names(&self, num_layers: usize) -> Vec<String> {
        (0..num_layers)
            .flat_map(|l| {
                let l = l.to_string();
                [self.key.replace("{layer}", &l), self.value.replace("{layer}", &l)]
            })
            .collect()
    }
}

/// Forced decoder prompt (Whisper: `<|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderPrompt {
    /// First decoder token.
    pub start_token_id: u32,
    /// Language token, when the model is multilingual.
    #[serde(default)]
    pub language_token_id: Option<u32>,
    /// Task token (transcribe / translate).
    #[serde(default)]
    pub task_token_id: Option<u32>,
    /// Token that switches timestamps off.
    #[serde(default)]
    pub no_timestamps_token_id: Option<u32>,
}

impl DecoderPrompt {
    /// The forced ids in order.
    pub fn ids(&self) -> Vec<u32> {
        std::iter::once(self.start_token_id)
            .chain(self.language_token_id)
            .chain(self.task_token_id)
            .chain(self.no_timestamps_token_id)
            .collect()
    }
}

/// `output_projector`: hidden states at signal tokens -> generator conditioning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputProjectorStage {
    /// Stage name.
    pub name: String,
    /// Which generator it conditions.
    pub modality: Modality,
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Hidden-state input name `[batch, k, d_llm]`.
    pub input: String,
    /// Conditioning output name `[batch, n_cond, d_cond]`.
    pub output: String,
    /// Signal tokens (e.g. `[IMG0]`…`[IMG7]`) whose hidden states feed the projector.
    pub signal_tokens: Vec<String>,
}

/// `modality_generator`: conditioning -> media, through a denoiser loop and a decoder.
///
/// The same stage kind serves images (latents -> VAE decoder -> RGB -> PNG) and
/// audio (latents -> vocoder / VAE -> waveform -> WAV); `output` says which.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorStage {
    /// Stage name.
    pub name: String,
    /// What it produces (its conditioning comes from the output projector of the same modality).
    pub modality: Modality,
    /// Denoiser graph: latents, timestep, conditioning -> prediction.
    pub denoiser: DenoiserGraph,
    /// Decoder graph (VAE / vocoder): final latents -> media tensor.
    pub decoder: LatentDecoderGraph,
    /// Scheduler kind and its diffusers configuration.
    pub scheduler: crate::diffusion::SchedulerConfig,
    /// Latent shape without the batch dimension, e.g. `[4, 64, 64]` (image) or `[8, 256]` (audio).
    pub latent_shape: Vec<usize>,
    /// Default number of denoising steps.
    pub steps: usize,
    /// Default classifier-free guidance scale; guidance runs when it is > 1 (as in diffusers),
    /// with all-zero conditioning as the unconditional input.
    pub guidance_scale: f32,
    /// How the decoder's tensor becomes a media file.
    pub output: MediaOutput,
}

/// The denoiser graph: `latents [b, ...latent_shape]`, `timestep [b]`,
/// `conditioning [b, n_cond, d_cond]` -> `output [b, ...latent_shape]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiserGraph {
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Input tensor names.
    pub inputs: DenoiserInputs,
    /// Prediction output name (noise, sample or velocity, per the scheduler's `prediction_type`).
    pub output: String,
}

/// Input names of the denoiser graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiserInputs {
    /// Noisy latents.
    pub latents: String,
    /// Timestep per batch row (float or integer, as the graph declares).
    pub timestep: String,
    /// Output-projector conditioning.
    pub conditioning: String,
}

/// The decoder graph: `input` latents `[1, ...latent_shape]` -> `output` media tensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentDecoderGraph {
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Latents input name.
    pub input: String,
    /// Media output name: `[1, channels, height, width]` images, `[1, samples]` or `[1, channels, samples]` audio.
    pub output: String,
}

/// What a generator writes, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MediaOutput {
    /// An image file.
    Image(ImageOutput),
    /// An audio file.
    Audio(AudioOutput),
}

/// Image output: `[1, 1|3|4, H, W]` floats in `value_range` -> 8-bit pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOutput {
    /// File format.
    #[serde(default)]
    pub format: ImageFormat,
    /// Values mapped to 0 and 255 (diffusers' VAEs: `[-1, 1]`).
    pub value_range: [f32; 2],
}

/// Image file formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// PNG, lossless.
    #[default]
    Png,
}

/// Audio output: `[1, samples]` or `[1, channels, samples]` floats in `value_range` -> 16-bit PCM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioOutput {
    /// File format.
    #[serde(default)]
    pub format: AudioFormat,
    /// Samples per second of the waveform.
    pub sample_rate: u32,
    /// Values mapped to -1 and 1.
    pub value_range: [f32; 2],
}

/// Audio file formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    /// RIFF WAVE, 16-bit PCM.
    #[default]
    Wav,
}

/// Native preprocessing of a modality, before its encoder graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Preprocess {
    /// Decode, resize, crop, normalize to a tensor.
    Image(ImagePreprocess),
    /// Resample and log-mel spectrogram.
    Audio(AudioPreprocess),
    /// Sample frames, then image preprocessing per frame.
    Video(VideoPreprocess),
}

/// Image preprocessing, CLIP-style: resize, center crop, rescale, normalize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePreprocess {
    /// How to resize before cropping.
    pub resize: Resize,
    /// Center crop after resizing; `None` keeps the resized image.
    #[serde(default)]
    pub crop: Option<Size>,
    /// Multiplier from u8 to float (usually 1/255).
    pub rescale_factor: f32,
    /// Per-channel mean subtracted after rescaling (RGB order).
    pub mean: [f32; 3],
    /// Per-channel std dividing after the mean.
    pub std: [f32; 3],
    /// Tensor layout.
    pub layout: Layout,
    /// Tensor element type fed to the encoder.
    pub dtype: TensorDtype,
}

/// Resize rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Scale so the shorter edge has this length (aspect kept).
    #[serde(default)]
    pub shortest_edge: Option<u32>,
    /// Resize to exactly this size (aspect not kept).
    #[serde(default)]
    pub exact: Option<Size>,
    /// Resampling filter.
    pub filter: ResizeFilter,
}

/// Width × height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// Resampling filters (names as in PIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle) filter.
    Bilinear,
    /// Bicubic, a = -0.5 (Catmull-Rom), as PIL's BICUBIC.
    Bicubic,
    /// Lanczos3.
    Lanczos,
}

/// Tensor layout of image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `[n, channels, height, width]`.
    Nchw,
    /// `[n, height, width, channels]`.
    Nhwc,
}

/// Element types a stage can declare for its float inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorDtype {
    /// 32-bit float.
    Float32,
    /// 16-bit float.
    Float16,
}

/// Whisper-style audio preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPreprocess {
    /// Encoder sample rate in Hz.
    pub sample_rate: u32,
    /// FFT window size.
    pub n_fft: usize,
    /// Hop between frames, in samples.
    pub hop_length: usize,
    /// Mel bins.
    pub n_mels: usize,
    /// Window length the encoder expects, seconds (pad / trim).
    pub chunk_seconds: f32,
}

/// Video preprocessing: uniformly sampled frames, each preprocessed as an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoPreprocess {
    /// Frames sampled per clip.
    pub frames: usize,
    /// Per-frame image preprocessing.
    pub image: ImagePreprocess,
}

/// How a request becomes token ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFormat {
    /// Prompt template (raw completion for a base model); `{content}` is replaced by
    /// media placeholders + the user prompt.
    pub template: String,
    /// Chat-turn template used instead of `template` when a request asks for chat
    /// (`mmrt run --chat`), e.g. Gemma's `<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Per modality, the placeholder string written in prompts (e.g. `<image>`).
    #[serde(default)]
    pub placeholders: BTreeMap<Modality, String>,
    /// Per modality, the token id the placeholder tokenizes to; it is expanded to one
    /// token per projected embedding row.
    #[serde(default)]
    pub media_token_ids: BTreeMap<Modality, u32>,
    /// Prepended to every prompt when set.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Generation stops after emitting any of these.
    pub eos_token_ids: Vec<u32>,
    /// Padding id (unused for batch 1; kept for completeness).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// User prompt used when a request gives none (`mmrt run` without `--prompt`),
    /// e.g. the instruction a captioning bundle was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_prompt: Option<String>,
}

impl Manifest {
    /// Parse `bundle.json` text; `origin` names the file in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| Error::Manifest {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        manifest.validate().map_err(|message| Error::Manifest { path: origin.to_path_buf(), message })?;
        Ok(manifest)
    }

    /// Checks serde cannot express. Returns the first problem found.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("`format` must be \"{FORMAT}\", found \"{}\"", self.format));
        }
        if self.version != VERSION {
            return Err(format!("`version` {} is not supported (this runtime reads version {VERSION})", self.version));
        }
        for path in self.files() {
            check_relative_path(path)?;
        }
        for path in self.checksums.keys() {
            check_relative_path(path)?;
        }
        let decoders =
            self.stages.iter().filter(|s| matches!(s, Stage::LlmDecoder(_) | Stage::Seq2seqDecoder(_))).count();
        if decoders != 1 {
            return Err(format!("exactly one `llm_decoder` or `seq2seq_decoder` stage is required, found {decoders}"));
        }
        let mut names = std::collections::BTreeSet::new();
        for stage in &self.stages {
            if !names.insert(stage.name()) {
                return Err(format!("stage name \"{}\" is used twice", stage.name()));
            }
            validate_stage(stage)?;
        }
        self.validate_one_stage_per_modality()?;
        self.validate_prompt_tokens()?;
        if self.generation.max_new_tokens > limits::MAX_NEW_TOKENS {
            return Err(format!(
                "`generation.max_new_tokens` {} is above the limit of {} (limits::MAX_NEW_TOKENS)",
                self.generation.max_new_tokens,
                limits::MAX_NEW_TOKENS
            ));
        }
        for stage in &self.stages {
            if let Stage::InputProjector(p) = stage {
                if self.encoder(p.modality).is_none() {
                    return Err(format!("input_projector \"{}\" has no modality_encoder for {}", p.name, p.modality));
                }
            }
        }
        if let Some(d) = self.seq2seq_decoder() {
            if self.encoders().count() != 1 || self.encoder(Modality::Audio).is_none() {
                return Err(format!("seq2seq_decoder \"{}\" needs exactly one modality_encoder, for audio", d.name));
            }
            return self.generation.validate().map_err(|e| format!("`generation`: {e}"));
        }
        for (modality, _) in self.encoders() {
            if self.projector(modality).is_none() {
                return Err(format!("modality_encoder for {modality} has no input_projector"));
            }
            if !self.prompt.placeholders.contains_key(&modality) || !self.prompt.media_token_ids.contains_key(&modality)
            {
                return Err(format!("`prompt` needs a placeholder and a media token id for {modality}"));
            }
        }
        for stage in &self.stages {
            match stage {
                Stage::OutputProjector(o) => {
                    if self.generator(o.modality).is_none() {
                        return Err(format!("output_projector \"{}\" has no modality_generator for {}", o.name, o.modality));
                    }
                    if self.decoder().outputs.hidden_states.is_none() {
                        return Err(format!(
                            "output_projector \"{}\" needs the decoder's last hidden state: set `outputs.hidden_states` of the llm_decoder stage",
                            o.name
                        ));
                    }
                }
                Stage::ModalityGenerator(g) if self.output_projector(g.modality).is_none() => {
                    return Err(format!("modality_generator \"{}\" has no output_projector for {}", g.name, g.modality));
                }
                _ => {}
            }
        }
        if !self.prompt.template.contains("{content}") {
            return Err("`prompt.template` must contain {content}".into());
        }
        if self.prompt.chat_template.as_ref().is_some_and(|t| !t.contains("{content}")) {
            return Err("`prompt.chat_template` must contain {content}".into());
        }
        self.generation.validate().map_err(|e| format!("`generation`: {e}"))
    }

    /// At most one stage of each modality-specific kind per modality: a second
    /// encoder (or projector, output projector, generator) for the same
    /// modality would be loaded and never used, or used instead of the first.
    fn validate_one_stage_per_modality(&self) -> std::result::Result<(), String> {
        let mut seen: BTreeMap<(&str, Modality), &str> = BTreeMap::new();
        for stage in &self.stages {
            let (kind, modality) = match stage {
                Stage::ModalityEncoder(s) => ("modality_encoder", s.modality),
                Stage::InputProjector(s) => ("input_projector", s.modality),
                Stage::OutputProjector(s) => ("output_projector", s.modality),
                Stage::ModalityGenerator(s) => ("modality_generator", s.modality),
                Stage::LlmDecoder(_) | Stage::Seq2seqDecoder(_) => continue,
            };
            if let Some(first) = seen.insert((kind, modality), stage.name()) {
                return Err(format!(
                    "two {kind} stages for {modality} (\"{first}\" and \"{}\"); a bundle has at most one per modality",
                    stage.name()
                ));
            }
        }
        Ok(())
    }

    /// The prompt's special tokens, as far as the manifest alone can tell:
    /// placeholders non-empty and distinct, media token ids distinct, at least
    /// one stop token (neither decoder kind has another way to end a
    /// generation before its budget). That each placeholder is one token of the
    /// tokenizer is [`crate::prompt::check_tokenizer`]'s part.
    fn validate_prompt_tokens(&self) -> std::result::Result<(), String> {
        let p = &self.prompt;
        let mut placeholders = BTreeMap::new();
        for (modality, placeholder) in &p.placeholders {
            if placeholder.trim().is_empty() {
                return Err(format!(
                    "`prompt.placeholders.{modality}` is empty; it must be the tokenizer's {modality} token (e.g. \"<{modality}>\")"
                ));
            }
            if placeholder.contains("{content}") {
                return Err(format!("`prompt.placeholders.{modality}` must not contain {{content}}"));
            }
            if let Some(other) = placeholders.insert(placeholder.as_str(), modality) {
                return Err(format!("`prompt.placeholders`: {other} and {modality} share the placeholder \"{placeholder}\""));
            }
        }
        let mut ids = BTreeMap::new();
        for (modality, id) in &p.media_token_ids {
            if let Some(other) = ids.insert(id, modality) {
                return Err(format!("`prompt.media_token_ids`: {other} and {modality} share the token id {id}"));
            }
            if p.eos_token_ids.contains(id) {
                return Err(format!("`prompt.media_token_ids.{modality}` {id} is also a stop token (`eos_token_ids`)"));
            }
        }
        if p.eos_token_ids.is_empty() {
            return Err(
                "`prompt.eos_token_ids` is empty: generation could only stop at the token budget or the context; \
                 list the model's end-of-sequence token id(s)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Every file the manifest references (tokenizer and graphs).
    pub fn files(&self) -> Vec<&str> {
        std::iter::once(self.tokenizer.as_str()).chain(self.stages.iter().flat_map(|s| s.files())).collect()
    }

    /// The (single) decoder stage. Validation guarantees it exists unless the
    /// bundle is an encoder-decoder one (see [`Self::seq2seq_decoder`]).
    pub fn decoder(&self) -> &DecoderStage {
        self.llm_decoder().expect("validated manifest without a seq2seq_decoder has an llm_decoder")
    }

    /// The decoder-only LLM stage, if the bundle has one.
    pub fn llm_decoder(&self) -> Option<&DecoderStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::LlmDecoder(d) => Some(d),
            _ => None,
        })
    }

    /// The encoder-decoder text decoder, if the bundle is a speech-recognition bundle.
    pub fn seq2seq_decoder(&self) -> Option<&Seq2seqDecoderStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::Seq2seqDecoder(d) => Some(d),
            _ => None,
        })
    }

    /// Encoder stages keyed by modality.
    pub fn encoders(&self) -> impl Iterator<Item = (Modality, &EncoderStage)> {
        self.stages.iter().filter_map(|s| match s {
            Stage::ModalityEncoder(e) => Some((e.modality, e)),
            _ => None,
        })
    }

    /// Output projector stages, in manifest order.
    pub fn output_projectors(&self) -> impl Iterator<Item = &OutputProjectorStage> {
        self.stages.iter().filter_map(|s| match s {
            Stage::OutputProjector(o) => Some(o),
            _ => None,
        })
    }

    /// The encoder for a modality, if the bundle has one.
    pub fn encoder(&self, modality: Modality) -> Option<&EncoderStage> {
        self.encoders().find(|(m, _)| *m == modality).map(|(_, e)| e)
    }

    /// The output projector for a modality, if the bundle has one.
    pub fn output_projector(&self, modality: Modality) -> Option<&OutputProjectorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::OutputProjector(o) if o.modality == modality => Some(o),
            _ => None,
        })
    }

    /// The modality generator for a modality, if the bundle has one.
    pub fn generator(&self, modality: Modality) -> Option<&GeneratorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::ModalityGenerator(g) if g.modality == modality => Some(g),
            _ => None,
        })
    }

    /// The input projector for a modality, if the bundle has one.
    pub fn projector(&self, modality: Modality) -> Option<&ProjectorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::InputProjector(p) if p.modality == modality => Some(p),
            _ => None,
        })
    }
}

fn validate_stage(stage: &Stage) -> std::result::Result<(), String> {
    let name = stage.name();
    let nonempty = |field: &str, value: &str| {
        if value.trim().is_empty() {
            Err(format!("stage \"{name}\": `{field}` names no tensor"))
        } else {
            Ok(())
        }
    };
    match stage {
        Stage::ModalityEncoder(e) => {
            nonempty("input", &e.input)?;
            nonempty("output", &e.output)?;
            match (&e.preprocess, e.modality) {
                (Preprocess::Video(VideoPreprocess { frames, .. }), Modality::Video) if *frames == 0 || *frames > limits::MAX_VIDEO_FRAMES => {
                    Err(format!(
                        "stage \"{name}\": `frames` must be in 1..={} (limits::MAX_VIDEO_FRAMES), found {frames}",
                        limits::MAX_VIDEO_FRAMES
                    ))
                }
                (Preprocess::Image(p), Modality::Image) | (Preprocess::Video(VideoPreprocess { image: p, .. }), Modality::Video) => {
                    validate_image_preprocess(p).map_err(|m| format!("stage \"{name}\": {m}"))
                }
                (Preprocess::Audio(a), Modality::Audio) => validate_audio_preprocess(a).map_err(|m| format!("stage \"{name}\": {m}")),
                (_, m) => Err(format!("stage \"{name}\": preprocessing does not match modality {m}")),
            }
        }
        Stage::InputProjector(p) => {
            nonempty("input", &p.input)?;
            nonempty("output", &p.output)
        }
        Stage::Seq2seqDecoder(d) => {
            nonempty("input_ids", &d.input_ids)?;
            nonempty("logits", &d.logits)?;
            nonempty("cross_kv.input", &d.cross_kv.input)?;
            validate_kv_names(name, &d.kv_cache)?;
            for (field, pattern) in [("cross_kv.key", &d.cross_kv.key), ("cross_kv.value", &d.cross_kv.value)] {
                if !pattern.contains("{layer}") {
                    return Err(format!("stage \"{name}\": `{field}` must contain {{layer}}, found \"{pattern}\""));
                }
            }
            check_context_length(name, d.context_length)?;
            if d.context_length <= d.decoder_prompt.ids().len() {
                return Err(format!(
                    "stage \"{name}\": `context_length` {} leaves no room after the {}-token decoder prompt",
                    d.context_length,
                    d.decoder_prompt.ids().len()
                ));
            }
            Ok(())
        }
        Stage::LlmDecoder(d) => {
            match (&d.inputs.inputs_embeds, &d.inputs.input_ids, &d.embedding) {
                (Some(embeds), None, Some(e)) => {
                    nonempty("inputs.inputs_embeds", embeds)?;
                    nonempty("embedding.input", &e.input)?;
                    nonempty("embedding.output", &e.output)?;
                }
                (Some(_), None, None) => {
                    return Err(format!("stage \"{name}\": a decoder taking `inputs.inputs_embeds` needs an `embedding` graph"))
                }
                (None, Some(ids), None) => nonempty("inputs.input_ids", ids)?,
                (None, Some(_), Some(_)) => {
                    return Err(format!(
                        "stage \"{name}\": `embedding` is only for a decoder taking `inputs.inputs_embeds`; this one takes `input_ids`"
                    ))
                }
                _ => return Err(format!("stage \"{name}\": name exactly one of `inputs.inputs_embeds` and `inputs.input_ids`")),
            }
            nonempty("outputs.logits", &d.outputs.logits)?;
            validate_kv_names(name, &d.kv_cache)?;
            if d.context_length == 0 {
                return Err(format!("stage \"{name}\": `context_length` must be positive"));
            }
            check_context_length(name, d.context_length)
        }
        Stage::OutputProjector(o) => {
            nonempty("input", &o.input)?;
            nonempty("output", &o.output)?;
            if o.signal_tokens.is_empty() {
                return Err(format!("stage \"{name}\": `signal_tokens` is empty"));
            }
            if o.signal_tokens.len() > limits::MAX_SIGNAL_TOKENS {
                return Err(format!(
                    "stage \"{name}\": {} `signal_tokens`, above the limit of {} (limits::MAX_SIGNAL_TOKENS)",
                    o.signal_tokens.len(),
                    limits::MAX_SIGNAL_TOKENS
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for t in &o.signal_tokens {
                if t.trim().is_empty() {
                    return Err(format!("stage \"{name}\": a signal token is empty"));
                }
                if !seen.insert(t.as_str()) {
                    return Err(format!("stage \"{name}\": signal token \"{t}\" is listed twice"));
                }
            }
            Ok(())
        }
        Stage::ModalityGenerator(g) => validate_generator(g).map_err(|m| format!("stage \"{name}\": {m}")),
    }
}

fn validate_generator(g: &GeneratorStage) -> std::result::Result<(), String> {
    for (field, value) in [
        ("denoiser.inputs.latents", &g.denoiser.inputs.latents),
        ("denoiser.inputs.timestep", &g.denoiser.inputs.timestep),
        ("denoiser.inputs.conditioning", &g.denoiser.inputs.conditioning),
        ("denoiser.output", &g.denoiser.output),
        ("decoder.input", &g.decoder.input),
        ("decoder.output", &g.decoder.output),
    ] {
        if value.trim().is_empty() {
            return Err(format!("`{field}` names no tensor"));
        }
    }
    g.scheduler.validate().map_err(|m| format!("`scheduler`: {m}"))?;
    if g.latent_shape.is_empty() || g.latent_shape.contains(&0) {
        return Err(format!("`latent_shape` must be non-empty with positive sizes, found {:?}", g.latent_shape));
    }
    if g.latent_shape.len() > limits::MAX_LATENT_RANK {
        return Err(format!(
            "`latent_shape` {:?} has {} dimensions, above the limit of {} (limits::MAX_LATENT_RANK)",
            g.latent_shape,
            g.latent_shape.len(),
            limits::MAX_LATENT_RANK
        ));
    }
    match limits::checked_product(&g.latent_shape) {
        Some(n) if n <= limits::MAX_LATENT_ELEMENTS => {}
        _ => {
            return Err(format!(
                "`latent_shape` {:?} has more than {} elements (limits::MAX_LATENT_ELEMENTS)",
                g.latent_shape,
                limits::MAX_LATENT_ELEMENTS
            ))
        }
    }
    if g.steps == 0 {
        return Err("`steps` must be at least 1".into());
    }
    let train = g.scheduler.num_train_timesteps();
    if g.steps > train {
        return Err(format!("`steps` {} exceeds the scheduler's {train} training timesteps", g.steps));
    }
    if !(g.guidance_scale.is_finite() && g.guidance_scale >= 0.0) {
        return Err(format!("`guidance_scale` must be finite and >= 0, found {}", g.guidance_scale));
    }
    let (range, modality) = match &g.output {
        MediaOutput::Image(o) => (o.value_range, Modality::Image),
        MediaOutput::Audio(o) => {
            if o.sample_rate == 0 {
                return Err("`output.sample_rate` must be positive".into());
            }
            check_sample_rate("output.sample_rate", o.sample_rate)?;
            (o.value_range, Modality::Audio)
        }
    };
    if !(range[0].is_finite() && range[1].is_finite() && range[0] < range[1]) {
        return Err(format!("`output.value_range` must be [low, high] with low < high, found {range:?}"));
    }
    if modality != g.modality {
        return Err(format!("`output` is {modality} but the stage's modality is {}", g.modality));
    }
    Ok(())
}

fn validate_kv_names(name: &str, kv: &KvCacheNames) -> std::result::Result<(), String> {
    if kv.num_layers == 0 {
        return Err(format!("stage \"{name}\": `kv_cache.num_layers` must be at least 1"));
    }
    if kv.num_layers > limits::MAX_LAYERS {
        return Err(format!(
            "stage \"{name}\": `kv_cache.num_layers` {} is above the limit of {} layers (limits::MAX_LAYERS)",
            kv.num_layers,
            limits::MAX_LAYERS
        ));
    }
    if let Some(d) = kv.head_dim {
        if d == 0 || d > limits::MAX_HEAD_DIM {
            return Err(format!(
                "stage \"{name}\": `kv_cache.head_dim` must be in 1..={} (limits::MAX_HEAD_DIM), found {d}",
                limits::MAX_HEAD_DIM
            ));
        }
    }
    for (field, pattern) in [
        ("past_key", &kv.past_key),
        ("past_value", &kv.past_value),
        ("present_key", &kv.present_key),
        ("present_value", &kv.present_value),
    ] {
        if !pattern.contains("{layer}") {
            return Err(format!("stage \"{name}\": `kv_cache.{field}` must contain {{layer}}, found \"{pattern}\""));
        }
    }
    Ok(())
}

fn check_context_length(name: &str, context_length: usize) -> std::result::Result<(), String> {
    if context_length > limits::MAX_CONTEXT_LENGTH {
        return Err(format!(
            "stage \"{name}\": `context_length` {context_length} is above the limit of {} positions (limits::MAX_CONTEXT_LENGTH)",
            limits::MAX_CONTEXT_LENGTH
        ));
    }
    Ok(())
}

/// Audio preprocessing values that size the spectrogram, within [`limits`].
fn validate_audio_preprocess(a: &AudioPreprocess) -> std::result::Result<(), String> {
    check_sample_rate("sample_rate", a.sample_rate)?;
    if a.n_fft < 2 || a.n_fft > limits::MAX_N_FFT {
        return Err(format!("`n_fft` must be in 2..={} (limits::MAX_N_FFT), found {}", limits::MAX_N_FFT, a.n_fft));
    }
    if a.hop_length == 0 || a.hop_length > a.n_fft {
        return Err(format!("`hop_length` must be in 1..=n_fft ({}), found {}", a.n_fft, a.hop_length));
    }
    if a.n_mels == 0 || a.n_mels > limits::MAX_N_MELS {
        return Err(format!("`n_mels` must be in 1..={} (limits::MAX_N_MELS), found {}", limits::MAX_N_MELS, a.n_mels));
    }
    if !(a.chunk_seconds.is_finite() && a.chunk_seconds > 0.0 && a.chunk_seconds <= limits::MAX_AUDIO_WINDOW_SECONDS) {
        return Err(format!(
            "`chunk_seconds` must be in (0, {}] (limits::MAX_AUDIO_WINDOW_SECONDS), found {}",
            limits::MAX_AUDIO_WINDOW_SECONDS,
            a.chunk_seconds
        ));
    }
    let window = (a.chunk_seconds as f64 * a.sample_rate as f64).round();
    if window < a.n_fft as f64 {
        return Err(format!("a window of {window} samples (chunk_seconds x sample_rate) is shorter than n_fft {}", a.n_fft));
    }
    limits::check_log_mel(limits::log_mel_frames(a.chunk_seconds, a.sample_rate, a.hop_length), a.n_mels, a.n_fft)
}

/// A sample rate a manifest may declare: within [`limits::MIN_SAMPLE_RATE`] and [`limits::MAX_SAMPLE_RATE`].
fn check_sample_rate(field: &str, rate: u32) -> std::result::Result<(), String> {
    if !(limits::MIN_SAMPLE_RATE..=limits::MAX_SAMPLE_RATE).contains(&rate) {
        return Err(format!(
            "`{field}` must be in {}..={} Hz (limits::MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), found {rate}",
            limits::MIN_SAMPLE_RATE,
            limits::MAX_SAMPLE_RATE
        ));
    }
    Ok(())
}

fn validate_image_preprocess(p: &ImagePreprocess) -> std::result::Result<(), String> {
    match (&p.resize.shortest_edge, &p.resize.exact) {
        (Some(0), _) => return Err("`resize.shortest_edge` must be positive".into()),
        (Some(_), Some(_)) => return Err("`resize` takes either `shortest_edge` or `exact`, not both".into()),
        (None, None) => return Err("`resize` needs `shortest_edge` or `exact`".into()),
        _ => {}
    }
    let max = limits::MAX_PREPROCESS_SIDE;
    for size in p.resize.exact.iter().chain(p.crop.iter()) {
        if size.width == 0 || size.height == 0 {
            return Err(format!("sizes must be positive, found {}x{}", size.width, size.height));
        }
        if size.width > max || size.height > max {
            return Err(format!("sizes must be at most {max}x{max} (limits::MAX_PREPROCESS_SIDE), found {}x{}", size.width, size.height));
        }
    }
    if let Some(s) = p.resize.shortest_edge {
        if s > max {
            return Err(format!("`resize.shortest_edge` must be at most {max} (limits::MAX_PREPROCESS_SIDE), found {s}"));
        }
    }
    if p.mean.iter().any(|m| !m.is_finite()) {
        return Err(format!("`mean` must be finite, found {:?}", p.mean));
    }
    if p.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!("`std` must be positive, found {:?}", p.std));
    }
    if !(p.rescale_factor.is_finite() && p.rescale_factor > 0.0) {
        return Err(format!("`rescale_factor` must be positive, found {}", p.rescale_factor));
    }
    Ok(())
}


/// A manifest path must be relative and must not climb out of the bundle.
pub fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("an empty file path".into());
    }
    for component in p.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("path \"{path}\" points outside the bundle (only relative paths inside it are allowed)"))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/bundle.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn parse(v: &serde_json::Value) -> std::result::Result<Manifest, String> {
        Manifest::from_json(&v.to_string(), Path::new("bundle.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn tiny_manifest_parses_and_names_every_file() {
        let m = parse(&tiny()).unwrap();
        assert_eq!(
            m.files(),
            [
                "tokenizer.json",
                "vision_encoder.onnx",
                "projector.onnx",
                "audio_encoder.onnx",
                "audio_projector.onnx",
                "embed.onnx",
                "decoder.onnx",
                "output_projector.onnx",
                "generator_denoiser.onnx",
                "generator_decoder.onnx"
            ]
        );
        assert_eq!(m.decoder().kv_cache.past_names()[..2], ["past_key_values.0.key", "past_key_values.0.value"]);
        assert_eq!(m.decoder().kv_cache.present_names().len(), 2 * m.decoder().kv_cache.num_layers);
    }

    /// Index of the first stage of `kind` (tests edit stages by kind, not position).
    fn at(v: &serde_json::Value, kind: &str) -> usize {
        v["stages"].as_array().unwrap().iter().position(|s| s["kind"] == kind).unwrap()
    }

    #[test]
    fn invalid_manifests_say_what_is_wrong() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit, &str); 12] = [
            ("format", |v| v["format"] = "other".into(), "`format` must be"),
            ("version", |v| v["version"] = 2.into(), "version` 2 is not supported"),
            ("unknown field", |v| v["stages"][0]["foo"] = 1.into(), "unknown field `foo`"),
            ("unknown kind", |v| v["stages"][0]["kind"] = "teleporter".into(), "unknown variant `teleporter`"),
            ("missing tensor", |v| { v["stages"][1].as_object_mut().unwrap().remove("output"); }, "missing field `output`"),
            ("empty tensor", |v| v["stages"][1]["output"] = " ".into(), "`output` names no tensor"),
            ("parent path", |v| v["stages"][1]["graph"] = "../x.onnx".into(), "points outside the bundle"),
            ("absolute path", |v| v["tokenizer"] = "/etc/passwd".into(), "points outside the bundle"),
            ("no decoder", |v| { let i = at(v, "llm_decoder"); v["stages"].as_array_mut().unwrap().remove(i); }, "exactly one `llm_decoder`"),
            ("layer pattern", |v| { let i = at(v, "llm_decoder"); v["stages"][i]["kv_cache"]["past_key"] = "past.key".into() }, "must contain {layer}"),
            ("std", |v| v["stages"][0]["preprocess"]["std"][1] = 0.0.into(), "`std` must be positive"),
            ("top_p", |v| v["generation"]["top_p"] = 1.5.into(), "top-p must be in (0, 1]"),
        ];
        for (what, edit, needle) in cases {
            let mut v = tiny();
            edit(&mut v);
            let err = parse(&v).expect_err(what);
            assert!(err.contains(needle), "{what}: {err}");
            assert!(err.contains("bundle.json"), "{what}: names the file: {err}");
        }
    }

    #[test]
    fn decoder_takes_embeddings_or_ids_never_both() {
        // the text-only form: ids in, no embedding graph
        let mut v = tiny();
        let d = at(&v, "llm_decoder");
        v["stages"][d]["inputs"] = serde_json::json!({"input_ids": "input_ids", "attention_mask": "attention_mask"});
        v["stages"][d].as_object_mut().unwrap().remove("embedding");
        let m = parse(&v).unwrap();
        assert!(m.decoder().embedding.is_none());
        assert!(!m.files().contains(&"embed.onnx"));
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit, &str); 4] = [
            ("both", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["inputs"]["input_ids"] = "input_ids".into() }, "exactly one of"),
            ("neither", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["inputs"].as_object_mut().unwrap().remove("inputs_embeds"); }, "exactly one of"),
            ("embeds without graph", |v| { let d = at(v, "llm_decoder"); v["stages"][d].as_object_mut().unwrap().remove("embedding"); }, "needs an `embedding` graph"),
            (
                "ids with graph",
                |v| {
                    let d = at(v, "llm_decoder");
                    let inputs = v["stages"][d]["inputs"].as_object_mut().unwrap();
                    inputs.remove("inputs_embeds");
                    inputs.insert("input_ids".into(), "input_ids".into());
                },
                "only for a decoder taking",
            ),
        ];
        for (what, edit, needle) in cases {
            let mut v = tiny();
            edit(&mut v);
            let err = parse(&v).expect_err(what);
            assert!(err.contains(needle), "{what}: {err}");
        }
    }

    #[test]
    fn invalid_output_side_says_what_is_wrong() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit, &str); 7] = [
            ("scheduler kind", |v| { let g = at(v, "modality_generator"); v["stages"][g]["scheduler"]["kind"] = "pndm".into() }, "unknown variant `pndm`"),
            ("scheduler option", |v| { let g = at(v, "modality_generator"); v["stages"][g]["scheduler"]["eta"] = 0.5.into() }, "unknown field `eta`"),
            ("zero steps", |v| { let g = at(v, "modality_generator"); v["stages"][g]["steps"] = 0.into() }, "`steps` must be at least 1"),
            ("guidance", |v| { let g = at(v, "modality_generator"); v["stages"][g]["guidance_scale"] = (-1.0).into() }, "`guidance_scale` must be finite and >= 0"),
            ("latent shape", |v| { let g = at(v, "modality_generator"); v["stages"][g]["latent_shape"] = serde_json::json!([4, 0, 8]) }, "`latent_shape`"),
            ("no hidden states", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["outputs"].as_object_mut().unwrap().remove("hidden_states"); }, "outputs.hidden_states"),
            ("no generator", |v| { let g = at(v, "modality_generator"); v["stages"].as_array_mut().unwrap().remove(g); }, "has no modality_generator"),
        ];
        let tiny = tiny();
        for (what, edit, needle) in cases {
            let mut v = tiny.clone();
            edit(&mut v);
            let err = parse(&v).expect_err(what);
            assert!(err.contains(needle), "{what}: {err}");
        }
    }

    #[test]
    fn audio_video_and_output_stages_are_described() {
        // The tiny bundle has the audio input side; add an audio output side.
        let mut v = tiny();
        let stages = v["stages"].as_array_mut().unwrap();
        stages.push(serde_json::json!({"kind": "output_projector", "name": "audio_out", "modality": "audio",
            "graph": "op.onnx", "input": "hidden", "output": "cond", "signal_tokens": ["[AUD0]"]}));
        stages.push(serde_json::json!({"kind": "modality_generator", "name": "audio_gen", "modality": "audio",
            "denoiser": {"graph": "unet.onnx", "inputs": {"latents": "sample", "timestep": "t", "conditioning": "c"}, "output": "out"},
            "decoder": {"graph": "vocoder.onnx", "input": "z", "output": "wave"},
            "scheduler": {"kind": "euler_discrete", "beta_schedule": "scaled_linear"},
            "latent_shape": [8, 256], "steps": 20, "guidance_scale": 2.5,
            "output": {"type": "audio", "format": "wav", "sample_rate": 16000, "value_range": [-1.0, 1.0]}}));
        let m = parse(&v).unwrap();
        assert!(m.encoder(Modality::Audio).is_some() && m.projector(Modality::Audio).is_some());
        assert!(m.files().contains(&"vocoder.onnx"));
        assert!(m.generator(Modality::Audio).is_some() && m.output_projector(Modality::Audio).is_some());
        assert_eq!(m.prompt.placeholders[&Modality::Audio], "<audio>");
        // An encoder without its projector is rejected, and so is one without a placeholder.
        let mut no_placeholder = v.clone();
        no_placeholder["prompt"]["placeholders"].as_object_mut().unwrap().remove("audio");
        assert!(parse(&no_placeholder).unwrap_err().contains("needs a placeholder and a media token id for audio"));
        let i = v["stages"].as_array().unwrap().iter().position(|s| s["name"] == "audio_projector").unwrap();
        v["stages"].as_array_mut().unwrap().remove(i);
        assert!(parse(&v).unwrap_err().contains("has no input_projector"));
    }

    fn whisper_like() -> serde_json::Value {
        serde_json::json!({
            "format": "mmrt.bundle", "version": 1, "name": "w", "tokenizer": "tokenizer.json",
            "stages": [
                {"kind": "modality_encoder", "name": "audio_encoder", "modality": "audio", "graph": "encoder.onnx",
                 "input": "input_features", "output": "encoder_hidden_states",
                 "preprocess": {"type": "audio", "sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80, "chunk_seconds": 30.0}},
                {"kind": "seq2seq_decoder", "name": "text_decoder", "graph": "decoder.onnx",
                 "cross_kv": {"graph": "cross_kv.onnx", "input": "encoder_hidden_states", "key": "cross.{layer}.key", "value": "cross.{layer}.value"},
                 "input_ids": "input_ids", "logits": "logits",
                 "kv_cache": {"num_layers": 2, "past_key": "past.{layer}.key", "past_value": "past.{layer}.value",
                              "present_key": "present.{layer}.key", "present_value": "present.{layer}.value"},
                 "context_length": 448,
                 "decoder_prompt": {"start_token_id": 50258, "language_token_id": 50259, "task_token_id": 50359, "no_timestamps_token_id": 50363},
                 "suppress_tokens": [1, 2], "begin_suppress_tokens": [220, 50257]}
            ],
            "prompt": {"template": "{content}", "eos_token_ids": [50257]}
        })
    }

    #[test]
    fn seq2seq_manifests_parse_and_invalid_ones_say_what_is_wrong() {
        let m = parse(&whisper_like()).unwrap();
        let d = m.seq2seq_decoder().unwrap();
        assert!(m.llm_decoder().is_none());
        assert_eq!(d.decoder_prompt.ids(), [50258, 50259, 50359, 50363]);
        assert_eq!(d.cross_kv.names(2), ["cross.0.key", "cross.0.value", "cross.1.key", "cross.1.value"]);
        assert_eq!(m.files(), ["tokenizer.json", "encoder.onnx", "cross_kv.onnx", "decoder.onnx"]);
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit, &str); 6] = [
            ("no encoder", |v| { v["stages"].as_array_mut().unwrap().remove(0); }, "needs exactly one modality_encoder, for audio"),
            ("cross pattern", |v| v["stages"][1]["cross_kv"]["key"] = "cross.key".into(), "`cross_kv.key` must contain {layer}"),
            ("context", |v| v["stages"][1]["context_length"] = 4.into(), "leaves no room after the 4-token decoder prompt"),
            ("unknown prompt field", |v| v["stages"][1]["decoder_prompt"]["lang"] = 1.into(), "unknown field `lang`"),
            ("two decoders", |v| { let d = v["stages"][1].clone(); let mut d2 = d; d2["name"] = "x".into(); v["stages"].as_array_mut().unwrap().push(d2); }, "exactly one `llm_decoder` or `seq2seq_decoder`"),
            ("empty ids name", |v| v["stages"][1]["input_ids"] = "".into(), "`input_ids` names no tensor"),
        ];
        for (what, edit, needle) in cases {
            let mut v = whisper_like();
            edit(&mut v);
            let err = parse(&v).expect_err(what);
            assert!(err.contains(needle), "{what}: {err}");
        }
    }
}
