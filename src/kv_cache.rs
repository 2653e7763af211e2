//! The decoder's key/value cache as ONNX Runtime values.
//!
//! A step's `present.*` outputs become the next step's `past_key_values.*`
//! inputs by *moving* the values: the cache is never copied on the host, and
//! because it stays an ONNX Runtime value, a GPU provider can keep it in device
//! memory without a redesign.

use ort::value::DynValue;

/// Past key/value tensors for every layer, in feeding order
/// (layer 0 key, layer 0 value, layer 1 key, ...), each `[batch, kv_heads, seq_len, head_dim]`.
pub struct KvCache {
    values: Vec<DynValue>,
    seq_len: usize,
}

impl KvCache {
    /// Wrap tensors holding `seq_len` positions.
    pub fn new(values: Vec<DynValue>, seq_len: usize) -> Self {
        Self { values, seq_len }
    }

    /// Positions already cached (the next token's position id).
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The tensors, in feeding order.
    pub fn values(&self) -> &[DynValue] {
        &self.values
    }

    /// Take the tensors out to feed them (by move) to the next step.
    pub fn into_values(self) -> Vec<DynValue> {
        self.values
    }
}
