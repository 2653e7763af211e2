//! Logits processors: small steps that adjust next-token logits (or force the
//! next token) before a sampler chooses, composed in a [`ProcessorChain`] in
//! the order `transformers`' `generate()` applies its own.

use super::signals::SignalTokens;

/// Where the loop stands when it asks for the next token.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Ids seen so far: the prompt (where the caller gives it) then the generated ids.
    pub history: &'a [u32],
    /// Ids generated so far (a suffix of `history`).
    pub generated: &'a [u32],
}

/// One adjustment of next-token logits.
pub trait LogitsProcessor: Send {
    /// Adjust `logits` `[vocab]` in place.
    fn process(&mut self, logits: &mut [f32], step: &StepContext<'_>) {
        let _ = (logits, step);
    }

    /// A token that must come next regardless of the logits (checked before
    /// [`Self::process`]; the sampler is then not consulted).
    fn forced(&self, step: &StepContext<'_>) -> Option<u32> {
        let _ = step;
        None
    }
}

/// Processors applied in order.
#[derive(Default)]
pub struct ProcessorChain(Vec<Box<dyn LogitsProcessor>>);

impl ProcessorChain {
    /// An empty chain (logits pass through unchanged).
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `processor` (it runs after the ones already there).
    pub fn with(mut self, processor: impl LogitsProcessor + 'static) -> Self {
        self.0.push(Box::new(processor));
        self
    }

    /// Append `processor` when it is `Some`.
    pub fn with_opt(self, processor: Option<impl LogitsProcessor + 'static>) -> Self {
        match processor {
            Some(p) => self.with(p),
            None => self,
        }
    }

    /// The first processor's forced token, if any.
    pub fn forced(&self, step: &StepContext<'_>) -> Option<u32> {
        self.0.iter().find_map(|p| p.forced(step))
    }

    /// Run every processor over `logits`.
    pub fn process(&mut self, logits: &mut [f32], step: &StepContext<'_>) {
        for p in &mut self.0 {
            p.process(logits, step);
        }
    }
}

/// CTRL-style penalty on tokens already in `history` (prompt included): a
/// positive logit is divided by the penalty, a negative one multiplied, once
/// per distinct token — the rule `transformers` uses.
pub struct RepetitionPenalty {
    penalty: f32,
    seen: Vec<bool>,
}

impl RepetitionPenalty {
    /// `None` when `penalty` is 1 (no effect).
    pub fn new(penalty: f32) -> Option<Self> {
        (penalty != 1.0).then(|| Self { penalty, seen: Vec::new() })
    }
}

impl LogitsProcessor for RepetitionPenalty {
    fn process(&mut self, logits: &mut [f32], step: &StepContext<'_>) {
        apply_repetition_penalty(logits, step.history, self.penalty, &mut self.seen);
    }
}

/// Divide positive logits / multiply negative ones of already-seen tokens by
/// `penalty`. Ids out of range are ignored. `seen` is scratch space reused
/// across calls (left all-false on return).
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32, seen: &mut Vec<bool>) {
    if penalty == 1.0 {
        return;
    }
    seen.resize(logits.len(), false);
    // A token seen twice is penalized once.
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let l = &mut logits[i];
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
    for &id in history {
        if let Some(s) = seen.get_mut(id as usize) {
            *s = false;
        }
    }
}

/// Tokens that may never be generated (Whisper's `suppress_tokens`), or only
/// not as the first generated token (`begin_suppress_tokens`).
pub struct SuppressTokens {
    tokens: Vec<u32>,
    first_only: bool,
}

impl SuppressTokens {
    /// Suppress `tokens` at every step; `None` when there are none.
    pub fn always(tokens: &[u32]) -> Option<Self> {
        (!tokens.is_empty()).then(|| Self { tokens: tokens.to_vec(), first_only: false })
    }

    /// Suppress `tokens` for the first generated token only; `None` when there are none.
    pub fn at_begin(tokens: &[u32]) -> Option<Self> {
        (!tokens.is_empty()).then(|| Self { tokens: tokens.to_vec(), first_only: true })
    }
}

impl LogitsProcessor for SuppressTokens {
    fn process(&mut self, logits: &mut [f32], step: &StepContext<'_>) {
        if self.first_only && !step.generated.is_empty() {
            return;
        }
        for &t in &self.tokens {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Once a run of signal tokens has begun (`[IMG0]` generated), force the rest
/// of the run, one per step (NExT-GPT's training makes runs complete).
///
/// The run in progress is read off the generated ids: the longest proper
/// prefix of the run that the generated ids end with (signal ids are
/// distinct, which the manifest check guarantees, so that prefix is unique).
pub struct SignalForcing {
    ids: Vec<u32>,
}

impl SignalForcing {
    /// Force the runs of `signals`.
    pub fn new(signals: &SignalTokens) -> Self {
        Self { ids: signals.ids.clone() }
    }
}

impl LogitsProcessor for SignalForcing {
    fn forced(&self, step: &StepContext<'_>) -> Option<u32> {
        (1..self.ids.len()).rev().find(|&j| step.generated.ends_with(&self.ids[..j])).map(|j| self.ids[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(history: &'a [u32], generated: &'a [u32]) -> StepContext<'a> {
        StepContext { history, generated }
    }

    #[test]
    fn repetition_penalty_follows_ctrl_rule() {
        let mut logits = [2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 1], 2.0, &mut Vec::new());
        assert_eq!(logits, [1.0, -4.0, 1.0]);
        assert!(RepetitionPenalty::new(1.0).is_none());
    }

    #[test]
    fn begin_suppression_applies_to_the_first_token_only() {
        let mut p = SuppressTokens::at_begin(&[1]).unwrap();
        let mut first = [0.0, 1.0, 0.5];
        p.process(&mut first, &ctx(&[7], &[]));
        assert_eq!(first, [0.0, f32::NEG_INFINITY, 0.5]);
        let mut later = [0.0, 1.0, 0.5];
        p.process(&mut later, &ctx(&[7, 2], &[2]));
        assert_eq!(later, [0.0, 1.0, 0.5]);
        assert!(SuppressTokens::always(&[]).is_none());
    }

    #[test]
    fn signal_forcing_completes_runs_only() {
        let f = SignalForcing::new(&SignalTokens { ids: vec![20, 21, 22] });
        let cases: [(&[u32], Option<u32>); 6] =
            [(&[], None), (&[7], None), (&[7, 20], Some(21)), (&[20, 21], Some(22)), (&[20, 21, 22], None), (&[21], None)];
        for (generated, want) in cases {
            assert_eq!(f.forced(&ctx(generated, generated)), want, "{generated:?}");
        }
    }

    #[test]
    fn chain_applies_in_order_and_reports_the_first_forced_token() {
        let mut chain = ProcessorChain::new()
            .with_opt(RepetitionPenalty::new(2.0))
            .with_opt(SuppressTokens::always(&[0]))
            .with(SignalForcing::new(&SignalTokens { ids: vec![3, 4] }));
        let mut logits = [4.0, 4.0, 1.0, 0.0, 0.0];
        chain.process(&mut logits, &ctx(&[1], &[]));
        assert_eq!(logits, [f32::NEG_INFINITY, 2.0, 1.0, 0.0, 0.0]);
        assert_eq!(chain.forced(&ctx(&[3], &[3])), Some(4));
    }
}
