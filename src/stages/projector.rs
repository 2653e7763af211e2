//! Input projector stage: encoder features -> the LLM's embedding space.

use std::time::{Duration, Instant};

use ort::value::DynValue;

use super::single::SingleIoGraph;
use crate::bundle::Bundle;
use crate::error::Result;
use crate::manifest::ProjectorStage;
use crate::runtime::session::SessionConfig;
use crate::runtime::OrtRuntime;

/// A linear / MLP / cross-attention projector.
pub struct InputProjector {
    /// `features [n, tokens, d_enc]` -> `embeddings [n, tokens, d_llm]`
    graph: SingleIoGraph,
}

impl InputProjector {
    /// Open the projector graph of `stage`; returns the provider fallback reason, if any.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &ProjectorStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let (graph, fallback) = SingleIoGraph::open(runtime, bundle, &stage.name, &stage.graph, &stage.input, &stage.output, config)?;
        Ok((Self { graph }, fallback))
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
