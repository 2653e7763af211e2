//! The decoder's key/value cache as ONNX Runtime values.
//!
//! A step's `present.*` outputs become the next step's `past_key_values.*`
//! inputs by *moving* the values: the cache is never copied on the host, and
//! because it stays an ONNX Runtime value, a GPU provider can keep it in device
//! memory without a redesign.

use ort::session::Session;
use ort::value::{DynValue, TensorElementType};

use crate::error::{Error, Result};
use crate::runtime::session;

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

    /// A deep copy, for beam search only (two continuations of one beam need
    /// their own caches); the normal decode path moves the cache instead.
    pub fn duplicate(&self, stage: &str) -> Result<KvCache> {
        let values = self
            .values
            .iter()
            .map(|v| {
                let dtype = crate::tensor::element_type(v).unwrap_or(TensorElementType::Float32);
                crate::tensor::float_value(crate::tensor::to_f32_array(v, stage, "past key/value")?, dtype, stage, "past key/value")
            })
            .collect::<Result<_>>()?;
        Ok(KvCache::new(values, self.seq_len))
    }

    /// Take the tensors out to feed them (by move) to the next step.
    pub fn into_values(self) -> Vec<DynValue> {
        self.values
    }
}

/// Element type and shape `[1, kv_heads, 0, head_dim]` of an empty past input,
/// from the graph's declared past shape: heads must be static, head_dim static
/// or given by the manifest,
/// batch and sequence may be symbolic.
pub fn empty_past_spec(session: &Session, stage: &str, name: &str, head_dim: Option<usize>) -> Result<(TensorElementType, Vec<usize>)> {
    let dtype = session::input_type(session, stage, name)?;
    let dims = session::input_dims(session, name).unwrap_or_default();
    let bad = || Error::Tensor {
        stage: stage.into(),
        tensor: name.into(),
        expected: "shape [batch, kv_heads, past_seq, head_dim] with static kv_heads and head_dim (or `kv_cache.head_dim` in the manifest)".into(),
        found: format!("{dims:?}"),
    };
    if dims.len() != 4 {
        return Err(bad());
    }
    let heads = dims[1].ok_or_else(bad)?;
    let head_dim = match (dims[3], head_dim) {
        (Some(graph), Some(manifest)) if graph as usize != manifest => return Err(bad()),
        (Some(graph), _) => graph as usize,
        (None, Some(manifest)) => manifest,
        (None, None) => return Err(bad()),
    };
    Ok((dtype, vec![1, heads as usize, 0, head_dim]))
}
