//! LLM backbone stage: the token embedding graph and the decoder graph with
//! its KV cache. Implements [`LanguageModel`] for the generation loop.
//!
//! Two forms of decoder graph: multimodal-ready (`inputs_embeds` in, with a
//! separate embedding graph, so media rows can be spliced between text rows)
//! and text-only (`input_ids` in, the graph embeds: one session call a step).
//!
//! Shapes (batch is always 1 here):
//! * embedding: `input_ids [1, n]` -> `inputs_embeds [1, n, d_llm]`
//! * decoder: `inputs_embeds [1, n, d_llm]` or `input_ids [1, n]`, `attention_mask [1, past + n]`,
//!   `position_ids [1, n]`, `past.* [1, kv_heads, past, head_dim]` ->
//!   `logits [1, n, vocab]`, optionally `hidden_states [1, n, d_llm]` (the last
//!   hidden state, for an output projector), `present.* [1, kv_heads, past + n, head_dim]`

use std::borrow::Cow;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::generate::LanguageModel;
use crate::kv_cache::KvCache;
use crate::manifest::{DecoderStage, EmbeddingGraph};
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;
use crate::tensor;

/// The token embedding graph.
pub struct TokenEmbedder {
    stage: String,
    /// `input_ids [1, n]` -> `inputs_embeds [1, n, d_llm]`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
    scale: f32,
}

impl TokenEmbedder {
    fn open(runtime: &OrtRuntime, bundle: &Bundle, decoder: &str, graph: &EmbeddingGraph, config: &SessionConfig) -> Result<Self> {
        let stage = format!("{decoder}.embedding");
        // Same providers as the decoder; a fallback here would already be reported by the decoder's.
        let OpenedSession { session, .. } = session::open(runtime, &bundle.resolve(&graph.graph)?, &stage, config)?;
        let input_type = session::input_type(&session, &stage, &graph.input)?;
        session::require_output(&session, &stage, &graph.output)?;
        Ok(Self { stage, session, input: graph.input.clone(), input_type, output: graph.output.clone(), scale: graph.scale })
    }

    /// Embed `ids` as `[1, ids.len(), d_llm]`, applying the manifest's scale.
    pub fn embed(&mut self, ids: &[u32]) -> Result<DynValue> {
        let data = ids.iter().map(|&i| i as i64).collect();
        let input = tensor::int_value(&[1, ids.len()], data, self.input_type, &self.stage, &self.input)?;
        let mut out = super::run_named(&mut self.session, &self.stage, vec![(self.input.as_str().into(), input.into())], &[&self.output])?;
        let embeds = out.remove(0);
        if self.scale == 1.0 {
            return Ok(embeds);
        }
        let dtype = tensor::element_type(&embeds).unwrap_or(TensorElementType::Float32);
        let scaled = tensor::to_f32_array(&embeds, &self.stage, &self.output)? * self.scale;
        tensor::float_value(scaled, dtype, &self.stage, &self.output)
    }
}

/// What the decoder graph takes besides mask, positions and cache.
enum StepInput {
    /// `inputs_embeds [1, n, d_llm]`, made by the embedding graph.
    Embeds { embedder: TokenEmbedder, name: String, dtype: TensorElementType },
    /// `input_ids [1, n]`: the graph embeds.
    Ids { name: String, dtype: TensorElementType },
}

/// The decoder graph plus everything needed to feed it.
pub struct Decoder {
    name: String,
    /// `inputs_embeds | input_ids, attention_mask, position_ids, past.*` -> `logits, present.*`
    session: Session,
    input: StepInput,
    mask: Option<(String, TensorElementType)>,
    positions: Option<(String, TensorElementType)>,
    logits_output: String,
    /// Last-hidden-state output, when the manifest names one.
    hidden_output: Option<String>,
    /// `[1, n, d_llm]` hidden states of the latest forward pass (moved out of the
    /// graph's outputs; only its last row is ever copied, on request).
    last_hidden: Option<DynValue>,
    past_names: Vec<String>,
    present_names: Vec<String>,
    /// Element type and `[1, kv_heads, 0, head_dim]` of an empty past tensor, per past input.
    empty_past: Vec<(TensorElementType, Vec<usize>)>,
    context_length: usize,
}

