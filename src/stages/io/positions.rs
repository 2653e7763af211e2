//! The attention mask and position ids a decoder graph may take, built for
//! each step from the cache length (batch 1, no padding).

use ort::value::{DynValue, TensorElementType};

use crate::error::Result;
use crate::tensor;

/// Names and element types of the optional mask and position inputs.
pub struct PositionInputs {
    /// `attention_mask [1, past + n]`: all ones.
    mask: Option<(String, TensorElementType)>,
    /// `position_ids [1, n]`: `past .. past + n`.
    positions: Option<(String, TensorElementType)>,
}

impl PositionInputs {
    /// The inputs a graph takes (`None`: it does not take that input).
    pub fn new(mask: Option<(String, TensorElementType)>, positions: Option<(String, TensorElementType)>) -> Self {
        Self { mask, positions }
    }

    /// No mask, no positions (the graph derives them from the cache).
    pub fn none() -> Self {
        Self { mask: None, positions: None }
    }

    /// Whether the graph takes neither input.
    pub fn is_none(&self) -> bool {
        self.mask.is_none() && self.positions.is_none()
    }

    /// The values for a step over positions `past .. total`.
    pub fn values(&self, stage: &str, past: usize, total: usize) -> Result<Vec<(&str, DynValue)>> {
        let mut out = Vec::with_capacity(2);
        if let Some((name, dtype)) = &self.mask {
            out.push((name.as_str(), tensor::int_value(&[1, total], vec![1; total], *dtype, stage, name)?));
        }
        if let Some((name, dtype)) = &self.positions {
            out.push((name.as_str(), tensor::int_value(&[1, total - past], (past as i64..total as i64).collect(), *dtype, stage, name)?));
        }
        Ok(out)
    }
}
