//! Pictures through the image encoder by way of the embedding cache: the one
//! path for images and for video frames. Each item is preprocessed alone,
//! looked up by content, and only the misses go through the encoder, as one
//! batch; hits skip it entirely.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::{Array2, Array4, Axis, Ix2};

use super::cache::{self, CacheKey, CacheStats, EmbeddingCache};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, Layout, Modality};
use crate::runtime::{OrtRuntime, SessionPlan};
use crate::preprocess;
use crate::stages::encoder::ImageEncoder;
use crate::stages::graph::StageLoader;
use crate::tensor;

/// An image encoder with its preprocessing and the shared cache.
pub struct FrameEncoder {
    encoder: ImageEncoder,
    identity: CacheKey,
    cache: Arc<EmbeddingCache>,
}

/// Features of a run of items and what it cost.
pub struct EncodedFrames {
    /// `[tokens, d_enc]` per item, in item order.
    pub features: Vec<Arc<Array2<f32>>>,
    /// Encoder time (zero when every item was a hit).
    pub encode_time: Duration,
    /// Hits and misses of these items.
    pub cache: CacheStats,
}

impl FrameEncoder {
    /// Open the encoder of an image or video `stage` (a video stage's per-frame preprocessing).
    pub fn open(loader: &StageLoader<'_>, stage: &EncoderStage, cache: Arc<EmbeddingCache>) -> Result<Self> {
        let encoder = ImageEncoder::open(loader, stage)?;
        let identity = cache::encoder_identity(loader.bundle, &stage.graph, &stage.input, &stage.output)?;
        Ok(Self { encoder, identity, cache })
    }

    /// The `modality` (image or video) encoder of `bundle` alone, for a thread
    /// of its own that fills `cache` ahead of a pipeline sharing it (`mmrt watch`).
    pub fn open_standalone(runtime: &OrtRuntime, bundle: &Bundle, plan: &SessionPlan, modality: Modality, cache: Arc<EmbeddingCache>) -> Result<Self> {
        let stage = bundle.manifest.encoder(modality).ok_or_else(|| Error::Request(format!("bundle \"{}\" has no {modality} encoder", bundle.name())))?;
        let plan = plan.for_manifest(&bundle.manifest)?;
        Self::open(&StageLoader::new(runtime, bundle, &plan), stage, cache)
    }

    /// Preprocess and encode one picture through the cache.
    pub fn encode_picture(&mut self, rgb: &RgbImage, label: &Path) -> Result<EncodedFrames> {
        let item = self.preprocess(rgb, label)?;
        self.encode(std::slice::from_ref(&item))
    }

    /// The encoder stage's name.
    pub fn name(&self) -> &str {
        self.encoder.name()
    }

    /// One picture as the encoder's input `[1, 3, H, W]` (or NHWC); `label` names it in errors.
    pub fn preprocess(&self, rgb: &RgbImage, label: &Path) -> Result<Array4<f32>> {
        preprocess::image::preprocess(std::slice::from_ref(rgb), self.encoder.preprocess())
            .map_err(|source| Error::Image { path: label.to_path_buf(), source })
    }

    /// `(height, width)` of a preprocessed item, for size errors.
    pub fn item_size(&self, item: &Array4<f32>) -> (u32, u32) {
        let s = item.shape();
        match self.encoder.preprocess().layout {
            Layout::Nchw => (s[2] as u32, s[3] as u32),
            Layout::Nhwc => (s[1] as u32, s[2] as u32),
        }
    }

    /// `Some(((first_height, first_width), (height, width)))` when `item` cannot
    /// share an encoder batch with `first` (without a crop, pictures can come out
    /// of preprocessing at different sizes).
    pub fn size_mismatch(&self, first: &Array4<f32>, item: &Array4<f32>) -> Option<((u32, u32), (u32, u32))> {
        (first.shape() != item.shape()).then(|| (self.item_size(first), self.item_size(item)))
    }

    /// Features of `items` (each `[1, ...]`, all one shape): cached ones
    /// looked up, the rest encoded as one batch and remembered.
    pub fn encode(&mut self, items: &[Array4<f32>]) -> Result<EncodedFrames> {
        let keys: Vec<CacheKey> = items.iter().map(|item| cache::item_key(&self.identity, item.view())).collect();
        // This call's counts (the cache's own are shared by every thread).
        let mut stats = CacheStats::default();
        let mut features: Vec<Option<Arc<Array2<f32>>>> = keys
            .iter()
            .map(|key| {
                let (hit, found) = self.cache.lookup(key);
                stats.record(found);
                hit
            })
            .collect();
        let missing: Vec<usize> = (0..items.len()).filter(|&i| features[i].is_none()).collect();
        let mut encode_time = Duration::ZERO;
        if !missing.is_empty() {
            let start = Instant::now();
            let views: Vec<_> = missing.iter().map(|&i| items[i].view()).collect();
            let batch = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Request(format!("{} batch: {e}", self.name())))?;
            let (value, _) = self.encoder.encode(batch)?;
            let encoded = tensor::to_f32_array(&value, self.encoder.name(), "output")?;
            encode_time = start.elapsed();
            let dims = encoded.shape().to_vec();
            let [n, _, _] = dims[..] else {
                return Err(self.bad_output(missing.len(), &dims));
            };
            if n != missing.len() {
                return Err(self.bad_output(missing.len(), &dims));
            }
            for (row, &i) in encoded.outer_iter().zip(&missing) {
                let item = row.into_dimensionality::<Ix2>().expect("rank 3 checked").to_owned();
                features[i] = Some(self.cache.put(keys[i], item));
            }
        }
        let features = features.into_iter().map(|f| f.expect("every item filled")).collect();
        Ok(EncodedFrames { features, encode_time, cache: stats })
    }

    fn bad_output(&self, n: usize, dims: &[usize]) -> Error {
        Error::Tensor { stage: self.name().into(), tensor: "output".into(), expected: format!("[{n}, tokens, d_enc]"), found: format!("{dims:?}") }
    }
}

/// `[n, tokens, d]` from per-item `[tokens, d]` features (all one shape), as an f32 array.
pub fn stack(features: &[Arc<Array2<f32>>], stage: &str) -> Result<ndarray::Array3<f32>> {
    let views: Vec<_> = features.iter().map(|f| f.view()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| Error::Tensor {
        stage: stage.into(),
        tensor: "output".into(),
        expected: "one [tokens, d_enc] shape for every item".into(),
        found: e.to_string(),
    })
}
