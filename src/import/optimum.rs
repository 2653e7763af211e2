//! Optimum / transformers.js folders: transformers' `config.json` (and
//! `generation_config.json`), `tokenizer.json`, and a single decoder graph
//! with past inputs (`model*.onnx` or `decoder_model_merged*.onnx`, under
//! `onnx/` or at the top; see [`super::variants`] for choosing a variant).
//!
//! Tensor names are transformers' export conventions (`input_ids`,
//! `attention_mask`, `position_ids`, `past_key_values.{layer}.key`,
//! `present.{layer}.key`, `logits`), confirmed on the graph; numbers come from
//! `config.json` (`num_hidden_layers`, `num_key_value_heads`,
//! `num_attention_heads`, `head_dim` or `hidden_size / num_attention_heads`,
//! `vocab_size`, `max_position_embeddings`) and are checked against it;
//! sampling defaults from `generation_config.json` ([`super::generation`]).

use serde::Deserialize;

use super::folder::Folder;
use super::graph::{self, ConfigFacts, DecoderNames};
use super::tokens::{self, Ids, SpecialIds};
use super::variants::{self, Variant};
use super::{Inferred, Layout};
use crate::error::Result;

/// The config file of the layout.
pub const CONFIG: &str = "config.json";

/// transformers `model_type`s of decoder-only LLMs whose ONNX exports follow the conventions above.
const TEXT_TYPES: &[&str] = &[
    "cohere", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "granite", "helium", "llama", "mistral", "mixtral",
    "mpt", "olmo", "olmo2", "opt", "phi", "phi3", "qwen2", "qwen3", "smollm3", "stablelm", "starcoder2",
];

/// Graph files that mean a model of several stages, which mmrt cannot infer yet.
const STAGE_FILES: &[(&str, &str)] = &[
    ("vision_encoder", "a vision encoder"),
    ("embed_tokens", "a separate token embedding graph"),
    ("encoder_model", "an encoder (encoder-decoder model)"),
    ("audio_encoder", "an audio encoder"),
    ("decoder_with_past_model", "a decoder split into a prefill and a with-past graph"),
];

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    is_encoder_decoder: bool,
    #[serde(default, alias = "n_layer")]
    num_hidden_layers: Option<usize>,
    #[serde(default, alias = "n_head")]
    num_attention_heads: Option<usize>,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default, alias = "n_embd")]
    hidden_size: Option<usize>,
    #[serde(default)]
    vocab_size: Option<usize>,
    #[serde(default, alias = "n_positions")]
    max_position_embeddings: Option<usize>,
    #[serde(default)]
    bos_token_id: Option<i64>,
    #[serde(default)]
    eos_token_id: Option<Ids>,
    #[serde(default)]
    pad_token_id: Option<i64>,
    #[serde(default)]
    text_config: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct GenerationConfig {
    #[serde(default)]
    bos_token_id: Option<i64>,
    #[serde(default)]
    eos_token_id: Option<Ids>,
    #[serde(default)]
    pad_token_id: Option<i64>,
    #[serde(flatten)]
    sampling: super::generation::SamplingConfig,
}

