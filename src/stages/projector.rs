//! Input projector stage: encoder features -> the LLM's embedding space.

use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::Result;
use crate::manifest::ProjectorStage;
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;

/// A linear / MLP / cross-attention projector.
pub struct InputProjector {
    name: String,
    /// `features [n, tokens, d_enc]` -> `embeddings [n, tokens, d_llm]`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
}

impl InputProjector {
    /// Open the projector graph of `stage`; returns the provider fallback reason, if any.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &ProjectorStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(&stage.graph)?, &stage.name, config)?;
        let input_type = session::input_type(&session, &stage.name, &stage.input)?;
        session::require_output(&session, &stage.name, &stage.output)?;
        let projector = Self {
            name: stage.name.clone(),
            session,
            input: stage.input.clone(),
            input_type,
            output: stage.output.clone(),
        };
        Ok((projector, fallback))
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Project encoder features. The encoder's output value is fed as is when
    /// its element type matches (no host copy); otherwise it is converted.
    pub fn project(&mut self, features: DynValue) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let features = if crate::tensor::element_type(&features) == Some(self.input_type) {
            features
        } else {
            let host = crate::tensor::to_f32_array(&features, &self.name, &self.input)?;
            crate::tensor::float_value(host, self.input_type, &self.name, &self.input)?
        };
        let mut out =
            super::run_named(&mut self.session, &self.name, vec![(self.input.as_str().into(), features.into())], &[&self.output])?;
        Ok((out.remove(0), start.elapsed()))
    }
}
