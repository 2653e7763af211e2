//! The golden files as typed data: one struct per file, holding the fields
//! the tests read (others are ignored), named as the exporters write them.
//! A golden that does not parse panics with its path and serde's message.
//!
//! * `tests/golden/tiny.json`: `exporters/tiny/goldens.py` ([`Tiny`]);
//! * `tests/golden/tiny_audio.json`: `exporters/tiny/audio.py` ([`TinyAudio`]);
//! * `tests/golden/any_to_any.json`: `exporters/tiny/llava.py` and
//!   `exporters/tiny/diffusion_goldens.py` ([`AnyToAny`]);
//! * `tests/golden/chat_templates.json`: `exporters/gguf/chat_goldens.py` ([`ChatTemplates`]);
//! * `tests/golden/log_mel.json`: `exporters/whisper/mel_golden.py` ([`LogMel`]);
//! * `tests/golden/gemma3.json`: `exporters/gemma3/bundle.py`, and `tests/golden/<bundle>.json`
//!   (e.g. `smollm2-135m.json`): `python -m exporters.gguf --goldens` ([`LlmGreedy`]);
//! * `models/vlm-shapes-f32/goldens.json`: `exporters/vlm_shapes/bundle.py` ([`VlmShapes`]);
//! * `models/whisper-base/testset/references.json`: `exporters/whisper/speech_set.py`
//!   ([`WhisperReference`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmrt::diffusion::SchedulerConfig;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Read and parse a JSON file into `T`; panics naming the file and serde's message.
#[track_caller]
pub fn load<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("golden {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden {}: {e}", path.display()))
}

/// `tests/golden/<name>`, parsed.
#[track_caller]
pub fn golden<T: DeserializeOwned>(name: &str) -> T {
    load(&super::root().join("tests/golden").join(name))
}

/// `tests/golden/chat_templates.json`: conversations rendered by transformers'
/// `apply_chat_template`, per chat template.
#[derive(Debug, Deserialize)]
pub struct ChatTemplates {
    /// The transformers version that rendered them.
    pub transformers: String,
    pub models: Vec<ChatTemplateGolden>,
}

/// One template (a GGUF's `tokenizer.chat_template`, or one written by the script) and its cases.
#[derive(Debug, Deserialize)]
pub struct ChatTemplateGolden {
    pub source: String,
    pub template: String,
    /// What transformers passes as `bos_token` (`None`: its tokenizer has none).
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// The BOS string the GGUF metadata names.
    pub gguf_bos_token: String,
    pub cases: Vec<ChatCase>,
}

/// One conversation and transformers' rendering of it.
#[derive(Debug, Deserialize)]
pub struct ChatCase {
    pub name: String,
    pub messages: Vec<ChatMessage>,
    pub add_generation_prompt: bool,
    pub expected: String,
}

/// A message of a [`ChatCase`].
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// `tests/golden/chat_templates.json`.
pub fn chat_templates() -> ChatTemplates {
    golden("chat_templates.json")
}

/// `tests/golden/tiny.json`.
pub fn tiny() -> Tiny {
    golden("tiny.json")
}

/// `tests/golden/tiny_audio.json`.
pub fn tiny_audio() -> TinyAudio {
    golden("tiny_audio.json")
}

/// `tests/golden/any_to_any.json`.
pub fn any_to_any() -> AnyToAny {
    golden("any_to_any.json")
}

/// `tests/golden/log_mel.json`.
pub fn log_mel() -> LogMel {
    golden("log_mel.json")
}

/// `tests/golden/<name>.json` of a GGUF-imported LLM (`gemma3`, `smollm2-135m`, …).
pub fn llm(name: &str) -> LlmGreedy {
    golden(&format!("{name}.json"))
}

/// Repository-relative paths, made absolute.
pub fn paths(relative: &[String]) -> Vec<PathBuf> {
    relative.iter().map(|p| super::root().join(p)).collect()
}

// ---------------------------------------------------------------- tiny.json

/// PyTorch / PIL on the tiny bundle.
#[derive(Debug, Deserialize)]
pub struct Tiny {
    /// PIL preprocessing per image.
    pub preprocess: Vec<PreprocessCase>,
    /// Projected image embeddings per image.
    pub embeddings: Vec<EmbeddingCase>,
    /// Greedy `generate()` requests.
    pub generate: Vec<GenerateCase>,
}

