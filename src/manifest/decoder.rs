//! Decoder stages: the LLM backbone (`llm_decoder`, with its token embedding
//! graph) and the encoder-decoder text decoder (`seq2seq_decoder`), their
//! KV cache name patterns, and their checks.

use serde::{Deserialize, Serialize};

use crate::limits;

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
    /// The token table read by mmrt itself (embedding lookup and tied output
    /// layer, see `stages::token_table`): the graph then takes
    /// `inputs_embeds` and returns `hidden_states`, and has no `logits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_table: Option<TokenTableSpec>,
}

/// A token table file: `format` `q8_0` is `codes [vocab, width]` u8 (int8
/// + 128) then `scales [vocab, width / 32]` float16, little-endian.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTableSpec {
    /// Bundle-relative file.
    pub file: String,
    /// Layout; only `q8_0`.
    pub format: TokenTableFormat,
    /// Rows (the vocabulary).
    pub vocab: usize,
    /// Row length (the decoder's hidden size).
    pub width: usize,
    /// Multiplies looked-up rows (Gemma: sqrt(hidden)); not the logits.
    #[serde(default = "one")]
    pub scale: f32,
}

/// Token table layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenTableFormat {
    /// GGUF Q8_0 values, planar (codes, then float16 scales).
    #[serde(rename = "q8_0")]
    Q8_0,
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
    /// `[batch, seq, vocab]` logits; absent when a `token_table` computes them from `hidden_states`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<String>,
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

pub(super) fn validate_kv_names(name: &str, kv: &KvCacheNames) -> std::result::Result<(), String> {
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

pub(super) fn check_context_length(name: &str, context_length: usize) -> std::result::Result<(), String> {
    if context_length > limits::MAX_CONTEXT_LENGTH {
        return Err(format!(
            "stage \"{name}\": `context_length` {context_length} is above the limit of {} positions (limits::MAX_CONTEXT_LENGTH)",
            limits::MAX_CONTEXT_LENGTH
        ));
    }
    Ok(())
}
