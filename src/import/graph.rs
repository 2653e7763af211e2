//! The decoder graph as it is, against what a folder's config says of it:
//! tensor names, layer count, KV heads, head size, element types, the inputs
//! mmrt would have to feed. Read from the ONNX protobuf
//! ([`crate::onnx_proto::graph_io`]) before any session exists, so a folder
//! whose config disagrees with its graph is refused before anything is sized
//! by a config number.

use crate::limits;
use crate::manifest::{DecoderInputs, DecoderOutputs, DecoderStage, KvCacheNames};
use crate::onnx_proto::{Dim, GraphIo, ValueInfo};

/// The numbers a config states about the decoder, each checked against
/// [`crate::limits`] by [`ConfigFacts::check`] before use.
#[derive(Debug, Clone, Default)]
pub struct ConfigFacts {
    /// Decoder layers.
    pub layers: usize,
    /// Key/value heads, when the config states them.
    pub kv_heads: Option<usize>,
    /// Attention (query) heads, when stated.
    pub attention_heads: Option<usize>,
    /// Head size, when stated.
    pub head_dim: Option<usize>,
    /// Vocabulary size, when stated.
    pub vocab_size: Option<usize>,
    /// Positions (prompt + generated) at most.
    pub context_length: usize,
}

impl ConfigFacts {
    /// Every number within [`crate::limits`] and consistent with the others;
    /// `origin` names the config file in the message.
    pub fn check(&self, origin: &str) -> Result<(), String> {
        let range = |what: &str, value: usize, max: usize, limit: &str| {
            if value == 0 || value > max {
                Err(format!("{origin}: {what} must be in 1..={max} ({limit}), found {value}"))
            } else {
                Ok(())
            }
        };
        range("the layer count", self.layers, limits::MAX_LAYERS, "limits::MAX_LAYERS")?;
        range("the context length", self.context_length, limits::MAX_CONTEXT_LENGTH, "limits::MAX_CONTEXT_LENGTH")?;
        if let Some(h) = self.kv_heads {
            range("the key/value head count", h, limits::MAX_ATTENTION_HEADS, "limits::MAX_ATTENTION_HEADS")?;
        }
        if let Some(h) = self.attention_heads {
            range("the attention head count", h, limits::MAX_ATTENTION_HEADS, "limits::MAX_ATTENTION_HEADS")?;
        }
        if let Some(d) = self.head_dim {
            range("the head size", d, limits::MAX_HEAD_DIM, "limits::MAX_HEAD_DIM")?;
        }
        if let Some(v) = self.vocab_size {
            range("the vocabulary size", v, limits::MAX_VOCAB_SIZE, "limits::MAX_VOCAB_SIZE")?;
        }
        if let (Some(q), Some(kv)) = (self.attention_heads, self.kv_heads) {
            if q % kv != 0 {
                return Err(format!("{origin}: {q} attention heads is not a multiple of {kv} key/value heads"));
            }
        }
        Ok(())
    }
}

/// Tensor names the config gives (or the layout's conventions), KV names as
/// `{layer}` patterns.
#[derive(Debug, Clone)]
pub struct DecoderNames {
    /// Token ids input.
    pub input_ids: String,
    /// Attention mask input, when the config names one (it may be absent from the graph).
    pub attention_mask: Option<String>,
    /// Position ids input, when the config names one.
    pub position_ids: Option<String>,
    /// Logits output.
    pub logits: String,
    /// Past key pattern, e.g. `past_key_values.{layer}.key`.
    pub past_key: String,
    /// Past value pattern.
    pub past_value: String,
    /// Present key pattern.
    pub present_key: String,
    /// Present value pattern.
    pub present_value: String,
}

impl DecoderNames {
    /// The names transformers' ONNX exports use (Optimum, transformers.js).
    pub fn transformers() -> Self {
        Self {
            input_ids: "input_ids".into(),
            attention_mask: Some("attention_mask".into()),
            position_ids: Some("position_ids".into()),
            logits: "logits".into(),
            past_key: "past_key_values.{layer}.key".into(),
            past_value: "past_key_values.{layer}.value".into(),
            present_key: "present.{layer}.key".into(),
            present_value: "present.{layer}.value".into(),
        }
    }
}

/// What the check found beyond the manifest itself, for `inspect`.
#[derive(Debug, Clone)]
pub struct GraphFacts {
    /// Element type of the KV cache (`float32` / `float16`).
    pub kv_type: &'static str,
    /// Element type of the logits.
    pub logits_type: &'static str,
    /// KV heads read from the graph.
    pub kv_heads: u64,
}

