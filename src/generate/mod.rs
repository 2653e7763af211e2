//! Token generation, written once for every decoder: the prefill/decode loop
//! over a [`DecoderModel`] (decoder-only LLMs and encoder-decoder models
//! alike), logits processors as a chain, samplers as data, stop conditions,
//! signal-token runs for an output projector, beam search over the same
//! trait, and streaming detokenization.
//!
//! The loop only talks to the model through [`DecoderModel`], the seam tests
//! use to check what passes between steps ([`ScriptedModel`] needs no ONNX Runtime).

pub mod beam;
pub mod config;
pub mod logits;
pub mod model;
pub mod sampler;
pub mod signals;
pub mod stop;
pub mod stream;

use std::time::{Duration, Instant};

pub use config::{GenerationConfig, GenerationOverrides};
pub use logits::{LogitsProcessor, ProcessorChain, RepetitionPenalty, SignalForcing, StepContext, SuppressTokens};
pub use model::{DecoderCache, DecoderModel, ScriptedCache, ScriptedModel, StepInput};
pub use sampler::{Sampler, Sampling};
pub use signals::SignalTokens;
pub use stop::{StopCheck, StopStrings};
pub use stream::Detokenizer;

use crate::error::{Error, Result};
use signals::SignalCollector;

/// Everything that decides the tokens of one generation, besides the model.
pub struct Decoding<'a> {
    /// New tokens at most.
    pub max_new_tokens: usize,
    /// Stop after emitting any of these (the stop token is kept in the ids).
    pub stop_tokens: &'a [u32],
    /// Adjust logits (or force a token) before sampling.
    pub processors: ProcessorChain,
    /// Choose the token.
    pub sampler: Sampler,
    /// Signal tokens whose runs are collected (their forcing is a processor).
    pub signals: Option<&'a SignalTokens>,
    /// Raised by the token callback to end generation after the token it was
    /// given (a stop string appeared in the decoded text): [`StopReason::StopString`].
    pub halt: Option<&'a std::cell::Cell<bool>>,
}

impl<'a> Decoding<'a> {
    /// Decoding with `config`'s budget, sampler and repetition penalty, stopping at `stop_tokens`.
    pub fn new(config: &GenerationConfig, stop_tokens: &'a [u32]) -> Self {
        Self {
            max_new_tokens: config.max_new_tokens,
            stop_tokens,
            processors: ProcessorChain::new().with_opt(RepetitionPenalty::new(config.repetition_penalty)),
            sampler: Sampler::new(config.sampling, config.seed),
            signals: None,
            halt: None,
        }
    }

    /// Append a processor to the chain.
    pub fn with_processor(mut self, processor: impl LogitsProcessor + 'static) -> Self {
        self.processors = self.processors.with(processor);
        self
    }

    /// Append a processor when it is `Some`.
    pub fn with_processor_opt(mut self, processor: Option<impl LogitsProcessor + 'static>) -> Self {
        self.processors = self.processors.with_opt(processor);
        self
    }

    /// Force and collect runs of `signals` (see [`SignalTokens`]).
    pub fn with_signals(mut self, signals: Option<&'a SignalTokens>) -> Self {
        if let Some(s) = signals {
            self.processors = self.processors.with(SignalForcing::new(s));
        }
        self.signals = signals;
        self
    }
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
    /// A stop string appeared in the text (see [`StopStrings`]).
    StopString,
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
    /// Time from each chosen token to the next (one decode step with its
    /// sampling): the per-token latency a consumer sees, for percentiles.
    pub token_gaps: Vec<Duration>,
    /// Per complete signal run, the hidden states at its `k` tokens, `[k, d_model]` row-major.
    pub signal_hidden: Vec<Vec<f32>>,
}

impl Generation {
    /// [`Generation::token_gaps`] in milliseconds.
    pub fn token_gaps_ms(&self) -> Vec<f64> {
        self.token_gaps.iter().map(|d| d.as_secs_f64() * 1e3).collect()
    }
}

