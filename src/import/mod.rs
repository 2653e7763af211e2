//! Manifest inference: an ONNX model folder as another tool wrote it, with no
//! `bundle.json`, becomes a [`Manifest`] that [`crate::Bundle`] then checks
//! and opens like a written one. Two layouts are recognised:
//!
//! * [`genai`]: onnxruntime-genai's model builder output (`genai_config.json`);
//! * [`optimum`]: Optimum / transformers.js exports (`config.json` + a decoder
//!   graph, possibly under `onnx/`, in file [`variants`] such as `_q4`).
//!
//! The folder is untrusted ([`folder`]): names from configs stay inside it;
//! every config number is checked against [`crate::limits`] and against the
//! decoder graph's declared inputs/outputs ([`graph`]) before it sizes
//! anything. What cannot be inferred (vision or speech stages, extra graph
//! inputs) is an error naming what was found.

pub mod folder;
pub mod genai;
pub mod generation;
pub mod graph;
pub mod optimum;
pub mod tokens;
pub mod variants;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use folder::Folder;

/// How to infer: which graph variant to use.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Variant of the decoder graph (`q4`, `fp16`, `quantized`, `default`, …);
    /// `None`: the unsuffixed export, or the only one.
    pub variant: Option<String>,
}

impl ImportOptions {
    /// Options choosing `variant`.
    pub fn with_variant(variant: Option<String>) -> Self {
        Self { variant }
    }
}

/// The folder layouts manifest inference recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// onnxruntime-genai (`genai_config.json`).
    Genai,
    /// Optimum / transformers.js (`config.json` + `model*.onnx`).
    Optimum,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Genai => "onnxruntime-genai",
            Layout::Optimum => "Optimum / transformers.js",
        })
    }
}

/// An inferred manifest and how it was inferred.
#[derive(Debug, Clone, Serialize)]
pub struct Inferred {
    /// The canonical model folder (the manifest's paths are relative to it).
    pub root: PathBuf,
    /// The layout recognised.
    pub layout: Layout,
    /// The config file it was read from (folder-relative).
    pub source: String,
    /// The manifest (validated by [`infer`]).
    pub manifest: Manifest,
    /// What was inferred and from where, one line each (shown by `inspect`).
    pub notes: Vec<String>,
}

/// Infer the manifest of the model folder `path`, or of the folder holding
/// the decoder graph `path` (`DIR/onnx/model_q4.onnx`).
pub fn infer(path: &Path, options: &ImportOptions) -> Result<Inferred> {
    if let Some(v) = options.variant.as_deref().filter(|v| !variants::valid_name(v)) {
        return Err(Error::Request(format!("--variant \"{v}\": a variant is a short name of lowercase letters, digits and _ (e.g. q4, fp16, quantized)")));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return infer_graph_file(path, options);
    }
    let folder = Folder::open(path)?;
    let inferred = if folder.present(genai::CONFIG) {
        if options.variant.is_some() {
            return Err(folder.error(None, "--variant applies to Optimum / transformers.js folders; genai_config.json names its one decoder graph"));
        }
        genai::infer(&folder)?
    } else if folder.present(optimum::CONFIG) {
        optimum::infer(&folder, None, options.variant.as_deref())?
    } else {
        return Err(folder.error(
            None,
            format!(
                "no bundle.json, genai_config.json (onnxruntime-genai) or config.json (Optimum / transformers.js) here; found {}",
                folder.describe()
            ),
        ));
    };
    validated(inferred)
}

/// `DIR/model_q4.onnx` or `DIR/onnx/model_q4.onnx`, the folder being the one holding `config.json`.
fn infer_graph_file(path: &Path, options: &ImportOptions) -> Result<Inferred> {
    let file = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let parent = file.parent().unwrap_or(Path::new("/"));
    let root = if parent.join(optimum::CONFIG).is_file() {
        parent
    } else {
        parent.parent().filter(|p| parent.file_name().is_some_and(|n| n == "onnx") && p.join(optimum::CONFIG).is_file()).ok_or_else(|| {
            Error::Import {
                path: file.clone(),
                message: "a graph file given as --bundle must sit in an Optimum folder (config.json beside it, or one level up from onnx/)".into(),
            }
        })?
    };
    let folder = Folder::open(root)?;
    let relative = file.strip_prefix(folder.root()).map_err(|_| folder.error(None, "the graph file is outside the folder"))?;
    let relative = relative.to_str().ok_or_else(|| folder.error(None, "the graph file's name is not UTF-8"))?;
    validated(optimum::infer(&folder, Some(relative), options.variant.as_deref())?)
}

fn validated(inferred: Inferred) -> Result<Inferred> {
    inferred.manifest.validate().map_err(|message| Error::Import {
        path: inferred.root.join(&inferred.source),
        message: format!("the inferred manifest is not valid: {message}"),
    })?;
    Ok(inferred)
}

/// The folder's name, as the bundle name.
fn folder_name(folder: &Folder) -> String {
    folder.root().file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}

/// The manifest of a decoder-only folder: its one decoder stage, prompt and generation defaults,
/// named after the folder, no sessions block and no checksums (the folder is read as it is).
fn decoder_manifest(
    folder: &Folder,
    description: String,
    stage: crate::manifest::DecoderStage,
    prompt: crate::prompt::PromptFormat,
    generation: crate::generate::GenerationConfig,
) -> crate::manifest::Manifest {
    crate::manifest::Manifest {
        format: crate::manifest::FORMAT.into(),
        version: crate::manifest::VERSION,
        name: folder_name(folder),
        description,
        tokenizer: "tokenizer.json".into(),
        compact_tokenizer: None,
        stages: vec![crate::manifest::Stage::LlmDecoder(stage)],
        prompt,
        generation,
        sessions: Default::default(),
        checksums: Default::default(),
    }
}
