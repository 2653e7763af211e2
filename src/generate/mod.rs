//! Token generation: the prompt/decode loop over a [`LanguageModel`], sampling,
//! stop conditions and streaming detokenization.
//!
//! The loop only talks to the model through [`LanguageModel`], the seam tests
//! use to check what passes between steps (a fake model records its inputs).

pub mod sampler;
pub mod stream;

use std::time::{Duration, Instant};

use ort::value::DynValue;

pub use sampler::{Sampler, SamplingConfig};
pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::kv_cache::KvCache;

/// What the generation loop needs from an LLM backbone.
pub trait LanguageModel {
    /// Embed token ids: `[1, n]` -> `[1, n, d_llm]`.
    fn embed(&mut self, ids: &[u32]) -> Result<DynValue>;
    /// One forward pass over `embeds` `[1, n, d_llm]` following `cache`.
    /// The cache is consumed (moved into the graph) and the new one returned;
    /// the last position's logits are written to `logits`.
    fn forward(&mut self, embeds: DynValue, cache: KvCache, logits: &mut Vec<f32>) -> Result<KvCache>;
    /// A cache holding no positions.
    fn empty_cache(&mut self) -> Result<KvCache>;
    /// Maximum positions (prompt + generated).
    fn context_length(&self) -> usize;
}

/// Limits of one generation.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// New tokens at most.
    pub max_new_tokens: usize,
    /// Stop after emitting any of these (the stop token is kept in the ids).
    pub stop_tokens: Vec<u32>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop token was produced.
    StopToken,
    /// `max_new_tokens` reached.
    MaxTokens,
    /// The context is full.
    ContextFull,
}

/// The result of [`generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// New token ids, including a final stop token if one was produced.
    pub ids: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Time of the prompt forward pass.
    pub prefill: Duration,
    /// Total time of the decode steps (embedding + forward + sampling).
    pub decode: Duration,
    /// Decode steps run (forward passes after prefill).
    pub decode_steps: usize,
}

/// Run prefill over `prompt_embeds` (`[1, prompt_ids.len(), d]`), then decode
/// until a stop token, `max_new_tokens`, or the context is full. `on_token` is
/// called with each new id as soon as it is sampled (for streaming).
pub fn generate(
    model: &mut dyn LanguageModel,
    prompt_embeds: DynValue,
    prompt_ids: &[u32],
    sampler: &mut Sampler,
    params: &GenerateParams,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    let context = model.context_length();
    if prompt_ids.len() >= context {
        return Err(Error::PromptTooLong { tokens: prompt_ids.len(), context });
    }
    let mut history: Vec<u32> = Vec::with_capacity(prompt_ids.len() + params.max_new_tokens);
    history.extend_from_slice(prompt_ids);
    let mut logits = Vec::new();
    let mut ids = Vec::new();

    let start = Instant::now();
    let cache = model.empty_cache()?;
    let mut cache = model.forward(prompt_embeds, cache, &mut logits)?;
    let prefill = start.elapsed();

    let start = Instant::now();
    let mut decode_steps = 0;
    let stop_reason = loop {
        if ids.len() >= params.max_new_tokens {
            break StopReason::MaxTokens;
        }
        let next = sampler.sample(&mut logits, &history);
        ids.push(next);
        history.push(next);
        on_token(next)?;
        if params.stop_tokens.contains(&next) {
            break StopReason::StopToken;
        }
        if ids.len() >= params.max_new_tokens {
            break StopReason::MaxTokens;
        }
        if cache.seq_len() + 1 > context {
            break StopReason::ContextFull;
        }
        let embeds = model.embed(&[next])?;
        cache = model.forward(embeds, cache, &mut logits)?;
        decode_steps += 1;
    };
    Ok(Generation { ids, stop_reason, prefill, decode: start.elapsed(), decode_steps })
}
