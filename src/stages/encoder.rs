//! Modality encoder stage: preprocessed media -> feature vectors.

use std::time::{Duration, Instant};

use ndarray::Array4;
use ort::session::Session;
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, ImagePreprocess, Layout, Preprocess, TensorDtype};
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
    /// The manifest's preprocessing dtype must be the graph's input type, and
    /// the preprocessed size (the crop, else an exact resize) and layout must
    /// match the input's static dimensions where the graph declares them.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &EncoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let Preprocess::Image(preprocess) = &stage.preprocess else {
            return Err(Error::Request(format!("stage \"{}\" is not an image encoder", stage.name)));
        };
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(&stage.graph)?, &stage.name, config)?;
        let input_type = session::input_type(&session, &stage.name, &stage.input)?;
        session::require_output(&session, &stage.name, &stage.output)?;
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
        let size = preprocess.crop.or(preprocess.resize.exact).map(|s| (s.height as usize, s.width as usize));
        let (h, w) = (size.map(|s| s.0), size.map(|s| s.1));
        let wanted = match preprocess.layout {
            Layout::Nchw => [None, Some(3), h, w],
            Layout::Nhwc => [None, h, w, Some(3)],
        };
        let dims = session::input_dims(&session, &stage.input);
        session::check_dims(&stage.name, &stage.input, dims.as_deref(), &wanted, "`preprocess` (crop / resize size and layout) in bundle.json")?;
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
