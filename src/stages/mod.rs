//! The executable stages of a bundle, one ONNX Runtime session each:
//! modality encoders, input projectors, the LLM decoder (with its token
//! embedding graph), output projectors, modality generators (denoiser and
//! decoder graphs), and the encoder-decoder speech path (audio encoder,
//! cross-attention projection, text decoder).

pub mod decoder;
pub mod encoder;
pub mod generator;
pub mod output_projector;
pub mod projector;
pub mod single;
pub mod seq2seq;

use std::borrow::Cow;

use ort::session::{Session, SessionInputValue};
use ort::value::DynValue;

use crate::error::{Error, Result};

/// Run `session` on named inputs and take the named outputs out, in order.
pub(crate) fn run_named(
    session: &mut Session,
    stage: &str,
    inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)>,
    outputs: &[&str],
) -> Result<Vec<DynValue>> {
    let mut results = session.run(inputs).map_err(|e| Error::stage(stage, "running the graph", e))?;
    outputs
        .iter()
        .map(|name| {
            results.remove(*name).ok_or_else(|| Error::Tensor {
                stage: stage.into(),
                tensor: (*name).into(),
                expected: "an output of the graph".into(),
                found: "no such output".into(),
            })
        })
        .collect()
}