/// Infer the manifest of the Optimum / transformers.js folder `folder`: the
/// decoder graph `file` when given (a path inside the folder), else the
/// variant `wanted` (or the default one).
pub fn infer(folder: &Folder, file: Option<&str>, wanted: Option<&str>) -> Result<Inferred> {
    let config: Config = folder.read_json(CONFIG)?;
    let fail = |message: String| folder.error(Some(CONFIG), message);
    let model_type = config.model_type.clone().unwrap_or_default();
    let stages: Vec<String> = ["onnx", ""]
        .iter()
        .flat_map(|dir| folder.list(dir).into_iter().map(move |n| if dir.is_empty() { n } else { format!("{dir}/{n}") }))
        .filter_map(|f| {
            let name = f.rsplit('/').next().unwrap_or(&f).to_string();
            STAGE_FILES.iter().find(|(base, _)| variants::variant_of(&name, base).is_some()).map(|(_, what)| format!("{f} ({what})"))
        })
        .collect();
    if !stages.is_empty() || config.text_config.is_some() || config.is_encoder_decoder {
        let found = if stages.is_empty() { format!("model type \"{model_type}\"") } else { stages.join(", ") };
        return Err(folder.error(
            None,
            format!(
                "not supported yet: found {found}; mmrt infers single-graph text decoders only (a vision-language or encoder-decoder model needs its stages described in a bundle.json, see the README's bundle format); the folder holds {}",
                folder.describe()
            ),
        ));
    }
    if !TEXT_TYPES.contains(&model_type.as_str()) {
        return Err(fail(format!("unknown model type \"{model_type}\" (model_type); mmrt infers these decoder-only types: {}", TEXT_TYPES.join(", "))));
    }
    let chosen = match file {
        Some(f) => {
            let name = f.rsplit('/').next().unwrap_or(f);
            let v = variants::DECODER_BASES.iter().find_map(|b| variants::variant_of(name, b)).unwrap_or_default();
            if let Some(w) = wanted.filter(|w| *w != v) {
                return Err(folder.error(None, format!("--variant {w} disagrees with the graph file given, {f}")));
            }
            Variant { name: v, file: f.to_string() }
        }
        None => {
            let found = variants::find(folder);
            if found.is_empty() {
                return Err(folder.error(
                    None,
                    format!("no decoder graph (model.onnx, decoder_model_merged.onnx or a variant of them, under onnx/ or here); the folder holds {}", folder.describe()),
                ));
            }
            variants::choose(&found, wanted).map_err(|m| folder.error(None, m))?
        }
    };
    let path = folder.resolve(&chosen.file, "the decoder graph")?;

    let layers = config.num_hidden_layers.ok_or_else(|| fail("num_hidden_layers is missing".into()))?;
    let heads = config.num_attention_heads.ok_or_else(|| fail("num_attention_heads is missing".into()))?;
    let head_dim = match (config.head_dim, config.hidden_size) {
        (Some(d), _) => Some(d),
        (None, Some(h)) if heads > 0 && h % heads == 0 => Some(h / heads),
        _ => None,
    };
    let facts = ConfigFacts {
        layers,
        kv_heads: Some(config.num_key_value_heads.unwrap_or(heads)),
        attention_heads: Some(heads),
        head_dim,
        vocab_size: config.vocab_size,
        context_length: config.max_position_embeddings.ok_or_else(|| fail("max_position_embeddings is missing".into()))?,
    };
    facts.check(CONFIG).map_err(fail)?;
    let io = crate::onnx_proto::graph_io(&path)?;
    let (stage, found) = graph::decoder_stage(&chosen.file, &io, &DecoderNames::transformers(), &facts, false, CONFIG).map_err(fail)?;

    let generation: GenerationConfig =
        if folder.has("generation_config.json") { folder.read_json("generation_config.json")? } else { GenerationConfig::default() };
    let mut notes = vec![format!(
        "decoder {} (variant {}): {} layers, {} KV heads of size {}, {} KV cache, {} logits, position_ids {}, context {}",
        chosen.file,
        if chosen.name.is_empty() { "default" } else { &chosen.name },
        layers,
        found.kv_heads,
        head_dim.map_or("from the graph".into(), |d| d.to_string()),
        found.kv_type,
        found.logits_type,
        if stage.inputs.position_ids.is_some() { "fed" } else { "not taken" },
        facts.context_length
    )];
    let others: Vec<String> = variants::find(folder).into_iter().filter(|v| v.file != chosen.file).map(|v| v.file).collect();
    if !others.is_empty() {
        notes.push(format!("other variants (--variant NAME): {}", others.join(", ")));
    }
    let tokenizer = folder.resolve("tokenizer.json", "an Optimum folder")?;
    let ids = SpecialIds {
        eos: generation.eos_token_id.as_ref().or(config.eos_token_id.as_ref()).map(Ids::to_vec).unwrap_or_default(),
        pad: generation.pad_token_id.or(config.pad_token_id),
        bos: generation.bos_token_id.or(config.bos_token_id),
    };
    let mut prompt = tokens::prompt_format(&tokenizer, &ids, "config.json / generation_config.json", &mut notes).map_err(fail)?;
    prompt.chat = tokens::chat_template(folder, &mut notes);
    let generation = super::generation::defaults(&generation.sampling, "generation_config.json", &mut notes).map_err(fail)?;
    let manifest = super::decoder_manifest(folder, format!("{model_type} ONNX export ({}), manifest inferred from config.json", chosen.file), stage, prompt, generation);
    Ok(Inferred { root: folder.root().to_path_buf(), layout: Layout::Optimum, source: CONFIG.into(), manifest, notes })
}
