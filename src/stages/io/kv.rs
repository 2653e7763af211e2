//! The decoder's key/value cache as ONNX Runtime values, and the layout that
//! names, checks and allocates it.
//!
//! A step's `present.*` outputs become the next step's `past.*` inputs by
//! *moving* the values: the cache is never copied on the host. With
//! `kv_cache.shared_buffer`, past and present are one preallocated
//! preallocated buffer per tensor, bound as both input and output and
//! updated by the graph in place; the buffer starts at [`INITIAL_CAPACITY`]
//! positions and doubles (up to `context_length`) when a step needs more, so
//! a short run does not hold a whole context's keys and values (SmolLM2's
//! 4096 positions are 188 MiB).

use ort::value::{DynTensor, DynTensorValueType, DynValue, TensorElementType};

use crate::error::{Error, Result};
use crate::runtime::device::{require_host, require_host_value};
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

    /// The cache of a batch of beams rearranged by parent: row `i` of every
    /// tensor `[beams, heads, seq, head_dim]` becomes the old row `parents[i]`.
    /// With the same number of beams only the rows that change are written,
    /// in place (each source row is read before any is overwritten); a new
    /// number of beams (the first expansion of the prompt's cache) makes new
    /// tensors. Separate tensors only: a shared buffer is bound in place and
    /// its graph runs with batch 1.
    pub fn select_rows(self, parents: &[usize], stage: &str) -> Result<KvCache> {
        let batch = self.values.first().map_or(0, |v| tensor::dims(v).first().copied().unwrap_or(0) as usize);
        if let Some(&bad) = parents.iter().find(|&&p| p >= batch) {
            return Err(Error::Request(format!("stage \"{stage}\": beam {bad} selected from a cache of {batch} beams")));
        }
        if parents.len() == batch && parents.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self);
        }
        let values = self.values.into_iter().map(|v| select_tensor_rows(v, parents, stage)).collect::<Result<_>>()?;
        Ok(KvCache::new(values, self.seq_len))
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
    /// zeroed `[1, kv_heads, capacity, head_dim]` tensor per past input,
    /// allocated once per generation in the memory the stage computes in. On
    /// the host the capacity starts at [`INITIAL_CAPACITY`] (or the context,
    /// whichever is smaller) and grows; in device memory it is the whole
    /// context at once, so the buffers never need a device-side copy.
    pub fn new_cache(&self, graph: &mut StageGraph) -> Result<KvCache> {
        let capacity = if graph.device().is_host() { INITIAL_CAPACITY.min(self.context_length) } else { self.context_length };
        let mut values = Vec::with_capacity(self.empty.len());
        for ((dtype, shape), name) in self.empty.iter().zip(&self.past) {
            let value = if self.shared_buffer {
                zeroed_buffer(graph, *dtype, [shape[0], shape[1], capacity, shape[3]], name)?
            } else {
                tensor::zeros(shape, *dtype, graph.stage(), name)?
            };
            values.push(value);
        }
        Ok(KvCache::new(values, 0))
    }

    /// `cache` with room for `positions` in its shared buffers: the same
    /// buffers when they are large enough, otherwise new ones of double the
    /// capacity (at least `positions`, at most the context) holding a copy of
    /// the filled positions. Separate tensors grow by themselves.
    pub fn reserve(&self, graph: &mut StageGraph, cache: KvCache, positions: usize) -> Result<KvCache> {
        let capacity = cache.values.first().map_or(0, |v| tensor::dims(v).get(2).copied().unwrap_or(0) as usize);
        if !self.shared_buffer || positions <= capacity {
            return Ok(cache);
        }
        let grown = positions.max(capacity * 2).next_multiple_of(64).min(self.context_length).max(positions);
        let stage = graph.stage().to_string();
        let filled = cache.seq_len;
        let mut values = Vec::with_capacity(cache.values.len());
        for ((old, (dtype, shape)), name) in cache.values.iter().zip(&self.empty).zip(&self.past) {
            let mut new = zeroed_tensor(graph, *dtype, [shape[0], shape[1], grown, shape[3]], name)?;
            copy_positions(old, &mut new, filled, &stage, name)?;
            values.push(new.into_dyn());
        }
        log::debug!("stage {stage}: KV buffers grown from {capacity} to {grown} positions");
        Ok(KvCache::new(values, filled))
    }
}

