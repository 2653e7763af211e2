//! Role objects for a decoder graph's inputs and outputs, shared by the
//! decoder-only LLM and the encoder-decoder text decoder (the way
//! onnxruntime-genai's `Logits`, `KeyValueCache`, `PositionInputs` are):
//! the KV cache ([`kv`]), attention mask and position ids ([`positions`]),
//! and the logits / last hidden state outputs ([`logits`]).

pub mod kv;
pub mod logits;
pub mod positions;

pub use kv::{KvCache, KvLayout};
pub use logits::OutputRows;
pub use positions::PositionInputs;
