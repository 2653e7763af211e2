//! Modality encoder stages: preprocessed media -> feature vectors. The image
//! encoder (ViT / CLIP vision tower) takes a batch of preprocessed images; the
//! audio encoder (Whisper-style) takes one window's log-mel features.
//!
//! Shapes:
//! * image: `pixel_values [n, 3, H, W]` -> `image_features [n, tokens, d_enc]`
//! * audio: `input_features [1, n_mels, frames]` -> `encoder_hidden_states [1, positions, d]`

use std::time::{Duration, Instant};

use ndarray::Array4;
use ort::value::{DynValue, TensorElementType};

use super::graph::StageLoader;
use super::single::SingleIoGraph;
use crate::error::{Error, Result};
use crate::manifest::{AudioPreprocess, EncoderStage, ImagePreprocess, Layout, Preprocess, TensorDtype};
use crate::runtime::session;
use crate::preprocess::audio::LogMel;
use crate::tensor;

/// An image encoder (ViT / CLIP vision tower).
pub struct ImageEncoder {
    /// `pixel_values [n, 3, H, W]` -> `image_features [n, tokens, d_enc]`
    graph: SingleIoGraph,
    preprocess: ImagePreprocess,
}

impl ImageEncoder {
    /// Open the encoder graph of `stage` (an image stage, or a video stage for
    /// its frames). The manifest's preprocessing dtype
    /// must be the graph's input type, and the preprocessed size (the crop,
    /// else an exact resize) and layout must match the input's static
    /// dimensions where the graph declares them.
    pub fn open(loader: &StageLoader<'_>, stage: &EncoderStage) -> Result<Self> {
        let preprocess = match &stage.preprocess {
            Preprocess::Image(preprocess) => preprocess,
            Preprocess::Video(video) => &video.image,
            Preprocess::Audio(_) => return Err(Error::Request(format!("stage \"{}\" is not an image or video encoder", stage.name))),
        };
        let graph = SingleIoGraph::open(loader, &stage.name, &stage.graph, &stage.input, &stage.output)?;
        let declared = match preprocess.dtype {
            TensorDtype::Float32 => TensorElementType::Float32,
            TensorDtype::Float16 => TensorElementType::Float16,
        };
        if graph.input_type() != declared {
            return Err(Error::Tensor {
                stage: stage.name.clone(),
                tensor: stage.input.clone(),
                expected: format!("{declared:?} (preprocess.dtype in bundle.json)"),
                found: format!("{:?} declared by {}", graph.input_type(), stage.graph),
            });
        }
        let size = preprocess.crop.or(preprocess.resize.exact).map(|s| (s.height as usize, s.width as usize));
        let (h, w) = (size.map(|s| s.0), size.map(|s| s.1));
        let wanted = match preprocess.layout {
            Layout::Nchw => [None, Some(3), h, w],
            Layout::Nhwc => [None, h, w, Some(3)],
        };
        let dims = graph.input_dims();
        session::check_dims(&stage.name, &stage.input, dims.as_deref(), &wanted, "`preprocess` (crop / resize size and layout) in bundle.json")?;
        Ok(Self { graph, preprocess: preprocess.clone() })
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        self.graph.stage()
    }

    /// Preprocessing this encoder expects.
    pub fn preprocess(&self) -> &ImagePreprocess {
        &self.preprocess
    }

    /// Encode a batch of preprocessed images `[n, 3, H, W]` into features
    /// (kept as an ONNX Runtime value for the projector).
    pub fn encode(&mut self, pixels: Array4<f32>) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let input = tensor::float_value(pixels.into_dyn(), self.graph.input_type(), self.graph.stage(), self.graph.input())?;
        let features = self.graph.run(input)?;
        Ok((features, start.elapsed()))
    }
}

/// The audio encoder with its log-mel front end.
pub struct AudioEncoder {
    /// `input_features [1, n_mels, frames]` -> `encoder_hidden_states [1, positions, d]`
    graph: SingleIoGraph,
    settings: AudioPreprocess,
    log_mel: LogMel,
}

impl AudioEncoder {
    /// Open the encoder graph and check its input agrees with the manifest's preprocessing.
    pub fn open(loader: &StageLoader<'_>, stage: &EncoderStage) -> Result<Self> {
        let Preprocess::Audio(settings) = &stage.preprocess else {
            return Err(Error::Request(format!("stage \"{}\" is not an audio encoder", stage.name)));
        };
        let manifest_path = loader.bundle.root.join(crate::bundle::MANIFEST_FILE);
        let log_mel = LogMel::new(settings).map_err(|source| Error::Audio { path: manifest_path, source })?;
        let graph = SingleIoGraph::open(loader, &stage.name, &stage.graph, &stage.input, &stage.output)?;
        // The graph's static [_, n_mels, frames] must match what the preprocessing produces.
        if let Some(dims) = graph.input_dims() {
            let want = [log_mel.n_mels(), log_mel.frames()];
            let ok = dims.len() == 3 && dims[1..].iter().zip(want).all(|(d, w)| d.is_none_or(|d| d as usize == w));
            if !ok {
                return Err(Error::Tensor {
                    stage: stage.name.clone(),
                    tensor: stage.input.clone(),
                    expected: format!("[batch, {}, {}] (n_mels, chunk_seconds * sample_rate / hop_length from bundle.json)", want[0], want[1]),
                    found: format!("{dims:?} declared by {}", stage.graph),
                });
            }
        }
        Ok(Self { graph, settings: settings.clone(), log_mel })
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        self.graph.stage()
    }

    /// The manifest's preprocessing settings.
    pub fn settings(&self) -> &AudioPreprocess {
        &self.settings
    }

    /// The log-mel front end.
    pub fn log_mel(&self) -> &LogMel {
        &self.log_mel
    }

    /// Encode one window's features `[n_mels * frames]` (row-major) into encoder states.
    pub fn encode(&mut self, features: Vec<f32>) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let shape = [1, self.log_mel.n_mels(), self.log_mel.frames()];
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), features).map_err(|e| Error::Tensor {
            stage: self.graph.stage().into(),
            tensor: self.graph.input().into(),
            expected: format!("{shape:?}"),
            found: e.to_string(),
        })?;
        let input = tensor::float_value(array, self.graph.input_type(), self.graph.stage(), self.graph.input())?;
        Ok((self.graph.run(input)?, start.elapsed()))
    }
}