/// Positions a shared KV buffer holds before its first growth.
pub const INITIAL_CAPACITY: usize = 256;

/// One zeroed `shape` tensor from the allocator of the memory the stage computes in.
fn zeroed_buffer(graph: &mut StageGraph, dtype: TensorElementType, shape: [usize; 4], name: &str) -> Result<DynValue> {
    zeroed_tensor(graph, dtype, shape, name).map(DynTensor::into_dyn)
}

fn zeroed_tensor(graph: &mut StageGraph, dtype: TensorElementType, shape: [usize; 4], name: &str) -> Result<DynTensor> {
    let stage = graph.stage().to_string();
    let bytes = shape
        .iter()
        .try_fold(tensor::element_size(dtype, &stage, name)?, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Tensor { stage: stage.clone(), tensor: name.into(), expected: "a KV buffer size that fits in memory".into(), found: format!("{shape:?}") })?;
    let device = graph.device();
    if !device.is_host() {
        // Attention kernels read whole tiles past the filled positions and mask them after
        // the product: stale NaNs there would survive the mask, so device buffers start zeroed
        // too (one upload per generation).
        let zeros = tensor::zeros(&shape, dtype, &stage, name)?.downcast::<ort::value::DynTensorValueType>().map_err(|e| Error::stage(&stage, "preparing a KV buffer", e))?;
        let mut buffer = DynTensor::new(&device.allocator(graph.session(), &stage)?, dtype, shape).map_err(|e| Error::stage(&stage, &format!("allocating the KV buffer {name} in device memory"), e))?;
        zeros.copy_into(&mut buffer).map_err(|e| Error::stage(&stage, &format!("zeroing the KV buffer {name} in device memory"), e))?;
        return Ok(buffer);
    }
    let mut buffer = DynTensor::new(graph.session_mut().allocator(), dtype, shape)
        .map_err(|e| Error::stage(&stage, &format!("allocating the KV buffer {name}"), e))?;
    require_host(buffer.memory_info(), &stage, name, "zeroing the KV buffer")?;
    // SAFETY: the tensor was just allocated in host memory with exactly `bytes` bytes of plain numbers.
    unsafe { std::ptr::write_bytes(buffer.data_ptr_mut().cast::<u8>(), 0, bytes) };
    Ok(buffer)
}

/// Copy the first `filled` positions of every head of `old`
/// `[1, heads, capacity, head_dim]` into `new` `[1, heads, larger, head_dim]`.
fn copy_positions(old: &DynValue, new: &mut DynTensor, filled: usize, stage: &str, name: &str) -> Result<()> {
    let (from, to) = (tensor::dims(old), new.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default());
    let dtype = tensor::element_type(old).unwrap_or(TensorElementType::Float32);
    let size = tensor::element_size(dtype, stage, name)?;
    let fits = from.len() == 4 && to.len() == 4 && from[0] == 1 && from[1] == to[1] && from[3] == to[3] && filled as i64 <= from[2] && from[2] <= to[2];
    if !fits || new.dtype().tensor_type() != Some(dtype) {
        return Err(Error::Tensor { stage: stage.into(), tensor: name.into(), expected: format!("a KV buffer to grow, [1, heads, >= {filled}, head_dim]"), found: format!("{from:?} into {to:?}") });
    }
    require_host_value(old, stage, name, "growing the KV buffer")?;
    require_host(new.memory_info(), stage, name, "growing the KV buffer")?;
    let (heads, head_dim) = (from[1] as usize, from[3] as usize);
    let (old_stride, new_stride) = (from[2] as usize * head_dim * size, to[2] as usize * head_dim * size);
    let src = old.view().downcast::<DynTensorValueType>().map_err(|e| Error::stage(stage, "reading a KV buffer", e))?.data_ptr().cast::<u8>();
    let dst = new.data_ptr_mut().cast::<u8>();
    for h in 0..heads {
        // SAFETY: both buffers are host tensors of the checked shapes and element
        // size; head `h`'s first `filled` rows lie inside each, and they do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.add(h * old_stride), dst.add(h * new_stride), filled * head_dim * size) };
    }
    Ok(())
}

