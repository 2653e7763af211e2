//! Output projector stage: the LLM's hidden states at one run of signal tokens
//! -> the conditioning of a modality generator (NExT-GPT's `TextFcLayer`:
//! an MLP or a small transformer with learned queries).

use std::time::{Duration, Instant};

use ndarray::ArrayD;
use ort::session::Session;
use ort::value::TensorElementType;

use super::graph::StageLoader;
use crate::error::{Error, Result};
use crate::manifest::{Modality, OutputProjectorStage};
use crate::runtime::session;
use crate::tensor;

/// An output projector graph.
pub struct OutputProjector {
    name: String,
    modality: Modality,
    /// `hidden_states [1, k, d_llm]` -> `conditioning [1, n_cond, d_cond]`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
}

impl OutputProjector {
    /// Open the graph of `stage`.
    /// A graph that declares a static signal-token axis (`[batch, k, d]`) must
    /// declare as many as the manifest lists (`signal_tokens`).
    pub fn open(loader: &StageLoader<'_>, stage: &OutputProjectorStage) -> Result<Self> {
        let session = loader.open(&stage.name, &stage.graph)?.into_session();
        let input_type = session::input_type(&session, &stage.name, &stage.input)?;
        session::require_output(&session, &stage.name, &stage.output)?;
        let declared = session::input_dims(&session, &stage.input);
        let wanted = [None, Some(stage.signal_tokens.len()), None];
        session::check_dims(&stage.name, &stage.input, declared.as_deref(), &wanted, "the number of `signal_tokens` in bundle.json")?;
        let projector = Self {
            name: stage.name.clone(),
            modality: stage.modality,
            session,
            input: stage.input.clone(),
            input_type,
            output: stage.output.clone(),
        };
        Ok(projector)
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The modality whose generator it conditions.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Static dimensions the graph declares for its conditioning output (`None`: symbolic).
    pub fn output_dims(&self) -> Option<Vec<Option<i64>>> {
        session::output_dims(&self.session, &self.output)
    }

    /// Project one run's hidden states `[k * d_llm]` (row-major `[k, d_llm]`) to
    /// conditioning `[1, n_cond, d_cond]`.
    pub fn project(&mut self, hidden: &[f32], k: usize) -> Result<(ArrayD<f32>, Duration)> {
        let start = Instant::now();
        if k == 0 || hidden.is_empty() || hidden.len() % k != 0 {
            return Err(Error::Tensor {
                stage: self.name.clone(),
                tensor: self.input.clone(),
                expected: format!("hidden states of {k} signal tokens"),
                found: format!("{} values", hidden.len()),
            });
        }
        let d = hidden.len() / k;
        let array = ArrayD::from_shape_vec(vec![1, k, d], hidden.to_vec()).expect("k * d values");
        let input = tensor::float_value(array, self.input_type, &self.name, &self.input)?;
        let mut out = super::run_named(&mut self.session, &self.name, vec![(self.input.as_str().into(), input.into())], &[&self.output])?;
        let conditioning = tensor::to_f32_array(&out.remove(0), &self.name, &self.output)?;
        if conditioning.ndim() != 3 || conditioning.shape()[0] != 1 {
            return Err(Error::Tensor {
                stage: self.name.clone(),
                tensor: self.output.clone(),
                expected: "[1, n_cond, d_cond]".into(),
                found: format!("{:?}", conditioning.shape()),
            });
        }
        Ok((conditioning, start.elapsed()))
    }
}
