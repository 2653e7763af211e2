//! NExT-GPT style signal tokens (`[IMG0]` … `[IMG{k-1}]`): the hidden states
//! at a complete run become an output projector's input. Forcing the rest of a
//! run is a logits processor ([`super::logits::SignalForcing`]); collecting the
//! hidden states is this module's [`SignalCollector`], fed by the loop after
//! every forward pass.

use super::model::DecoderModel;
use crate::error::{Error, Result};

/// The signal tokens of an output projector, as ids in run order.
///
/// Once the first is generated, the other `k - 1` are forced, one per step
/// (so a run is always complete), unless the token budget or the context ends
/// generation first. The hidden state at a signal token is the last hidden
/// state of the forward pass whose *input* is that token; for a run's last
/// token that pass runs after the loop if generation stopped right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTokens {
    /// Ids in run order; at least one, all distinct.
    pub ids: Vec<u32>,
}

/// A run in progress: tokens emitted and hidden states collected so far.
struct PendingRun {
    emitted: usize,
    collected: usize,
    hidden: Vec<f32>,
}

/// Tracks runs of signal tokens and keeps the hidden states of complete ones.
pub(crate) struct SignalCollector<'a> {
    ids: &'a [u32],
    pending: Option<PendingRun>,
    scratch: Vec<f32>,
    runs: Vec<Vec<f32>>,
}

impl<'a> SignalCollector<'a> {
    pub(crate) fn new(signals: Option<&'a SignalTokens>) -> Self {
        let ids = signals.map(|s| s.ids.as_slice()).unwrap_or(&[]);
        Self { ids, pending: None, scratch: Vec::new(), runs: Vec::new() }
    }

    /// Note an emitted token: a run starts at the first signal id, continues
    /// through forced ones, and is abandoned at any other sampled token.
    pub(crate) fn emitted(&mut self, token: u32, forced: bool) {
        if self.ids.first() == Some(&token) {
            self.pending = Some(PendingRun { emitted: 1, collected: 0, hidden: Vec::new() });
        } else if !forced {
            self.pending = None;
        } else if let Some(p) = self.pending.as_mut() {
            p.emitted += 1;
        }
    }

    /// After a forward pass whose input was a token of the pending run, keep its hidden state.
    pub(crate) fn after_step<M: DecoderModel + ?Sized>(&mut self, model: &mut M) -> Result<()> {
        let Some(run) = self.pending.as_mut() else { return Ok(()) };
        if !model.last_hidden_state(&mut self.scratch)? {
            return Err(Error::Tensor {
                stage: model.name().into(),
                tensor: "outputs.hidden_states".into(),
                expected: "the last hidden state (signal tokens need it for the output projector)".into(),
                found: "a decoder that returns none".into(),
            });
        }
        run.hidden.extend_from_slice(&self.scratch);
        run.collected += 1;
        if run.collected == self.ids.len() {
            self.runs.push(std::mem::take(&mut run.hidden));
            self.pending = None;
        }
        Ok(())
    }

    /// Whether a complete run still lacks its last hidden state (generation
    /// stopped right after emitting the run's last token).
    pub(crate) fn needs_final_pass(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.emitted == self.ids.len() && p.collected + 1 == p.emitted)
    }

    /// The hidden states of every complete run, `[k, d_model]` row-major each.
    pub(crate) fn into_runs(self) -> Vec<Vec<f32>> {
        self.runs
    }
}
