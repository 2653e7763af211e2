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
    pub generation: GenerationDefaults,
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
            Stage::OutputProjector(s) => &s.name,
            Stage::ModalityGenerator(s) => &s.name,
        }
    }

    /// Every bundle file the stage references.
    pub fn files(&self) -> Vec<&str> {
        match self {
            Stage::ModalityEncoder(s) => vec![s.graph.as_str()],
            Stage::InputProjector(s) => vec![s.graph.as_str()],
            Stage::LlmDecoder(s) => vec![s.embedding.graph.as_str(), s.graph.as_str()],
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
    /// Token ids -> embeddings graph.
    pub embedding: EmbeddingGraph,
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

/// Decoder inputs besides the KV cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderInputs {
    /// `[batch, seq, d_llm]` embeddings.
    pub inputs_embeds: String,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorStage {
    /// Stage name.
    pub name: String,
    /// What it produces.
    pub modality: Modality,
    /// Denoiser graph: latents, timestep, conditioning -> prediction.
    pub denoiser: GraphIo,
    /// Decoder graph (VAE / vocoder): latents -> media.
    pub decoder: GraphIo,
    /// Scheduler kind and configuration, as free-form JSON (read by the generator).
    #[serde(default)]
    pub scheduler: serde_json::Value,
}

/// A graph with named inputs and outputs (role -> tensor name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphIo {
    /// ONNX graph, bundle-relative.
    pub graph: String,
    /// Role -> input tensor name.
    pub inputs: BTreeMap<String, String>,
    /// Role -> output tensor name.
    pub outputs: BTreeMap<String, String>,
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
}

/// Generation defaults (see `generate::SamplingConfig` for meanings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationDefaults {
    /// New tokens at most.
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 1.0 disables the penalty.
    pub repetition_penalty: f32,
}

impl Default for GenerationDefaults {
    /// Greedy decoding of up to 128 tokens: the deterministic choice, matching
    /// `transformers`' `generate()` defaults except for the token budget.
    fn default() -> Self {
        Self { max_new_tokens: 128, temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 }
    }
}

impl GenerationDefaults {
    /// These defaults as sampler settings with the given seed.
    pub fn sampling(&self, seed: u64) -> crate::generate::SamplingConfig {
        crate::generate::SamplingConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed,
        }
    }
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
        let decoders = self.stages.iter().filter(|s| matches!(s, Stage::LlmDecoder(_))).count();
        if decoders != 1 {
            return Err(format!("exactly one `llm_decoder` stage is required, found {decoders}"));
        }
        let mut names = std::collections::BTreeSet::new();
        for stage in &self.stages {
            if !names.insert(stage.name()) {
                return Err(format!("stage name \"{}\" is used twice", stage.name()));
            }
            validate_stage(stage)?;
        }
        for stage in &self.stages {
            if let Stage::InputProjector(p) = stage {
                if self.encoder(p.modality).is_none() {
                    return Err(format!("input_projector \"{}\" has no modality_encoder for {}", p.name, p.modality));
                }
            }
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
        if !self.prompt.template.contains("{content}") {
            return Err("`prompt.template` must contain {content}".into());
        }
        if self.prompt.chat_template.as_ref().is_some_and(|t| !t.contains("{content}")) {
            return Err("`prompt.chat_template` must contain {content}".into());
        }
        self.generation.sampling(0).validate().map_err(|e| format!("`generation`: {e}"))
    }

    /// Every file the manifest references (tokenizer and graphs).
    pub fn files(&self) -> Vec<&str> {
        std::iter::once(self.tokenizer.as_str()).chain(self.stages.iter().flat_map(|s| s.files())).collect()
    }

    /// The (single) decoder stage. Validation guarantees it exists.
    pub fn decoder(&self) -> &DecoderStage {
        self.stages
            .iter()
            .find_map(|s| match s {
                Stage::LlmDecoder(d) => Some(d),
                _ => None,
            })
            .expect("validated manifest has a decoder")
    }

    /// Encoder stages keyed by modality.
    pub fn encoders(&self) -> impl Iterator<Item = (Modality, &EncoderStage)> {
        self.stages.iter().filter_map(|s| match s {
            Stage::ModalityEncoder(e) => Some((e.modality, e)),
            _ => None,
        })
    }

    /// The encoder for a modality, if the bundle has one.
    pub fn encoder(&self, modality: Modality) -> Option<&EncoderStage> {
        self.encoders().find(|(m, _)| *m == modality).map(|(_, e)| e)
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
                (Preprocess::Image(p), Modality::Image) | (Preprocess::Video(VideoPreprocess { image: p, .. }), Modality::Video) => {
                    validate_image_preprocess(p).map_err(|m| format!("stage \"{name}\": {m}"))
                }
                (Preprocess::Audio(_), Modality::Audio) => Ok(()),
                (_, m) => Err(format!("stage \"{name}\": preprocessing does not match modality {m}")),
            }
        }
        Stage::InputProjector(p) => {
            nonempty("input", &p.input)?;
            nonempty("output", &p.output)
        }
        Stage::LlmDecoder(d) => {
            nonempty("embedding.input", &d.embedding.input)?;
            nonempty("embedding.output", &d.embedding.output)?;
            nonempty("inputs.inputs_embeds", &d.inputs.inputs_embeds)?;
            nonempty("outputs.logits", &d.outputs.logits)?;
            if d.kv_cache.num_layers == 0 {
                return Err(format!("stage \"{name}\": `kv_cache.num_layers` must be at least 1"));
            }
            for (field, pattern) in [
                ("past_key", &d.kv_cache.past_key),
                ("past_value", &d.kv_cache.past_value),
                ("present_key", &d.kv_cache.present_key),
                ("present_value", &d.kv_cache.present_value),
            ] {
                if !pattern.contains("{layer}") {
                    return Err(format!("stage \"{name}\": `kv_cache.{field}` must contain {{layer}}, found \"{pattern}\""));
                }
            }
            if d.context_length == 0 {
                return Err(format!("stage \"{name}\": `context_length` must be positive"));
            }
            Ok(())
        }
        Stage::OutputProjector(o) => {
            nonempty("input", &o.input)?;
            nonempty("output", &o.output)?;
            if o.signal_tokens.is_empty() {
                return Err(format!("stage \"{name}\": `signal_tokens` is empty"));
            }
            Ok(())
        }
        Stage::ModalityGenerator(_) => Ok(()),
    }
}

