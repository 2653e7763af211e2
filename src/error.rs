//! The one error type of mmrt: every failure names what was expected, what was
//! found, and where (stage, tensor, file), so the CLI can print one clear line.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a command line and generated text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No ONNX Runtime library could be loaded from any candidate location.
    #[error("could not load the ONNX Runtime library; tried:\n{tried}\nfix: run `bash .ci/setup-ort` (downloads it into .cache/onnxruntime), `pip install onnxruntime`, or pass --ort-lib PATH / set MMRT_ORT_LIB")]
    OrtNotFound {
        /// One line per candidate: path and why it failed.
        tried: String,
    },
    /// `bundle.json` is malformed or inconsistent.
    #[error("invalid manifest {}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model folder without `bundle.json` whose manifest cannot be inferred
    /// (see [`crate::import`]).
    #[error("cannot use {} as a model folder: {message}", path.display())]
    Import {
        /// The folder, or the config file that says what was wrong.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A file of the bundle (or a request input) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A generated file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output directory for generated media is unusable.
    #[error("output directory {}: {message}", path.display())]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A bundle file's sha256 differs from the manifest's.
    #[error("checksum mismatch for {}: manifest says {expected}, file has {found}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Manifest value.
        expected: String,
        /// Computed value.
        found: String,
    },
    /// An input image could not be decoded or is unacceptable.
    #[error("image {}: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        source: crate::preprocess::image::ImageError,
    },
    /// A video (file, image sequence or stream) could not be read or sampled.
    #[error("video {}: {message}", path.display())]
    Video {
        /// The clip, directory or stream (`-` is stdin).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An input audio file could not be decoded or is unacceptable.
    #[error("audio {}: {source}", path.display())]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// What went wrong.
        source: crate::preprocess::audio::AudioError,
    },
    /// The tokenizer failed to load or to encode/decode.
    #[error("tokenizer {context}: {message}")]
    Tokenizer {
        /// What the tokenizer was doing.
        context: String,
        /// Its message.
        message: String,
    },
    /// ONNX Runtime failed while creating or running a stage's session.
    #[error("stage \"{stage}\": {message}")]
    Stage {
        /// Stage name.
        stage: String,
        /// What failed, with ONNX Runtime's message.
        message: String,
    },
    /// A graph's tensor does not match what the manifest or runtime expects.
    #[error("stage \"{stage}\", tensor \"{tensor}\": expected {expected}, found {found}")]
    Tensor {
        /// Stage name.
        stage: String,
        /// Tensor name.
        tensor: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The prompt does not fit the model's context.
    #[error("prompt is {tokens} tokens (after expanding media placeholders) but the context length is {context}; shorten the prompt or use fewer images")]
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// Context length from the manifest.
        context: usize,
    },
    /// A request is inconsistent with the bundle (bad option value, placeholder count…).
    #[error("invalid request: {0}")]
    Request(String),
    /// An execution provider was required but could not be registered.
    #[error("execution provider {ep} is not available: {reason}")]
    ExecutionProvider {
        /// Provider name.
        ep: String,
        /// Why.
        reason: String,
    },
    /// A benchmark could not be run or its results read.
    #[error("bench: {0}")]
    Bench(String),
    /// The request was cancelled (its [`crate::pipeline::CancelFlag`] raised, its reader gone).
    #[error("the request was cancelled")]
    Cancelled,
}

impl Error {
    /// Wrap an `ort` error with the stage it happened in.
    pub fn stage(stage: &str, context: &str, e: impl std::fmt::Display) -> Self {
        Error::Stage { stage: stage.to_string(), message: format!("{context}: {e}") }
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