impl Decoder {
    /// Open the embedding and decoder graphs and check every named tensor exists.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &DecoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let name = stage.name.clone();
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(&stage.graph)?, &name, config)?;
        let input = match (&stage.inputs.inputs_embeds, &stage.inputs.input_ids, &stage.embedding) {
            (Some(embeds), _, Some(embedding)) => StepInput::Embeds {
                embedder: TokenEmbedder::open(runtime, bundle, &name, embedding, config)?,
                name: embeds.clone(),
                dtype: session::input_type(&session, &name, embeds)?,
            },
            (None, Some(ids), None) => StepInput::Ids { name: ids.clone(), dtype: session::input_type(&session, &name, ids)? },
            _ => return Err(Error::Request(format!("stage \"{name}\": invalid decoder inputs (the manifest check should have said why)"))),
        };
        let optional = |input: &Option<String>| -> Result<Option<(String, TensorElementType)>> {
            input.as_ref().map(|n| Ok((n.clone(), session::input_type(&session, &name, n)?))).transpose()
        };
        let mask = optional(&stage.inputs.attention_mask)?;
        let positions = optional(&stage.inputs.position_ids)?;
        session::require_output(&session, &name, &stage.outputs.logits)?;
        if let Some(hidden) = &stage.outputs.hidden_states {
            session::require_output(&session, &name, hidden)?;
        }
        let past_names = stage.kv_cache.past_names();
        let present_names = stage.kv_cache.present_names();
        for present in &present_names {
            session::require_output(&session, &name, present)?;
        }
        let empty_past = past_names.iter().map(|p| crate::kv_cache::empty_past_spec(&session, &name, p)).collect::<Result<_>>()?;
        let decoder = Self {
            name,
            session,
            input,
            mask,
            positions,
            logits_output: stage.outputs.logits.clone(),
            hidden_output: stage.outputs.hidden_states.clone(),
            last_hidden: None,
            past_names,
            present_names,
            empty_past,
            context_length: stage.context_length,
        };
        Ok((decoder, fallback))
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Element type the decoder declares for `inputs_embeds`; `None` for the
    /// text-only form, which cannot take media rows.
    pub fn embeds_type(&self) -> Option<TensorElementType> {
        match &self.input {
            StepInput::Embeds { dtype, .. } => Some(*dtype),
            StepInput::Ids { .. } => None,
        }
    }
}

impl LanguageModel for Decoder {
    fn embed(&mut self, ids: &[u32]) -> Result<DynValue> {
        match &mut self.input {
            StepInput::Embeds { embedder, .. } => embedder.embed(ids),
            StepInput::Ids { name, dtype } => {
                tensor::int_value(&[1, ids.len()], ids.iter().map(|&i| i as i64).collect(), *dtype, &self.name, name)
            }
        }
    }

    fn forward(&mut self, embeds: DynValue, cache: KvCache, logits: &mut Vec<f32>) -> Result<KvCache> {
        let dims = tensor::dims(&embeds);
        let (input_name, seq, value) = match (&self.input, dims.as_slice()) {
            (StepInput::Embeds { name, dtype, .. }, [1, n, _]) if *n > 0 => {
                (name.as_str(), *n as usize, tensor::cast_float(embeds, *dtype, &self.name, name)?)
            }
            (StepInput::Ids { name, .. }, [1, n]) if *n > 0 => (name.as_str(), *n as usize, embeds),
            (input, _) => {
                let (tensor, expected) = match input {
                    StepInput::Embeds { name, .. } => (name, "[1, seq, d_llm] with seq >= 1"),
                    StepInput::Ids { name, .. } => (name, "[1, seq] token ids with seq >= 1"),
                };
                return Err(Error::Tensor {
                    stage: self.name.clone(),
                    tensor: tensor.clone(),
                    expected: expected.into(),
                    found: format!("{dims:?}"),
                });
            }
        };
        let past = cache.seq_len();
        let total = past + seq;

        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(3 + self.past_names.len());
        inputs.push((input_name.into(), value.into()));
        if let Some((name, dtype)) = &self.mask {
            let mask = tensor::int_value(&[1, total], vec![1; total], *dtype, &self.name, name)?;
            inputs.push((name.as_str().into(), mask.into()));
        }
        if let Some((name, dtype)) = &self.positions {
            let pos = tensor::int_value(&[1, seq], (past as i64..total as i64).collect(), *dtype, &self.name, name)?;
            inputs.push((name.as_str().into(), pos.into()));
        }
        // The cache moves into the graph's past inputs: no host copy.
        for (name, value) in self.past_names.iter().zip(cache.into_values()) {
            inputs.push((name.as_str().into(), value.into()));
        }

        let mut wanted: Vec<&str> = Vec::with_capacity(2 + self.present_names.len());
        wanted.push(&self.logits_output);
        wanted.extend(self.hidden_output.as_deref());
        wanted.extend(self.present_names.iter().map(String::as_str));
        let mut outputs = super::run_named(&mut self.session, &self.name, inputs, &wanted)?.into_iter();
        let logits_value = outputs.next().expect("logits requested first");
        tensor::last_row_f32(&logits_value, &self.name, &self.logits_output, logits)?;
        if self.hidden_output.is_some() {
            self.last_hidden = outputs.next();
        }
        Ok(KvCache::new(outputs.collect(), total))
    }

    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        match (&self.last_hidden, &self.hidden_output) {
            (Some(value), Some(name)) => {
                tensor::last_row_f32(value, &self.name, name, out)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn empty_cache(&mut self) -> Result<KvCache> {
        let values = self
            .empty_past
            .iter()
            .zip(&self.past_names)
            .map(|((dtype, shape), name)| tensor::zeros(shape, *dtype, &self.name, name))
            .collect::<Result<_>>()?;
        Ok(KvCache::new(values, 0))
    }

    fn context_length(&self) -> usize {
        self.context_length
    }
}
