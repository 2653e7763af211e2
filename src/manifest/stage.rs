//! The `stages` list: each stage tagged by `kind`, its name, files and
//! modality, and the per-kind checks serde cannot express; the encoder and
//! input projector stages.

use serde::{Deserialize, Serialize};

use super::*;
use crate::limits;

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
    /// Text → speech (a Piper VITS voice): the generator of a voice bundle,
    /// conditioned on the text an LLM wrote.
    TextToSpeech(TextToSpeechStage),
    /// Noise -> sample by a consistency model in one or a few steps, conditioned
    /// on one integer (the terrain generator): a standalone generator bundle.
    ConsistencyGenerator(ConsistencyGeneratorStage),
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
            Stage::TextToSpeech(s) => &s.name,
            Stage::ConsistencyGenerator(s) => &s.name,
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
            Stage::TextToSpeech(_) => "text_to_speech",
            Stage::ConsistencyGenerator(_) => "consistency_generator",
        }
    }

    /// The modality of a modality stage (`None` for decoders).
    pub fn modality(&self) -> Option<Modality> {
        match self {
            Stage::ModalityEncoder(s) => Some(s.modality),
            Stage::InputProjector(s) => Some(s.modality),
            Stage::OutputProjector(s) => Some(s.modality),
            Stage::ModalityGenerator(s) => Some(s.modality),
            Stage::TextToSpeech(_) => Some(Modality::Audio),
            Stage::ConsistencyGenerator(_) => Some(Modality::Image),
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
                match (&s.embedding, &s.token_table) {
                    (_, Some(t)) => format!("inputs_embeds, token table {} ({} x {}, embedding and output layer)", t.file, t.vocab, t.width),
                    (Some(e), None) => format!("inputs_embeds, + {}", e.graph),
                    (None, None) => "token ids in, text only".into(),
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
            Stage::TextToSpeech(s) => {
                format!("text_to_speech    {:<16} audio {} (voice {}, espeak-ng data {})", s.name, s.graph, s.voice, s.espeak_data)
            }
            Stage::ConsistencyGenerator(s) => format!(
                "consistency_generator {:<12} image {}: samples {:?}, sigma {}..{} (rho {}), {} step(s), {} {}..={} (default {})",
                s.name,
                s.graph,
                s.sample_shape,
                s.sigma_min,
                s.sigma_max,
                s.rho,
                s.steps,
                s.condition.name,
                s.condition.min,
                s.condition.max,
                s.condition.default
            ),
        }
    }

    /// Whether the stage belongs to the output side (output projector, generator).
    pub fn is_output_side(&self) -> bool {
        matches!(self, Stage::OutputProjector(_) | Stage::ModalityGenerator(_) | Stage::TextToSpeech(_) | Stage::ConsistencyGenerator(_))
    }

    /// Whether the stage is a standalone generator: the only stage of its bundle,
    /// with no tokenizer, prompt or decoder (a voice, a consistency generator).
    pub fn is_standalone(&self) -> bool {
        matches!(self, Stage::TextToSpeech(_) | Stage::ConsistencyGenerator(_))
    }

    /// Every bundle file the stage references.
    pub fn files(&self) -> Vec<&str> {
        match self {
            Stage::ModalityEncoder(s) => vec![s.graph.as_str()],
            Stage::InputProjector(s) => vec![s.graph.as_str()],
            Stage::LlmDecoder(s) => {
                s.embedding.iter().map(|e| e.graph.as_str()).chain([s.graph.as_str()]).chain(s.token_table.iter().map(|t| t.file.as_str())).collect()
            }
            Stage::Seq2seqDecoder(s) => vec![s.cross_kv.graph.as_str(), s.graph.as_str()],
            Stage::OutputProjector(s) => vec![s.graph.as_str()],
            Stage::ModalityGenerator(s) => vec![s.denoiser.graph.as_str(), s.decoder.graph.as_str()],
            Stage::TextToSpeech(s) => vec![s.graph.as_str(), s.voice.as_str()],
            Stage::ConsistencyGenerator(s) => vec![s.graph.as_str()],
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
    /// How a video's frames become one item's rows (video projectors only; `concat` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<Temporal>,
}

/// The temporal stage of a video projector: how per-frame encoder features become
/// the rows of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Temporal {
    /// The projector runs on every frame (as for images); the frames' rows follow each other.
    Concat,
    /// The projector runs on every frame; the frames' rows are averaged (one frame's worth of rows).
    Mean,
    /// The graph sees the whole clip: `input` is `[1, frames, tokens, d_enc]`, the
    /// input named here `[1, frames]` holds each frame's time in seconds (f32),
    /// and `output` is `[1, rows, d_llm]` (a temporal transformer, a resampler).
    Graph {
        /// Graph input name for the frame times.
        timestamps: String,
    },
}

pub(super) fn validate_stage(stage: &Stage) -> std::result::Result<(), String> {
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
                (Preprocess::Video(VideoPreprocess { fps: Some(fps), .. }), Modality::Video) if !(fps.is_finite() && *fps > 0.0 && *fps <= limits::MAX_VIDEO_SAMPLE_FPS) => {
                    Err(format!(
                        "stage \"{name}\": `fps` must be in (0, {}] (limits::MAX_VIDEO_SAMPLE_FPS), found {fps}",
                        limits::MAX_VIDEO_SAMPLE_FPS
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
            nonempty("output", &p.output)?;
            match (&p.temporal, p.modality) {
                (Some(_), m) if m != Modality::Video => Err(format!("stage \"{name}\": `temporal` is for video projectors, this one projects {m}")),
                (Some(Temporal::Graph { timestamps }), _) => nonempty("temporal.timestamps", timestamps),
                _ => Ok(()),
            }
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
                (Some(embeds), None, None) if d.token_table.is_some() => nonempty("inputs.inputs_embeds", embeds)?,
                (_, _, _) if d.token_table.is_some() => {
                    return Err(format!("stage \"{name}\": a decoder with a `token_table` takes `inputs.inputs_embeds` and has no `embedding` graph (the table embeds)"))
                }
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
            match (&d.outputs.logits, &d.token_table, &d.outputs.hidden_states) {
                (Some(logits), None, _) => nonempty("outputs.logits", logits)?,
                (None, Some(table), Some(hidden)) => {
                    nonempty("outputs.hidden_states", hidden)?;
                    nonempty("token_table.file", &table.file)?;
                }
                (None, Some(_), None) => {
                    return Err(format!("stage \"{name}\": a `token_table` computes the logits from `outputs.hidden_states`, which is missing"))
                }
                (Some(_), Some(_), _) => {
                    return Err(format!("stage \"{name}\": name `outputs.logits` or a `token_table`, not both (the table computes the logits)"))
                }
                (None, None, _) => return Err(format!("stage \"{name}\": `outputs.logits` is missing")),
            }
            validate_kv_names(name, &d.kv_cache)?;
            if d.context_length == 0 {
                return Err(format!("stage \"{name}\": `context_length` must be positive"));
            }
            check_context_length(name, d.context_length)
        }
        Stage::TextToSpeech(t) => validate_text_to_speech(t),
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
        Stage::ConsistencyGenerator(c) => validate_consistency_generator(c).map_err(|m| format!("stage \"{name}\": {m}")),
    }
}
