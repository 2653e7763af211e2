//! Input projector stage: encoder features -> the LLM's embedding space.

use std::time::{Duration, Instant};

use ort::value::DynValue;

use super::graph::StageLoader;
use super::single::SingleIoGraph;
use crate::error::Result;
use crate::manifest::ProjectorStage;

/// A linear / MLP / cross-attention projector.
pub struct InputProjector {
    /// `features [n, tokens, d_enc]` -> `embeddings [n, tokens, d_llm]`
    graph: SingleIoGraph,
}

impl InputProjector {
    /// Open the projector graph of `stage`.
    pub fn open(loader: &StageLoader<'_>, stage: &ProjectorStage) -> Result<Self> {
        Ok(Self { graph: SingleIoGraph::open(loader, &stage.name, &stage.graph, &stage.input, &stage.output)? })
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        self.graph.stage()
    }

    /// Project encoder features (the encoder's output value is moved in as is
    /// when its element type matches).
    pub fn project(&mut self, features: DynValue) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let embeddings = self.graph.run(features)?;
        Ok((embeddings, start.elapsed()))
    }
}
