//! The per-position outputs of a decoder graph the loop reads: logits (the
//! last row, every step) and the last hidden state (kept as a value; its
//! last row copied only when an output projector asks).

use ort::session::SessionOutputs;
use ort::value::DynValue;

use crate::error::Result;
use crate::stages::graph::take_output;
use crate::tensor;

/// The logits output and the optional hidden-state output of a decoder graph.
pub struct OutputRows {
    /// `logits [batch, n, vocab]` (batch > 1: the beams of a beam search).
    logits: String,
    /// `hidden_states [1, n, d_model]`, when the manifest names it.
    hidden: Option<String>,
    /// The hidden states of the latest step (moved out of the graph's outputs).
    last_hidden: Option<DynValue>,
}

impl OutputRows {
    /// Outputs named `logits` and, optionally, `hidden`.
    pub fn new(logits: String, hidden: Option<String>) -> Self {
        Self { logits, hidden, last_hidden: None }
    }

    /// The logits output's name.
    pub fn logits_name(&self) -> &str {
        &self.logits
    }

    /// The hidden-state output's name, when there is one.
    pub fn hidden_name(&self) -> Option<&str> {
        self.hidden.as_deref()
    }

    /// Take this step's outputs: the last position's logits row of every batch entry into `logits`, the hidden states kept.
    pub fn take(&mut self, outputs: &mut SessionOutputs<'_>, stage: &str, logits: &mut Vec<f32>) -> Result<()> {
        let value = take_output(outputs, stage, &self.logits)?;
        tensor::last_rows_f32(&value, stage, &self.logits, logits)?;
        if let Some(hidden) = &self.hidden {
            self.last_hidden = Some(take_output(outputs, stage, hidden)?);
        }
        Ok(())
    }

    /// Copy the last row of the latest step's hidden states into `out`;
    /// `Ok(false)` when the graph has no hidden-state output.
    pub fn last_hidden_row(&self, stage: &str, out: &mut Vec<f32>) -> Result<bool> {
        match (&self.last_hidden, &self.hidden) {
            (Some(value), Some(name)) => {
                tensor::last_rows_f32(value, stage, name, out)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
