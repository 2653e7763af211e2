//! Modality encoder stage: preprocessed media -> feature vectors.

use std::time::{Duration, Instant};

use ndarray::Array4;
use ort::session::Session;
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, ImagePreprocess, Preprocess, TensorDtype};
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;

/// An image encoder (ViT / CLIP vision tower).
pub struct ImageEncoder {
    name: String,
    /// `pixel_values [n, 3, H, W]` -> `image_features [n, tokens, d_enc]`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
    preprocess: ImagePreprocess,
}

impl ImageEncoder {
    /// Open the encoder graph of `stage`; returns the provider fallback reason, if any.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &EncoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let Preprocess::Image(preprocess) = &stage.preprocess else {
            return Err(Error::Request(format!("stage \"{}\" is not an image encoder", stage.name)));
        };
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(&stage.graph)?, &stage.name, config)?;
        let input_type = session::input_type(&session, &stage.name, &stage.input)?;
        let declared = match preprocess.dtype {
            TensorDtype::Float32 => TensorElementType::Float32,
            TensorDtype::Float16 => TensorElementType::Float16,
        };
        if input_type != declared {
            return Err(Error::Tensor {
                stage: stage.name.clone(),
                tensor: stage.input.clone(),
                expected: format!("{declared:?} (preprocess.dtype in bundle.json)"),
                found: format!("{input_type:?} declared by {}", stage.graph),
            });
        }
        session::require_output(&session, &stage.name, &stage.output)?;
        let encoder = Self {
            name: stage.name.clone(),
            session,
            input: stage.input.clone(),
            input_type,
            output: stage.output.clone(),
            preprocess: preprocess.clone(),
        };
        Ok((encoder, fallback))
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Preprocessing this encoder expects.
    pub fn preprocess(&self) -> &ImagePreprocess {
        &self.preprocess
    }

    /// Encode a batch of preprocessed images `[n, 3, H, W]` into features
    /// (kept as an ONNX Runtime value for the projector).
    pub fn encode(&mut self, pixels: Array4<f32>) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let input = crate::tensor::float_value(pixels.into_dyn(), self.input_type, &self.name, &self.input)?;
        let mut out = super::run_named(&mut self.session, &self.name, vec![(self.input.as_str().into(), input.into())], &[&self.output])?;
        Ok((out.remove(0), start.elapsed()))
    }
}
