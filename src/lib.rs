//! mmrt runs multimodal large language models on edge devices.
//!
//! Each stage of an MM-LLM (modality encoder → input projector → LLM decoder →
//! output projector → modality generator) is its own ONNX graph, executed by
//! ONNX Runtime; this crate is the orchestrator that glues them together.
//!
//! ```no_run
//! use mmrt::{Bundle, Pipeline, Request, runtime::{OrtRuntime, SessionConfig}};
//! # fn main() -> mmrt::Result<()> {
//! let runtime = OrtRuntime::load(None)?;
//! let bundle = Bundle::open("models/tiny")?;
//! let mut pipeline = Pipeline::load(&runtime, bundle, &SessionConfig::default())?;
//! let out = pipeline.run(&Request::new("Describe the image.").with_images(["cat.png"]), |piece| {
//!     print!("{piece}");
//!     Ok(())
//! })?;
//! println!("\n{} tokens", out.token_ids.len());
//! # Ok(())
//! # }
//! ```

pub mod bundle;
pub mod chat;
pub mod diffusion;
pub mod error;
pub mod generate;
pub mod import;
pub mod limits;
pub mod manifest;
pub mod media;
pub mod onnx_proto;
pub mod output_side;
pub mod pipeline;
pub mod preprocess;
pub mod prompt;
pub mod quant;
pub mod runtime;
pub mod stages;
pub mod tensor;
pub mod tokenizer;
pub mod tts;
pub mod vad;
pub mod verified;
pub mod video;

pub use bundle::Bundle;
pub use error::{Error, Result};
pub use pipeline::{Output, Pipeline, Request};
