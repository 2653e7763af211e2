//! A graph with one named input and one named output: the shape shared by
//! modality encoders, input projectors and output projectors.

use ort::session::Session;
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::Result;
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;
use crate::tensor;

/// One session plus the names and declared type of its input and output.
pub struct SingleIoGraph {
    stage: String,
    /// `input` -> `output`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
}

impl SingleIoGraph {
    /// Open `graph` (bundle-relative) for `stage`, checking both tensor names
    /// exist; returns the provider fallback reason, if any.
    pub fn open(
        runtime: &OrtRuntime,
        bundle: &Bundle,
        stage: &str,
        graph: &str,
        input: &str,
        output: &str,
        config: &SessionConfig,
    ) -> Result<(Self, Option<String>)> {
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(graph)?, stage, config)?;
        let input_type = session::input_type(&session, stage, input)?;
        session::require_output(&session, stage, output)?;
        let graph = Self { stage: stage.into(), session, input: input.into(), input_type, output: output.into() };
        Ok((graph, fallback))
    }

    /// The stage name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The input tensor's name.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The output tensor's name.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Element type the graph declares for its input.
    pub fn input_type(&self) -> TensorElementType {
        self.input_type
    }

    /// Run on `value`: fed as is when its element type is the declared one
    /// (no host copy), converted otherwise.
    pub fn run(&mut self, value: DynValue) -> Result<DynValue> {
        let value = tensor::cast_float(value, self.input_type, &self.stage, &self.input)?;
        let mut out = super::run_named(&mut self.session, &self.stage, vec![(self.input.as_str().into(), value.into())], &[&self.output])?;
        Ok(out.remove(0))
    }
}
