//! onnxruntime-genai folders: `genai_config.json` (its model builder's
//! output) + `tokenizer.json` + the decoder graph it names.
//!
//! Read from `model.decoder`: `filename`, the `inputs`/`outputs` names (KV
//! names with `%d` for the layer), `num_hidden_layers`, `num_key_value_heads`,
//! `num_attention_heads`, `head_size`; from `model`: `type`, `context_length`,
//! `vocab_size`, `eos_token_id`, `bos_token_id`, `pad_token_id`; from `search`:
//! `past_present_share_buffer` (the KV cache is one preallocated buffer per
//! tensor, bound as past and present) and the sampling defaults
//! ([`super::generation`]). Fields mmrt has no use for are ignored;
//! sessions mmrt cannot run yet (`vision`, `speech`, `embedding`, a decoder
//! `pipeline`) are errors naming what was found.

use serde::Deserialize;

use super::folder::Folder;
use super::graph::{self, ConfigFacts, DecoderNames};
use super::tokens::{self, Ids, SpecialIds};
use super::{Inferred, Layout};
use crate::error::Result;

/// The config file of the layout.
pub const CONFIG: &str = "genai_config.json";

/// onnxruntime-genai model types mmrt runs as a text decoder (its builder's
/// decoder-only families).
const TEXT_TYPES: &[&str] = &[
    "chatglm", "ernie4_5", "gemma", "gemma2", "gemma3_text", "gpt_oss", "granite", "llama", "mistral", "nemotron", "olmo",
    "phi", "phi3", "phi3small", "phimoe", "qwen2", "qwen3", "smollm3",
];

#[derive(Debug, Deserialize)]
struct GenaiConfig {
    model: Model,
    #[serde(default)]
    search: Search,
}

#[derive(Debug, Deserialize)]
struct Model {
    #[serde(rename = "type")]
    model_type: String,
    #[serde(default)]
    bos_token_id: Option<i64>,
    eos_token_id: Ids,
    #[serde(default)]
    pad_token_id: Option<Ids>,
    context_length: usize,
    #[serde(default)]
    vocab_size: Option<usize>,
    decoder: Decoder,
    #[serde(default)]
    vision: Option<Session>,
    #[serde(default)]
    speech: Option<Session>,
    #[serde(default)]
    embedding: Option<Session>,
    #[serde(default)]
    encoder: Option<Session>,
}