impl Tiny {
    /// The generation request called `name`.
    #[track_caller]
    pub fn case(&self, name: &str) -> &GenerateCase {
        self.generate.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no generate case {name:?} in tiny.json"))
    }
}

#[derive(Debug, Deserialize)]
pub struct PreprocessCase {
    /// Repository-relative image path.
    pub image: String,
    /// `pixel_values` shape, `[1, 3, h, w]`.
    pub shape: Vec<usize>,
    pub pixel_values: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingCase {
    /// Repository-relative image path.
    pub image: String,
    /// `[tokens, d_llm]`.
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// One greedy request and PyTorch's answer (`exporters/tiny/goldens.py::generate_golden`).
#[derive(Debug, Deserialize)]
pub struct GenerateCase {
    pub name: String,
    pub prompt: String,
    /// Repository-relative image paths.
    pub images: Vec<String>,
    /// Repository-relative audio paths (`tiny_audio.json` only).
    #[serde(default)]
    pub audio: Vec<String>,
    pub max_new_tokens: usize,
    pub input_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
    pub text: String,
}

// ---------------------------------------------------------------- tiny_audio.json

/// transformers / PyTorch on the tiny bundle's audio branch.
#[derive(Debug, Deserialize)]
pub struct TinyAudio {
    pub audio: Vec<AudioCase>,
    /// Greedy requests with audio (and images) spliced in.
    pub generate: Vec<GenerateCase>,
}

#[derive(Debug, Deserialize)]
pub struct AudioCase {
    /// Repository-relative WAV path.
    pub file: String,
    /// `[windows, n_mels, frames]`.
    pub mel_shape: Vec<usize>,
    pub mel: Vec<f32>,
    /// `[windows * tokens, d_llm]`.
    pub embeds_shape: Vec<usize>,
    pub embeds: Vec<f32>,
}

// ---------------------------------------------------------------- any_to_any.json

/// The output side: signal tokens, the output projector, the diffusers schedulers and pipeline.
#[derive(Debug, Deserialize)]
pub struct AnyToAny {
    pub signal: Signal,
    /// `alphas_cumprod` per beta schedule (`linear`, `scaled_linear`, `squaredcos_cap_v2`).
    pub alphas_cumprod: BTreeMap<String, Vec<f32>>,
    /// `set_timesteps` results over kinds, spacings, beta schedules and step counts.
    pub schedules: Vec<ScheduleCase>,
    /// Full denoising runs by name (`ddim`, `ddim_cfg`, `euler`, `euler_cfg`).
    pub denoise: BTreeMap<String, DenoiseCase>,
    pub end_to_end: EndToEnd,
}

impl AnyToAny {
    /// The signal request that emits the signal tokens (`true`) or the one that does not.
    #[track_caller]
    pub fn request(&self, emits_signal: bool) -> &SignalRequest {
        self.signal.requests.iter().find(|r| r.emits_signal == emits_signal).expect("request")
    }

    /// The denoising run called `name`.
    #[track_caller]
    pub fn denoise_case(&self, name: &str) -> &DenoiseCase {
        self.denoise.get(name).unwrap_or_else(|| panic!("no denoise case {name:?} in any_to_any.json"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Signal {
    /// Ids of the signal tokens `[IMG0]`...
    pub ids: Vec<u32>,
    pub requests: Vec<SignalRequest>,
}

/// A greedy request through the signal-token path, with PyTorch's hidden states
/// at the signal tokens and the output projector's conditioning.
#[derive(Debug, Deserialize)]
pub struct SignalRequest {
    pub name: String,
    pub prompt: String,
    pub max_new_tokens: usize,
    pub input_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
    pub text: String,
    pub emits_signal: bool,
    pub hidden: Vec<f32>,
    pub conditioning_shape: Vec<usize>,
    pub conditioning: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct ScheduleCase {
    pub scheduler: SchedulerConfig,
    pub steps: usize,
    pub timesteps: Vec<f32>,
    /// Euler only.
    pub sigmas: Option<Vec<f32>>,
    /// Euler only.
    pub init_noise_sigma: Option<f32>,
}

#[derive(Debug, Deserialize)]
pub struct DenoiseCase {
    pub scheduler: SchedulerConfig,
    pub steps: usize,
    pub guidance_scale: f64,
    /// The initial latents, flat.
    pub noise: Vec<f32>,
    pub init_noise_sigma: f32,
    /// Every `scheduler.step` call, in order.
    pub steps_log: Vec<StepRecord>,
    /// The final latents, flat.
    pub latents: Vec<f32>,
    /// `[height, width, channels]`.
    pub image_shape: Vec<usize>,
    pub pixels: Vec<u8>,
}

/// One recorded `scheduler.step(model_output, timestep, sample)`.
#[derive(Debug, Deserialize)]
pub struct StepRecord {
    pub timestep: f32,
    pub sample: Vec<f32>,
    pub model_output: Vec<f32>,
    pub prev_sample: Vec<f32>,
}

/// Which request and which denoising run the end-to-end image comes from.
#[derive(Debug, Deserialize)]
pub struct EndToEnd {
    pub request: String,
    pub denoise: String,
}

// ---------------------------------------------------------------- log_mel.json

/// WhisperFeatureExtractor's log-mel of one WAV (values in `.f32` files beside it).
#[derive(Debug, Deserialize)]
pub struct LogMel {
    /// File name under `tests/fixtures/audio`.
    pub wav: String,
    pub samples: usize,
    pub goldens: Vec<LogMelEntry>,
}

#[derive(Debug, Deserialize)]
pub struct LogMelEntry {
    /// Little-endian f32 file under `tests/golden`, `[n_mels, frames_stored]`.
    pub file: String,
    pub n_mels: usize,
    pub frames_total: usize,
    pub frames_stored: usize,
    /// The value of every frame past `frames_stored`.
    pub padding_value: f32,
}

// ---------------------------------------------------------------- gemma3.json, <gguf bundle>.json

/// transformers' greedy `generate()` on a GGUF-imported LLM.
#[derive(Debug, Deserialize)]
pub struct LlmGreedy {
    pub max_new_tokens: usize,
    pub cases: Vec<LlmCase>,
}

#[derive(Debug, Deserialize)]
pub struct LlmCase {
    pub name: String,
    pub prompt: String,
    /// Whether the prompt goes through the chat template.
    pub chat: bool,
    pub prompt_ids: Vec<u32>,
    pub expected_ids: Vec<u32>,
}

// ---------------------------------------------------------------- vlm-shapes goldens.json

/// The PyTorch vlm-shapes pipeline on validation images (`models/vlm-shapes-f32/goldens.json`).
#[derive(Debug, Deserialize)]
pub struct VlmShapes {
    pub max_new_tokens: usize,
    pub default_prompt: String,
    pub cases: Vec<VlmShapesCase>,
}

impl VlmShapes {
    /// `goldens.json` of the float32 bundle in `dir`.
    #[track_caller]
    pub fn of(dir: &Path) -> VlmShapes {
        load(&dir.join("goldens.json"))
    }
}

#[derive(Debug, Deserialize)]
pub struct VlmShapesCase {
    /// Image path relative to the bundle.
    pub image: String,
    /// `None` (JSON `null`): the bundle's default prompt.
    pub prompt: Option<String>,
    pub prompt_ids: Vec<u32>,
    pub expected_ids: Vec<u32>,
    pub expected_text: String,
    /// The generator's truth: shape word (singular).
    pub shape: String,
    pub colour: String,
    pub caption: String,
}

// ---------------------------------------------------------------- whisper references.json

/// One utterance of the Whisper test set with PyTorch's transcripts
/// (`models/whisper-base/testset/references.json`).
#[derive(Debug, Deserialize)]
pub struct WhisperReference {
    /// WAV file name under `testset/`.
    pub file: String,
    /// The sentence espeak-ng spoke.
    pub sentence: String,
    pub pytorch_text: String,
    pub pytorch_ids: Vec<u32>,
    /// Beam width of the beam references, when present.
    pub beam_size: Option<usize>,
    pub pytorch_beam_text: Option<String>,
    pub pytorch_beam_ids: Option<Vec<u32>>,
}

impl WhisperReference {
    /// `testset/references.json` of the bundle in `dir`.
    #[track_caller]
    pub fn of(dir: &Path) -> Vec<WhisperReference> {
        load(&dir.join("testset/references.json"))
    }

    /// PyTorch's text and ids with `beams` beams (1: greedy).
    #[track_caller]
    pub fn expected(&self, beams: usize) -> (&str, &[u32]) {
        if beams > 1 {
            let text = self.pytorch_beam_text.as_deref().expect("references.json has beam references");
            let ids = self.pytorch_beam_ids.as_deref().expect("references.json has beam references");
            (text, ids)
        } else {
            (&self.pytorch_text, &self.pytorch_ids)
        }
    }
}
