//! A graph with one named input and one named output: the shape shared by
//! modality encoders, input projectors, output projectors and the token
//! embedding graph.

use ort::value::{DynValue, TensorElementType};

use super::graph::{StageGraph, StageLoader};
use crate::error::Result;
use crate::tensor;

/// One graph plus the names and declared type of its input and output.
pub struct SingleIoGraph {
    /// `input` -> `output`
    graph: StageGraph,
    input: String,
    input_type: TensorElementType,
    output: String,
}

impl SingleIoGraph {
    /// Open `graph` (bundle-relative) for `stage`, checking both tensor names exist.
    pub fn open(loader: &StageLoader<'_>, stage: &str, graph: &str, input: &str, output: &str) -> Result<Self> {
        let graph = loader.open(stage, graph)?;
        let input_type = graph.input_type(input)?;
        graph.require_output(output)?;
        Ok(Self { graph, input: input.into(), input_type, output: output.into() })
    }

    /// The stage name.
    pub fn stage(&self) -> &str {
        self.graph.stage()
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

    /// Static dimensions of the input (`None` for symbolic ones).
    pub fn input_dims(&self) -> Option<Vec<Option<i64>>> {
        self.graph.input_dims(&self.input)
    }

    /// Run on `value`: fed as is when its element type is the declared one
    /// (no host copy), converted otherwise.
    pub fn run(&mut self, value: DynValue) -> Result<DynValue> {
        let value = tensor::cast_float(value, self.input_type, self.graph.stage(), &self.input)?;
        let mut out = self.graph.run(vec![(self.input.as_str().into(), value.into())], &[&self.output])?;
        Ok(out.remove(0))
    }
}
