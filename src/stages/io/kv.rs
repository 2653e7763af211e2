//! The decoder's key/value cache as ONNX Runtime values, and the layout that
//! names, checks and allocates it.
//!
//! A step's `present.*` outputs become the next step's `past.*` inputs by
//! *moving* the values: the cache is never copied on the host. With
//! `kv_cache.shared_buffer`, past and present are one preallocated
//! `context_length` buffer per tensor, bound as both input and output and
//! updated by the graph in place.

use ort::value::{DynValue, TensorElementType};

use crate::error::{Error, Result};
use crate::generate::DecoderCache;
use crate::manifest::KvCacheNames;
use crate::stages::graph::StageGraph;
use crate::tensor;

/// Past key/value tensors for every layer, in feeding order
/// (layer 0 key, layer 0 value, layer 1 key, ...), each `[batch, kv_heads, seq_len, head_dim]`
/// (`[.., context_length, ..]` for a shared buffer, of which `seq_len` positions are filled).
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
                let dtype = tensor::element_type(v).unwrap_or(TensorElementType::Float32);
                tensor::float_value(tensor::to_f32_array(v, stage, "past key/value")?, dtype, stage, "past key/value")
            })
            .collect::<Result<_>>()?;
        Ok(KvCache::new(values, self.seq_len))
    }

    /// The cache cut to its first `len` positions (`len` at most
    /// [`Self::seq_len`]). A shared buffer keeps its tensors: the positions past
    /// `len` are overwritten by the next step before the mask lets any be read.
    /// Separate tensors `[1, kv_heads, seq, head_dim]` are copied to
    /// `[1, kv_heads, len, head_dim]` in their element type.
    pub fn truncate(self, len: usize, shared_buffer: bool, stage: &str) -> Result<KvCache> {
        if len > self.seq_len {
            return Err(Error::Request(format!("stage \"{stage}\": cannot cut a cache of {} positions to {len}", self.seq_len)));
        }
        if shared_buffer || len == self.seq_len {
            return Ok(KvCache::new(self.values, len));
        }
        let values = self
            .values
            .iter()
            .map(|v| {
                let dtype = tensor::element_type(v).unwrap_or(TensorElementType::Float32);
                let all = tensor::to_f32_array(v, stage, "past key/value")?;
                if all.ndim() != 4 || all.shape()[2] < len {
                    return Err(Error::Tensor {
                        stage: stage.into(),
                        tensor: "past key/value".into(),
                        expected: format!("[1, kv_heads, seq >= {len}, head_dim]"),
                        found: format!("{:?}", all.shape()),
                    });
                }
                let kept = all.slice(ndarray::s![.., .., ..len, ..]).to_owned().into_dyn();
                tensor::float_value(kept, dtype, stage, "past key/value")
            })
            .collect::<Result<_>>()?;
        Ok(KvCache::new(values, len))
    }

    /// Take the tensors out to feed them (by move) to the next step.
    pub fn into_values(self) -> Vec<DynValue> {
        self.values
    }
}

impl DecoderCache for KvCache {
    fn seq_len(&self) -> usize {
        self.seq_len
    }
}

/// The past/present tensors of one decoder graph: names in feeding order,
/// element type and empty shape of each, and whether they share a buffer.
pub struct KvLayout {
    past: Vec<String>,
    present: Vec<String>,
    /// Element type and `[1, kv_heads, 0, head_dim]` of each past input.
    empty: Vec<(TensorElementType, Vec<usize>)>,
    shared_buffer: bool,
    context_length: usize,
}

impl KvLayout {
    /// Read the layout of `graph` from the manifest's names, checking every
    /// past input and present output exists before anything is allocated.
    pub fn open(graph: &StageGraph, names: &KvCacheNames, context_length: usize) -> Result<Self> {
        // Two inputs per layer: bound the name list by the graph before building it.
        let inputs = graph.session().inputs().len();
        if names.num_layers.checked_mul(2).is_none_or(|n| n > inputs) {
            return Err(Error::Tensor {
                stage: graph.stage().into(),
                tensor: "kv_cache.num_layers".into(),
                expected: format!("at most {} layers (the graph has {inputs} inputs, two per layer at least)", inputs / 2),
                found: names.num_layers.to_string(),
            });
        }
        let past = names.past_names();
        let present = names.present_names();
        for name in &present {
            graph.require_output(name)?;
        }
        let empty = past.iter().map(|p| empty_past_spec(graph, p, names.head_dim)).collect::<Result<_>>()?;
        Ok(Self { past, present, empty, shared_buffer: names.shared_buffer, context_length })
    }

    /// Past input names in feeding order.
    pub fn past_names(&self) -> &[String] {
        &self.past
    }

    /// Present output names, in the order of [`Self::past_names`].
    pub fn present_names(&self) -> &[String] {
        &self.present
    }

    /// Whether past and present are one buffer updated in place.
    pub fn shared_buffer(&self) -> bool {
        self.shared_buffer
    }

    /// A cache holding no positions: empty tensors, or for a shared buffer one
    /// zeroed `[1, kv_heads, context_length, head_dim]` tensor per past input,
    /// allocated once per generation as fresh zero pages: only the pages of
    /// positions the graph writes become resident (a 4096-position buffer
    /// costs what the conversation uses, not its full size).
    pub fn new_cache(&self, graph: &mut StageGraph) -> Result<KvCache> {
        let mut values = Vec::with_capacity(self.empty.len());
        for ((dtype, shape), name) in self.empty.iter().zip(&self.past) {
            let value = if self.shared_buffer {
                self.zeroed_buffer(graph, *dtype, [shape[0], shape[1], self.context_length, shape[3]], name)?
            } else {
                tensor::zeros(shape, *dtype, graph.stage(), name)?
            };
            values.push(value);
        }
        Ok(KvCache::new(values, 0))
    }

    fn zeroed_buffer(&self, graph: &mut StageGraph, dtype: TensorElementType, shape: [usize; 4], name: &str) -> Result<DynValue> {
        let stage = graph.stage().to_string();
        let elements = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|n| n.checked_mul(tensor::element_size(dtype, &stage, name).unwrap_or(8)).is_some())
            .ok_or_else(|| Error::Tensor { stage: stage.clone(), tensor: name.into(), expected: "a KV buffer size that fits in memory".into(), found: format!("{shape:?}") })?;
        tensor::lazy_zeros(&shape, elements, dtype, &stage, name)
    }
}

/// Element type and shape `[1, kv_heads, 0, head_dim]` of an empty past input,
/// from the graph's declared past shape: heads must be static, head_dim static
/// or given by the manifest, batch and sequence may be symbolic.
fn empty_past_spec(graph: &StageGraph, name: &str, head_dim: Option<usize>) -> Result<(TensorElementType, Vec<usize>)> {
    let dtype = graph.input_type(name)?;
    let dims = graph.input_dims(name).unwrap_or_default();
    let bad = || Error::Tensor {
        stage: graph.stage().into(),
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