fn validate_image_preprocess(p: &ImagePreprocess) -> std::result::Result<(), String> {
    match (&p.resize.shortest_edge, &p.resize.exact) {
        (Some(0), _) => return Err("`resize.shortest_edge` must be positive".into()),
        (Some(_), Some(_)) => return Err("`resize` takes either `shortest_edge` or `exact`, not both".into()),
        (None, None) => return Err("`resize` needs `shortest_edge` or `exact`".into()),
        _ => {}
    }
    for size in p.resize.exact.iter().chain(p.crop.iter()) {
        if size.width == 0 || size.height == 0 {
            return Err(format!("sizes must be positive, found {}x{}", size.width, size.height));
        }
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
        assert_eq!(m.files(), ["tokenizer.json", "vision_encoder.onnx", "projector.onnx", "embed.onnx", "decoder.onnx"]);
        assert_eq!(m.decoder().kv_cache.past_names()[..2], ["past_key_values.0.key", "past_key_values.0.value"]);
        assert_eq!(m.decoder().kv_cache.present_names().len(), 2 * m.decoder().kv_cache.num_layers);
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
            ("no decoder", |v| { v["stages"].as_array_mut().unwrap().remove(2); }, "exactly one `llm_decoder`"),
            ("layer pattern", |v| v["stages"][2]["kv_cache"]["past_key"] = "past.key".into(), "must contain {layer}"),
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
    fn audio_video_and_output_stages_are_described() {
        let mut v = tiny();
        let stages = v["stages"].as_array_mut().unwrap();
        stages.push(serde_json::json!({"kind": "modality_encoder", "name": "audio_encoder", "modality": "audio",
            "graph": "a.onnx", "input": "input_features", "output": "audio_features",
            "preprocess": {"type": "audio", "sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80, "chunk_seconds": 30.0}}));
        stages.push(serde_json::json!({"kind": "input_projector", "name": "audio_projector", "modality": "audio",
            "graph": "ap.onnx", "input": "audio_features", "output": "audio_embeds"}));
        stages.push(serde_json::json!({"kind": "output_projector", "name": "image_out", "modality": "image",
            "graph": "op.onnx", "input": "hidden", "output": "cond", "signal_tokens": ["[IMG0]"]}));
        stages.push(serde_json::json!({"kind": "modality_generator", "name": "image_gen", "modality": "image",
            "denoiser": {"graph": "unet.onnx", "inputs": {"latents": "sample"}, "outputs": {"noise": "out"}},
            "decoder": {"graph": "vae.onnx", "inputs": {"latents": "z"}, "outputs": {"image": "rgb"}},
            "scheduler": {"kind": "ddim", "steps": 20}}));
        v["prompt"]["placeholders"]["audio"] = "<audio>".into();
        v["prompt"]["media_token_ids"]["audio"] = 4.into();
        let m = parse(&v).unwrap();
        assert!(m.encoder(Modality::Audio).is_some() && m.projector(Modality::Audio).is_some());
        assert!(m.files().contains(&"vae.onnx"));
        // An encoder without its projector is rejected.
        v["stages"].as_array_mut().unwrap().remove(4);
        assert!(parse(&v).unwrap_err().contains("has no input_projector"));
    }
}