/// Build the `llm_decoder` stage over `graph` (the folder-relative file) from
/// its declared inputs/outputs `io`, the config's `names` and `facts`;
/// `origin` names the config in errors. Every disagreement is an error naming
/// both sides.
pub fn decoder_stage(
    graph: &str,
    io: &GraphIo,
    names: &DecoderNames,
    facts: &ConfigFacts,
    shared_buffer: bool,
    origin: &str,
) -> Result<(DecoderStage, GraphFacts), String> {
    let at = |what: String| format!("graph \"{graph}\": {what}");
    let ids = io.input(&names.input_ids).ok_or_else(|| {
        let embeds = io.inputs.iter().find(|v| v.name.contains("embeds"));
        match embeds {
            Some(e) => at(format!(
                "takes embeddings (\"{}\") instead of token ids; a folder whose decoder needs a separate embedding graph is not supported yet (write a bundle.json with an `embedding` graph)",
                e.name
            )),
            None => at(format!("has no token-ids input \"{}\" ({origin}); its inputs are {}", names.input_ids, list(&io.inputs))),
        }
    })?;
    expect_type(graph, ids, &["int64", "int32"])?;
    let optional = |name: &Option<String>| name.as_ref().filter(|n| io.input(n).is_some()).cloned();
    let attention_mask = optional(&names.attention_mask);
    let position_ids = optional(&names.position_ids);

    // Layers: past inputs 0..layers must all exist, and none beyond.
    let past_key = |l: usize| names.past_key.replace("{layer}", &l.to_string());
    let graph_layers = (0..=limits::MAX_LAYERS).take_while(|&l| io.input(&past_key(l)).is_some()).count();
    if graph_layers != facts.layers {
        return Err(at(format!(
            "{origin} says {} layers, the graph has past inputs for {graph_layers} (\"{}\", …)",
            facts.layers,
            past_key(0)
        )));
    }
    let kv = KvCacheNames {
        num_layers: facts.layers,
        past_key: names.past_key.clone(),
        past_value: names.past_value.clone(),
        present_key: names.present_key.clone(),
        present_value: names.present_value.clone(),
        head_dim: None,
        shared_buffer,
    };
    let (mut kv_type, mut kv_heads, mut head_dim) = ("", None::<u64>, None::<u64>);
    for (past, present) in kv.past_names().iter().zip(kv.present_names()) {
        let p = io.input(past).ok_or_else(|| at(format!("has no past input \"{past}\" ({origin})")))?;
        let out = io.output(&present).ok_or_else(|| at(format!("has no present output \"{present}\" ({origin})")))?;
        expect_type(graph, p, &["float32", "float16"])?;
        if out.elem_type != p.elem_type {
            return Err(at(format!("present \"{present}\" is {} but past \"{past}\" is {}", out.elem_type, p.elem_type)));
        }
        if !kv_type.is_empty() && kv_type != p.elem_type {
            return Err(at(format!("past \"{past}\" is {}, the layers before are {kv_type}", p.elem_type)));
        }
        kv_type = p.elem_type;
        let dims = p.shape.as_deref().unwrap_or_default();
        if dims.len() != 4 {
            return Err(at(format!("past \"{}\" should be [batch, kv_heads, past_seq, head_dim], found {p}", p.name)));
        }
        let heads = match &dims[1] {
            Dim::Fixed(h) => *h,
            other => return Err(at(format!("past \"{}\" leaves its key/value heads symbolic ({other}); mmrt needs them fixed in the graph", p.name))),
        };
        if let Some(config) = facts.kv_heads.filter(|&c| c as u64 != heads) {
            return Err(at(format!("{origin} says {config} key/value heads, past \"{}\" has {heads} ({p})", p.name)));
        }
        match (&dims[3], facts.head_dim) {
            (Dim::Fixed(d), Some(config)) if *d != config as u64 => {
                return Err(at(format!("{origin} says head size {config}, past \"{}\" has {d} ({p})", p.name)));
            }
            (Dim::Fixed(d), _) => head_dim = Some(*d),
            (_, Some(_)) => {}
            (other, None) => {
                return Err(at(format!("past \"{}\" leaves its head size symbolic ({other}) and {origin} does not state it", p.name)))
            }
        }
        kv_heads = Some(heads);
    }
    let kv = KvCacheNames {
        // A symbolic head size (onnxruntime-genai's `kv_cache_dim`) comes from the config.
        head_dim: if head_dim.is_none() { facts.head_dim } else { None },
        ..kv
    };

    let logits = io.output(&names.logits).ok_or_else(|| at(format!("has no logits output \"{}\" ({origin}); its outputs are {}", names.logits, list(&io.outputs))))?;
    expect_type(graph, logits, &["float32", "float16"])?;
    if let (Some(Dim::Fixed(v)), Some(config)) = (logits.shape.as_deref().and_then(|d| d.last()), facts.vocab_size) {
        if *v != config as u64 {
            return Err(at(format!("{origin} says a vocabulary of {config}, logits \"{}\" has {v} ({logits})", logits.name)));
        }
    }

    // Every input must be one mmrt feeds.
    let past = kv.past_names();
    let fed = |n: &str| n == ids.name || Some(n) == attention_mask.as_deref() || Some(n) == position_ids.as_deref() || past.iter().any(|p| p == n);
    if let Some(extra) = io.inputs.iter().find(|v| !fed(&v.name)) {
        return Err(at(format!(
            "takes input {extra}, which mmrt does not feed yet (it feeds token ids, attention_mask, position_ids and the past key/values){}",
            match extra.name.as_str() {
                n if n.contains("logits_to_keep") => "; re-export without num_logits_to_keep",
                "use_cache_branch" => "; this is an older Optimum merged decoder: re-export with a current optimum-onnx",
                _ => "",
            }
        )));
    }
    let stage = DecoderStage {
        name: "decoder".into(),
        embedding: None,
        graph: graph.into(),
        inputs: DecoderInputs { inputs_embeds: None, input_ids: Some(ids.name.clone()), attention_mask, position_ids },
        outputs: DecoderOutputs { logits: Some(logits.name.clone()), hidden_states: None },
        kv_cache: kv,
        context_length: facts.context_length,
        token_table: None,
    };
    Ok((stage, GraphFacts { kv_type, logits_type: logits.elem_type, kv_heads: kv_heads.unwrap_or(0) }))
}

fn expect_type(graph: &str, value: &ValueInfo, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value.elem_type) {
        return Ok(());
    }
    Err(format!("graph \"{graph}\": \"{}\" is {}, mmrt runs {} here ({value})", value.name, value.elem_type, allowed.join(" or ")))
}

fn list(values: &[ValueInfo]) -> String {
    let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).take(12).collect();
    if values.len() > 12 {
        format!("{} … ({} in all)", names.join(", "), values.len())
    } else {
        names.join(", ")
    }
}