/// Run prefill over `prompt` (which holds `prompt_ids.len()` positions: ids, or
/// embeddings with media rows merged in), then decode until a stop token, the
/// token budget, or a full context. `on_token` is called with each new id as
/// soon as it is chosen (for streaming).
pub fn generate<M: DecoderModel + ?Sized>(
    model: &mut M,
    prompt: StepInput<'_>,
    prompt_ids: &[u32],
    decoding: &mut Decoding<'_>,
    on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    let context = model.context_length();
    if prompt_ids.len() >= context {
        return Err(Error::PromptTooLong { tokens: prompt_ids.len(), context });
    }
    let start = Instant::now();
    let cache = model.new_cache()?;
    let allocation = start.elapsed();
    let (mut generation, _) = generate_after(model, cache, prompt, prompt_ids, decoding, on_token)?;
    generation.prefill += allocation;
    Ok(generation)
}

/// [`generate`] continuing `cache`, which holds the first `cache.seq_len()` of
/// `history` (the ids of the whole sequence so far, cached and new), with
/// `prompt` the rest (`history.len() - cache.seq_len()` positions, at least
/// one). Returns the generation and the cache, which then holds `history`
/// followed by the generated ids, all but the last (a token is fed when the
/// next one is needed; a final signal run's last token is fed too). A chat
/// keeps the cache across turns this way ([`crate::pipeline::Conversation`]).
pub fn generate_after<M: DecoderModel + ?Sized>(
    model: &mut M,
    cache: M::Cache,
    prompt: StepInput<'_>,
    history_ids: &[u32],
    decoding: &mut Decoding<'_>,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<(Generation, M::Cache)> {
    let context = model.context_length();
    if history_ids.len() >= context {
        return Err(Error::PromptTooLong { tokens: history_ids.len(), context });
    }
    if cache.seq_len() > 0 && cache.seq_len() >= history_ids.len() {
        return Err(Error::Request(format!(
            "stage \"{}\": the cache holds {} positions, so a sequence of {} leaves nothing to feed",
            model.name(),
            cache.seq_len(),
            history_ids.len()
        )));
    }
    let prompt_ids = history_ids;
    let mut collector = SignalCollector::new(decoding.signals);
    // The loop never produces more than `context` new ids, whatever the budget says.
    let mut history: Vec<u32> = Vec::with_capacity(prompt_ids.len() + decoding.max_new_tokens.min(context));
    history.extend_from_slice(prompt_ids);
    let generated_from = history.len();
    let mut logits = Vec::new();

    let start = Instant::now();
    let mut cache = model.step(prompt, cache, &mut logits)?;
    let prefill = start.elapsed();

    let start = Instant::now();
    let mut decode_steps = 0;
    let mut token_gaps = Vec::with_capacity(decoding.max_new_tokens.min(context));
    let mut last_token: Option<Instant> = None;
    let stop_reason = loop {
        let generated = history.len() - generated_from;
        if generated >= decoding.max_new_tokens {
            break StopReason::MaxTokens;
        }
        let step = StepContext { history: &history, generated: &history[generated_from..] };
        let forced = decoding.processors.forced(&step);
        let next = match forced {
            Some(id) => id,
            None => {
                decoding.processors.process(&mut logits, &step);
                decoding.sampler.sample(&logits)
            }
        };
        history.push(next);
        let now = Instant::now();
        if let Some(previous) = last_token.replace(now) {
            token_gaps.push(now - previous);
        }
        on_token(next)?;
        collector.emitted(next, forced.is_some());
        if decoding.stop_tokens.contains(&next) {
            break StopReason::StopToken;
        }
        if decoding.halt.is_some_and(|h| h.get()) {
            break StopReason::StopString;
        }
        if generated + 1 >= decoding.max_new_tokens {
            break StopReason::MaxTokens;
        }
        if cache.seq_len() + 1 > context {
            break StopReason::ContextFull;
        }
        cache = model.step(StepInput::Ids(&[next]), cache, &mut logits)?;
        decode_steps += 1;
        collector.after_step(model)?;
    };
    // A run whose last token ended generation: its hidden state needs one more pass.
    if collector.needs_final_pass() && cache.seq_len() < context {
        let last = history[history.len() - 1];
        cache = model.step(StepInput::Ids(&[last]), cache, &mut logits)?;
        collector.after_step(model)?;
    }
    let ids = history.split_off(generated_from);
    let generation = Generation { ids, stop_reason, prefill, decode: start.elapsed(), decode_steps, token_gaps, signal_hidden: collector.into_runs() };
    Ok((generation, cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy<'a>(max_new_tokens: usize, stop: &'a [u32]) -> Decoding<'a> {
        Decoding::new(&GenerationConfig { max_new_tokens, ..Default::default() }, stop)
    }

    #[test]
    fn the_loop_feeds_each_token_once_and_grows_the_cache_by_one() {
        let mut model = ScriptedModel::new(vec![7, 8, 9], 3, 16, 64);
        let g = generate(&mut model, StepInput::Ids(&[1, 2]), &[1, 2], &mut greedy(5, &[3]), |_| Ok(())).unwrap();
        assert_eq!(g.ids, vec![7, 8, 9, 3]);
        assert_eq!(g.stop_reason, StopReason::StopToken);
        assert_eq!(model.fed, vec![vec![1, 2], vec![7], vec![8], vec![9]], "the stop token is never fed");
        assert_eq!(model.cache_lens, vec![0, 2, 3, 4]);
    }

    #[test]
    fn budget_and_context_end_generation() {
        let cases = [
            ("budget", 3usize, 64usize, vec![7, 8, 9], StopReason::MaxTokens),
            ("zero budget", 0, 64, vec![], StopReason::MaxTokens),
            ("context", 100, 4, vec![7, 8, 9], StopReason::ContextFull),
            ("huge budget", usize::MAX, 5, vec![7, 8, 9, 1], StopReason::ContextFull),
        ];
        for (what, budget, context, ids, reason) in cases {
            let mut model = ScriptedModel::new(vec![7, 8, 9], 1, 16, context);
            let g = generate(&mut model, StepInput::Ids(&[1, 2]), &[1, 2], &mut greedy(budget, &[]), |_| Ok(())).unwrap();
            assert_eq!((g.ids, g.stop_reason), (ids, reason), "{what}");
            assert!(model.cache_lens.iter().all(|&n| n < context), "{what}: never fed past the context");
        }
    }

    #[test]
    fn prompt_filling_the_context_is_an_error() {
        let mut model = ScriptedModel::new(vec![], 1, 16, 2);
        let err = generate(&mut model, StepInput::Ids(&[1, 2]), &[1, 2], &mut greedy(4, &[]), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("context length is 2"), "{err}");
    }

    #[test]
    fn processors_see_the_prompt_and_the_generated_ids() {
        // Token 7 is favoured every step; a penalty of 10 on seen tokens moves
        // greedy to the runner-up once 7 is in the history (here: in the prompt).
        struct Runnerup;
        impl LogitsProcessor for Runnerup {
            fn process(&mut self, logits: &mut [f32], _: &StepContext<'_>) {
                logits[4] = 0.5;
            }
        }
        let config = GenerationConfig { max_new_tokens: 2, repetition_penalty: 10.0, ..Default::default() };
        let mut decoding = Decoding::new(&config, &[]).with_processor(Runnerup);
        let mut model = ScriptedModel::new(vec![7, 7], 7, 16, 64);
        let g = generate(&mut model, StepInput::Ids(&[7]), &[7], &mut decoding, |_| Ok(())).unwrap();
        assert_eq!(g.ids, vec![4, 4]);
    }
}
