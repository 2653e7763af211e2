//! The executable stages of a bundle, one ONNX Runtime session per graph,
//! all opened through a [`graph::StageLoader`]: modality encoders, input
//! projectors, the decoder (LLM backbone or encoder-decoder text decoder, one
//! type over the shared [`io`] role objects), output projectors and modality
//! generators (denoiser and decoder graphs); and the consistency generator of
//! a standalone generator bundle.

pub mod consistency;
pub mod decoder;
pub mod encoder;
pub mod generator;
pub mod graph;
pub mod io;
pub mod output_projector;
pub mod projector;
pub mod q8_dot;
pub mod seq2seq;
pub mod single;
pub mod token_table;

pub(crate) use graph::run_named;
