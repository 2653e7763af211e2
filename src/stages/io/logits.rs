//! The per-position outputs of a decoder graph the loop reads: logits (the
//! last row, every step; or computed from the last hidden row by the token
//! table) and the last hidden state (kept as a value; its last row copied
//! only when an output projector asks).

use ort::memory::MemoryInfo;
use ort::session::{IoBinding, SessionOutputs};
use ort::value::DynValue;

use crate::error::Result;
use crate::stages::graph::take_output;
use crate::stages::token_table::TokenTable;
use crate::tensor;

/// The logits output and the optional hidden-state output of a decoder graph.
pub struct OutputRows {
    /// `logits [batch, n, vocab]` (batch > 1: the beams of a beam search);
    /// `None`: the token table computes them from the hidden states.
    logits: Option<String>,
    /// `hidden_states [1, n, d_model]`, when the manifest names it.
    hidden: Option<String>,
    /// The hidden states of the latest step (moved out of the graph's outputs).
    last_hidden: Option<DynValue>,
    /// The last hidden row of every batch entry (token-table logits), reused.
    rows: Vec<f32>,
}

impl OutputRows {
    /// Outputs named `logits` and, optionally, `hidden`.
    pub fn new(logits: Option<String>, hidden: Option<String>) -> Self {
        Self { logits, hidden, last_hidden: None, rows: Vec::new() }
    }

    /// Bind the logits and hidden-state outputs (those the graph has) to
    /// `memory`: the host, where [`Self::take`] reads their rows.
    pub fn bind_to(&self, binding: &mut IoBinding, memory: &MemoryInfo<'_>) -> ort::Result<()> {
        for name in self.logits.iter().chain(&self.hidden) {
            binding.bind_output_to_device(name.as_str(), memory)?;
        }
        Ok(())
    }

    /// Take this step's outputs: the last position's logits row of every
    /// batch entry into `logits` (from the graph, or from `table` over the
    /// last hidden rows), the hidden states kept.
    pub fn take(&mut self, outputs: &mut SessionOutputs<'_>, stage: &str, table: Option<&mut TokenTable>, logits: &mut Vec<f32>) -> Result<()> {
        if let Some(hidden) = &self.hidden {
            self.last_hidden = Some(take_output(outputs, stage, hidden)?);
        }
        match (&self.logits, table, &self.last_hidden, &self.hidden) {
            (Some(name), _, _, _) => tensor::last_rows_f32(&take_output(outputs, stage, name)?, stage, name, logits),
            (None, Some(table), Some(value), Some(name)) => {
                tensor::last_rows_f32(value, stage, name, &mut self.rows)?;
                table.logits(&self.rows, logits)
            }
            _ => Err(crate::error::Error::Request(format!("stage \"{stage}\": no logits output and no token table to compute them"))),
        }
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