/// `value` `[batch, ...]` with row `i` taken from row `parents[i]` (every
/// parent below `batch`, checked by the caller).
fn select_tensor_rows(value: DynValue, parents: &[usize], stage: &str) -> Result<DynValue> {
    let name = "past key/value";
    let dims = tensor::dims(&value);
    let dtype = tensor::element_type(&value).unwrap_or(TensorElementType::Float32);
    let mut old = value.downcast::<DynTensorValueType>().map_err(|e| Error::stage(stage, "reading a KV tensor", e))?;
    if !old.memory_info().is_cpu_accessible() {
        // The prompt's cache, made on a GPU: its rows are rearranged on the host (beam
        // steps then keep their caches there).
        old = old.to(ort::memory::AllocationDevice::CPU, 0).map_err(|e| Error::stage(stage, "copying a KV tensor to the host", e))?;
    }
    if !old.memory_info().is_cpu_accessible() || dims.len() != 4 || dims.iter().any(|&d| d < 0) {
        return Err(Error::Tensor { stage: stage.into(), tensor: name.into(), expected: "a host tensor [beams, heads, seq, head_dim]".into(), found: format!("{dims:?}") });
    }
    let row = dims[1..].iter().product::<i64>() as usize * tensor::element_size(dtype, stage, name)?;
    let batch = dims[0] as usize;
    let shape: Vec<usize> = std::iter::once(parents.len()).chain(dims[1..].iter().map(|&d| d as usize)).collect();
    if row == 0 {
        return tensor::zeros(&shape, dtype, stage, name);
    }
    if parents.len() == batch {
        let data = old.data_ptr_mut().cast::<u8>();
        // SAFETY: a host tensor of `batch` rows of `row` bytes each, every index below `batch`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(data, batch * row) };
        rearrange_rows(bytes, row, parents);
        return Ok(old.into_dyn());
    }
    let mut new = DynTensor::new(&ort::memory::Allocator::default(), dtype, shape).map_err(|e| Error::stage(stage, "allocating a beam KV tensor", e))?;
    let (src, dst) = (old.data_ptr().cast::<u8>(), new.data_ptr_mut().cast::<u8>());
    for (i, &p) in parents.iter().enumerate() {
        // SAFETY: row `p` lies inside `old` (`p < batch`), row `i` inside `new`; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.add(p * row), dst.add(i * row), row) };
    }
    Ok(new.into_dyn())
}

/// Rows of `row` bytes rearranged in place so that row `i` becomes the old
/// row `parents[i]` (`parents.len()` rows); rows that keep their parent are not touched.
fn rearrange_rows(bytes: &mut [u8], row: usize, parents: &[usize]) {
    let moved: Vec<usize> = (0..parents.len()).filter(|&i| parents[i] != i).collect();
    let mut sources: Vec<usize> = moved.iter().map(|&i| parents[i]).collect();
    sources.sort_unstable();
    sources.dedup();
    let saved: Vec<u8> = sources.iter().flat_map(|&p| bytes[p * row..(p + 1) * row].iter().copied()).collect();
    for i in moved {
        let at = sources.binary_search(&parents[i]).expect("every moved row's parent was saved");
        bytes[i * row..(i + 1) * row].copy_from_slice(&saved[at * row..(at + 1) * row]);
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

#[cfg(test)]
mod tests {
    use super::rearrange_rows;

    #[test]
    fn rows_are_rearranged_by_parent_in_place() {
        // Four rows of two bytes: row r holds [r, 10 + r].
        let mut bytes: Vec<u8> = (0..4u8).flat_map(|r| [r, 10 + r]).collect();
        // Row 0 keeps itself, rows 1 and 2 continue row 0 and row 3 swaps with 1.
        let parents = [0, 0, 3, 1];
        rearrange_rows(&mut bytes, 2, &parents);
        let expected: Vec<u8> = parents.iter().flat_map(|&p| [p as u8, 10 + p as u8]).collect();
        assert_eq!(bytes, expected);
    }
}
