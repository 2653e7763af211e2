//! ONNX Runtime plumbing: finding and loading the shared library, choosing
//! execution providers, and opening one session per stage graph.
//!
//! Everything here is model-agnostic; stages only ask for a [`Session`] and
//! read its input/output metadata.
//!
//! [`Session`]: ort::session::Session

pub mod cuda_libs;
pub mod device;
pub mod ep;
pub mod graph_cache;
pub mod gguf_op;
pub mod library;
pub mod placement;
pub mod plan;
pub mod provider_options;
pub mod session;
pub mod tensorrt;

pub use ep::{ExecutionProviderKind, ProviderReport, StageProviders};
pub use library::{OrtRuntime, RuntimeInfo};
pub use plan::{SessionPlan, StageSession};
pub use session::SessionConfig;
