//! Output projector stage: the LLM's hidden states at one run of signal tokens
//! -> the conditioning of a modality generator (NExT-GPT's `TextFcLayer`:
//! an MLP or a small transformer with learned queries).

use std::time::{Duration, Instant};

use ndarray::ArrayD;

use super::graph::StageLoader;
use super::single::SingleIoGraph;
use crate::error::{Error, Result};
use crate::manifest::{Modality, OutputProjectorStage};
use crate::tensor;

/// An output projector graph.
pub struct OutputProjector {
    modality: Modality,
    /// `hidden_states [1, k, d_llm]` -> `conditioning [1, n_cond, d_cond]`
    graph: SingleIoGraph,
}

impl OutputProjector {
    /// Open the graph of `stage`.
    pub fn open(loader: &StageLoader<'_>, stage: &OutputProjectorStage) -> Result<Self> {
        let graph = SingleIoGraph::open(loader, &stage.name, &stage.graph, &stage.input, &stage.output)?;
        Ok(Self { modality: stage.modality, graph })
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        self.graph.stage()
    }

    /// The modality whose generator it conditions.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Project one run's hidden states `[k * d_llm]` (row-major `[k, d_llm]`) to
    /// conditioning `[1, n_cond, d_cond]`.
    pub fn project(&mut self, hidden: &[f32], k: usize) -> Result<(ArrayD<f32>, Duration)> {
        let start = Instant::now();
        if k == 0 || hidden.is_empty() || hidden.len() % k != 0 {
            return Err(Error::Tensor {
                stage: self.name().into(),
                tensor: self.graph.input().into(),
                expected: format!("hidden states of {k} signal tokens"),
                found: format!("{} values", hidden.len()),
            });
        }
        let d = hidden.len() / k;
        let array = ArrayD::from_shape_vec(vec![1, k, d], hidden.to_vec()).expect("k * d values");
        let input = tensor::float_value(array, self.graph.input_type(), self.graph.stage(), self.graph.input())?;
        let conditioning = tensor::to_f32_array(&self.graph.run(input)?, self.graph.stage(), self.graph.output())?;
        if conditioning.ndim() != 3 || conditioning.shape()[0] != 1 {
            return Err(Error::Tensor {
                stage: self.name().into(),
                tensor: self.graph.output().into(),
                expected: "[1, n_cond, d_cond]".into(),
                found: format!("{:?}", conditioning.shape()),
            });
        }
        Ok((conditioning, start.elapsed()))
    }
}
