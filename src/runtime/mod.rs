//! ONNX Runtime plumbing: finding and loading the shared library, choosing
//! execution providers, and opening one session per stage graph.
//!
//! Everything here is model-agnostic; stages only ask for a [`Session`] and
//! read its input/output metadata.
//!
//! [`Session`]: ort::session::Session

pub mod cuda_libs;
pub mod ep;
pub mod graph_cache;
pub mod library;
pub mod plan;
pub mod session;

pub use ep::{ExecutionProviderKind, ProviderReport};
pub use library::{OrtRuntime, RuntimeInfo};
pub use plan::{SessionPlan, StageSession};
pub use session::SessionConfig;
