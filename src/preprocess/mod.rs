//! Native preprocessing of raw media before the modality encoder graphs: decoding,
//! resizing, cropping and normalizing happen here in Rust, never inside a graph,
//! so a bundle's preprocessing is exactly what its manifest describes.

pub mod audio;
pub mod config;
pub mod image;
pub mod wav;
