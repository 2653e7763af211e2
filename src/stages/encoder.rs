//! Modality encoder stage: preprocessed media -> feature vectors.

use std::time::{Duration, Instant};

use ndarray::Array4;
use ort::value::{DynValue, TensorElementType};

use super::single::SingleIoGraph;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, ImagePreprocess, Preprocess, TensorDtype};
use crate::runtime::session::SessionConfig;
use crate::runtime::OrtRuntime;

/// An image encoder (ViT / CLIP vision tower).
pub struct ImageEncoder {
    /// `pixel_values [n, 3, H, W]` -> `image_features [n, tokens, d_enc]`
    graph: SingleIoGraph,
    preprocess: ImagePreprocess,
}

impl ImageEncoder {
    /// Open the encoder graph of `stage`; returns the provider fallback reason, if any.
    /// The manifest's preprocessing dtype must be the graph's input type.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &EncoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let Preprocess::Image(preprocess) = &stage.preprocess else {
            return Err(Error::Request(format!("stage \"{}\" is not an image encoder", stage.name)));
        };
        let (graph, fallback) = SingleIoGraph::open(runtime, bundle, &stage.name, &stage.graph, &stage.input, &stage.output, config)?;
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
        Ok((Self { graph, preprocess: preprocess.clone() }, fallback))
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
        let input = crate::tensor::float_value(pixels.into_dyn(), self.graph.input_type(), self.graph.stage(), self.graph.input())?;
        let features = self.graph.run(input)?;
        Ok((features, start.elapsed()))
    }
}