#[derive(Debug, Deserialize)]
struct Session {
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Decoder {
    #[serde(default)]
    filename: Option<String>,
    head_size: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    num_hidden_layers: usize,
    inputs: DecoderInputs,
    outputs: DecoderOutputs,
    #[serde(default)]
    pipeline: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct DecoderInputs {
    #[serde(default = "input_ids")]
    input_ids: String,
    #[serde(default)]
    attention_mask: Option<String>,
    #[serde(default)]
    position_ids: Option<String>,
    past_key_names: Option<String>,
    past_value_names: Option<String>,
}

fn input_ids() -> String {
    "input_ids".into()
}

#[derive(Debug, Deserialize)]
struct DecoderOutputs {
    logits: String,
    present_key_names: Option<String>,
    present_value_names: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(default)]
    past_present_share_buffer: bool,
    #[serde(flatten)]
    sampling: super::generation::SamplingConfig,
}

/// Infer the manifest of the onnxruntime-genai folder `folder`.
pub fn infer(folder: &Folder) -> Result<Inferred> {
    let config: GenaiConfig = folder.read_json(CONFIG)?;
    let fail = |message: String| folder.error(Some(CONFIG), message);
    let m = &config.model;
    let sessions: Vec<String> = [("vision", &m.vision), ("speech", &m.speech), ("embedding", &m.embedding), ("encoder", &m.encoder)]
        .iter()
        .filter_map(|(what, s)| s.as_ref().map(|s| format!("model.{what} ({})", s.filename.as_deref().unwrap_or("no filename"))))
        .collect();
    if !sessions.is_empty() {
        return Err(fail(format!(
            "not supported yet: found {} besides the decoder (model type \"{}\"); mmrt infers text decoders only — describe the other stages in a bundle.json",
            sessions.join(", "),
            m.model_type
        )));
    }
    if m.decoder.pipeline.is_some() {
        return Err(fail("not supported yet: model.decoder.pipeline (a decoder split over several graphs)".into()));
    }
    if !TEXT_TYPES.contains(&m.model_type.as_str()) {
        return Err(fail(format!("unknown model type \"{}\" (model.type); mmrt infers these decoder-only types: {}", m.model_type, TEXT_TYPES.join(", "))));
    }
    let d = &m.decoder;
    let file = d.filename.as_deref().ok_or_else(|| fail("model.decoder.filename is missing".into()))?;
    let path = folder.resolve(file, "genai_config.json model.decoder.filename")?;
    let facts = ConfigFacts {
        layers: d.num_hidden_layers,
        kv_heads: Some(d.num_key_value_heads),
        attention_heads: Some(d.num_attention_heads),
        head_dim: Some(d.head_size),
        vocab_size: m.vocab_size,
        context_length: m.context_length,
    };
    facts.check(CONFIG).map_err(fail)?;
    let pattern = |field: &str, name: &Option<String>| -> std::result::Result<String, String> {
        let name = name.as_deref().ok_or_else(|| format!("model.decoder.{field} is missing"))?;
        if name.matches("%d").count() != 1 {
            return Err(format!("model.decoder.{field} \"{name}\" must contain %d (the layer index) once"));
        }
        Ok(name.replace("%d", "{layer}"))
    };
    let names = DecoderNames {
        input_ids: d.inputs.input_ids.clone(),
        attention_mask: d.inputs.attention_mask.clone(),
        position_ids: d.inputs.position_ids.clone(),
        logits: d.outputs.logits.clone(),
        past_key: pattern("inputs.past_key_names", &d.inputs.past_key_names).map_err(fail)?,
        past_value: pattern("inputs.past_value_names", &d.inputs.past_value_names).map_err(fail)?,
        present_key: pattern("outputs.present_key_names", &d.outputs.present_key_names).map_err(fail)?,
        present_value: pattern("outputs.present_value_names", &d.outputs.present_value_names).map_err(fail)?,
    };
    let io = crate::onnx_proto::graph_io(&path)?;
    let shared = config.search.past_present_share_buffer;
    let (stage, found) = graph::decoder_stage(file, &io, &names, &facts, shared, CONFIG).map_err(fail)?;

    let mut notes = vec![format!(
        "decoder {file}: {} layers, {} KV heads of size {}, {} KV cache{}, {} logits, context {}",
        facts.layers,
        found.kv_heads,
        d.head_size,
        found.kv_type,
        if shared { " (one preallocated buffer per tensor: search.past_present_share_buffer)" } else { "" },
        found.logits_type,
        facts.context_length
    )];
    let tokenizer = folder.resolve("tokenizer.json", "an onnxruntime-genai folder")?;
    let ids = SpecialIds {
        eos: m.eos_token_id.to_vec(),
        pad: m.pad_token_id.as_ref().and_then(|p| p.to_vec().first().copied()),
        bos: m.bos_token_id,
    };
    let mut prompt = tokens::prompt_format(&tokenizer, &ids, CONFIG, &mut notes).map_err(fail)?;
    prompt.chat = tokens::chat_template(folder, &mut notes);
    let generation = super::generation::defaults(&config.search.sampling, "genai_config.json search", &mut notes).map_err(fail)?;
    let manifest = super::decoder_manifest(folder, format!("onnxruntime-genai {} model ({file}), manifest inferred from genai_config.json", m.model_type), stage, prompt, generation);
    Ok(Inferred { root: folder.root().to_path_buf(), layout: Layout::Genai, source: CONFIG.into(), manifest, notes })
}
