//! Token generation: the prompt/decode loop over a [`LanguageModel`], sampling,
//! stop conditions, streaming detokenization, and the collection of hidden
//! states at NExT-GPT style signal tokens for an output projector.
//!
//! The loop only talks to the model through [`LanguageModel`], the seam tests
//! use to check what passes between steps (a fake model records its inputs).

pub mod beam;
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
    /// Copy the last position's hidden state `[d_llm]` of the latest [`Self::forward`]
    /// into `out`; `Ok(false)` when the model returns no hidden states (the default).
    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        let _ = out;
        Ok(false)
    }
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

/// The signal tokens of an output projector (`[IMG0]` … `[IMG{k-1}]`), as ids in run order.
///
/// Once the first is generated, the other `k - 1` are forced, one per step
/// (so a run is always complete, as NExT-GPT's training makes it), unless the
/// token budget or the context ends generation first. The hidden state at a
/// signal token is the last hidden state of the forward pass whose *input* is
/// that token; for a run's last token that pass runs after the loop if
/// generation stopped right after emitting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTokens {
    /// Ids in run order; at least one.
    pub ids: Vec<u32>,
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
    /// Per complete signal run, the hidden states at its `k` tokens, `[k, d_llm]` row-major.
    pub signal_hidden: Vec<Vec<f32>>,
}

/// A signal run in progress.
struct PendingRun {
    emitted: usize,
    collected: usize,
    hidden: Vec<f32>,
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
    on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    generate_with_signals(model, prompt_embeds, prompt_ids, sampler, params, None, on_token)
}

/// [`generate`], also forcing and collecting the hidden states of `signals` runs
/// (see [`SignalTokens`]); [`Generation::signal_hidden`] holds the complete runs.
pub fn generate_with_signals(
    model: &mut dyn LanguageModel,
    prompt_embeds: DynValue,
    prompt_ids: &[u32],
    sampler: &mut Sampler,
    params: &GenerateParams,
    signals: Option<&SignalTokens>,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    let signal_ids: &[u32] = signals.map(|s| s.ids.as_slice()).unwrap_or(&[]);
    let mut pending: Option<PendingRun> = None;
    let mut runs = Vec::new();
    let mut hidden = Vec::new();
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
        let forced = pending.as_ref().filter(|p| p.emitted < signal_ids.len()).map(|p| signal_ids[p.emitted]);
        let next = match forced {
            Some(id) => id,
            None => sampler.sample(&mut logits, &history),
        };
        ids.push(next);
        history.push(next);
        on_token(next)?;
        if signal_ids.first() == Some(&next) {
            pending = Some(PendingRun { emitted: 1, collected: 0, hidden: Vec::new() });
        } else if forced.is_none() {
            pending = None;
        } else if let Some(p) = pending.as_mut() {
            p.emitted += 1;
        }
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
        collect_hidden(model, &mut pending, &mut hidden, &mut runs, signal_ids.len())?;
    };
    // A run whose last token ended generation: its hidden state needs one more pass.
    let last_uncollected = pending.as_ref().is_some_and(|p| p.emitted == signal_ids.len() && p.collected + 1 == p.emitted);
    if last_uncollected && cache.seq_len() < context {
        let embeds = model.embed(&ids[ids.len() - 1..])?;
        model.forward(embeds, cache, &mut logits)?;
        collect_hidden(model, &mut pending, &mut hidden, &mut runs, signal_ids.len())?;
    }
    Ok(Generation { ids, stop_reason, prefill, decode: start.elapsed(), decode_steps, signal_hidden: runs })
}

/// After a forward pass whose input was a signal token of the pending run, keep its hidden state.
fn collect_hidden(
    model: &mut dyn LanguageModel,
    pending: &mut Option<PendingRun>,
    scratch: &mut Vec<f32>,
    runs: &mut Vec<Vec<f32>>,
    k: usize,
) -> Result<()> {
    let Some(run) = pending.as_mut() else { return Ok(()) };
    if !model.last_hidden_state(scratch)? {
        return Err(Error::Tensor {
            stage: "llm_decoder".into(),
            tensor: "outputs.hidden_states".into(),
            expected: "the last hidden state (signal tokens need it for the output projector)".into(),
            found: "a decoder that returns none".into(),
        });
    }
    run.hidden.extend_from_slice(scratch);
    run.collected += 1;
    if run.collected == k {
        runs.push(std::mem::take(&mut run.hidden));
        *pending = None;
    }
    Ok(())
}
