//! The output side's stages: the output projector (signal tokens) and the
//! modality generator (denoiser, latent decoder, scheduler, media output),
//! with their checks.

use serde::{Deserialize, Serialize};

use super::*;
use crate::limits;

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

/// `text_to_speech`: text -> phonemes (espeak-ng) -> ids -> a Piper VITS graph -> waveform.
///
/// The graph takes Piper's inputs (`input` int64 `[1, ids]`, `input_lengths`
/// int64 `[1]`, `scales` f32 `[3]` = noise, length, noise_w, and `sid` int64
/// `[1]` for multi-speaker voices) and gives `[1, 1, samples]` audio at the
/// voice's rate; `voice` is the voice's own config file as Piper writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextToSpeechStage {
    /// Stage name.
    pub name: String,
    /// The VITS graph, bundle-relative.
    pub graph: String,
    /// The Piper voice config (`<voice>.onnx.json`): phoneme ids, espeak voice, rate, scales.
    pub voice: String,
    /// espeak-ng data folder (named `espeak-ng-data`), bundle-relative.
    pub espeak_data: String,
}

pub(super) fn validate_text_to_speech(t: &TextToSpeechStage) -> std::result::Result<(), String> {
    check_relative_path(&t.espeak_data)?;
    if Path::new(&t.espeak_data).file_name().is_none_or(|n| n != "espeak-ng-data") {
        return Err(format!("stage \"{}\": `espeak_data` must name a folder called espeak-ng-data, found \"{}\"", t.name, t.espeak_data));
    }
    Ok(())
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

/// What a generator writes, tagged by `kind` (format v1's `type` is read too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
pub enum MediaOutput {
    /// An image file.
    Image(ImageOutput),
    /// An audio file.
    Audio(AudioOutput),
}

super::kind_tagged!(MediaOutput);

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

pub(super) fn validate_generator(g: &GeneratorStage) -> std::result::Result<(), String> {
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
