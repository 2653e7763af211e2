//! Setup shared by the test files, so each one states only what it checks:
//!
//! * here: the repository root, ONNX Runtime, session settings, the tiny
//!   bundle's pipeline and decoder, temporary files and folders;
//! * [`cli`]: the `mmrt` executable, the [`cli::Outcome`] of one run of it, and
//!   the checks that a failure is clean (one `error:` line, no panic);
//! * [`golden`]: the golden files as typed data;
//! * [`llm`]: greedy-id and agreement checks of the GGUF-imported LLM bundles;
//! * [`bundles`]: the large real-model bundles (skip unless built or required),
//!   and edits of a bundle copy's `bundle.json`;
//! * [`media`]: hand-made PNG chunks and WAV files;
//! * [`server`]: a running `mmrt serve` and the Python that talks to it;
//! * [`shapes`]: the shape and colour a vlm-shapes caption names.
//!
//! Each test crate uses its own subset (`mod common;`).

#![allow(dead_code)]

pub mod bundles;
pub mod cli;
pub mod golden;
pub mod llm;
pub mod media;
pub mod onnx;
pub mod server;
pub mod shapes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mmrt::runtime::{OrtRuntime, SessionConfig, SessionPlan};
use mmrt::stages::decoder::Decoder;
use mmrt::stages::graph::StageLoader;
use mmrt::{Bundle, Pipeline};
use serde_json::Value;

/// The repository (workspace) root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `models/tiny`, the committed test bundle, as an absolute path (for command lines).
pub const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny");

/// [`TINY`] as a path.
pub fn tiny_dir() -> PathBuf {
    PathBuf::from(TINY)
}

/// `tests/fixtures/images/<name>`.
pub fn image_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/images").join(name)
}

/// `tests/fixtures/audio/<name>`.
pub fn audio_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/audio").join(name)
}

/// ONNX Runtime, found the way the binary finds it.
pub fn runtime() -> OrtRuntime {
    OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)")
}

/// Session settings with `threads` intra-op threads (the goldens use 1).
pub fn session_config(threads: usize) -> SessionConfig {
    SessionConfig { threads: Some(threads), ..SessionConfig::default() }
}

/// `models/<name>`, opened.
pub fn bundle(name: &str) -> Bundle {
    Bundle::open(root().join("models").join(name)).expect(name)
}

/// The pipeline of the bundle in `dir` with one session setting for every stage.
pub fn pipeline(dir: &Path, config: &SessionConfig) -> Pipeline {
    let bundle = Bundle::open(dir).unwrap_or_else(|e| panic!("bundle {}: {e}", dir.display()));
    Pipeline::load(&runtime(), bundle, config).unwrap_or_else(|e| panic!("pipeline {}: {e}", dir.display()))
}

/// The tiny bundle on one thread (the goldens' setting).
pub fn tiny_pipeline() -> Pipeline {
    pipeline(&tiny_dir(), &session_config(1))
}

/// The LLM decoder stage of the bundle in `dir`, on its own.
pub fn decoder(runtime: &OrtRuntime, dir: &Path, config: SessionConfig) -> Decoder {
    let bundle = Bundle::open(dir).unwrap_or_else(|e| panic!("bundle {}: {e}", dir.display()));
    let plan = SessionPlan::uniform(config);
    Decoder::open(&StageLoader::new(runtime, &bundle, &plan), bundle.manifest.decoder())
        .unwrap_or_else(|e| panic!("decoder of {}: {e}", dir.display()))
}

/// A token id list out of JSON (e.g. `mmrt run --json`'s `token_ids`).
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Largest |a - b| over two equally long slices.
#[track_caller]
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn unique(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("mmrt-{}-{}-{tag}-{n}", env!("CARGO_CRATE_NAME"), std::process::id()))
}

/// A fresh, empty directory under the system temp dir (unique per test crate,
/// process and call), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = unique(tag);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `join(name)` as a string, for command lines.
    pub fn s(&self, name: &str) -> String {
        self.join(name).to_str().expect("UTF-8 temp path").to_string()
    }

    /// A file in the temp dir with these bytes.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    /// A fresh copy of models/tiny at `<temp>/<name>`.
    pub fn tiny_copy(&self, name: &str) -> PathBuf {
        let dst = self.0.join(name);
        bundles::copy_bundle(&tiny_dir(), &dst);
        dst
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bytes` written to `name` in a fresh directory of its own under the system
/// temp dir, kept after the test (so an error may name it).
pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = unique("file");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// `target/test-audio/<name>`: generated audio kept between runs (the largest
/// file, two hours of silence, is written once).
pub fn test_audio(name: &str) -> PathBuf {
    let dir = root().join("target/test-audio");
    std::fs::create_dir_all(&dir).expect("create target/test-audio");
    dir.join(name)
}

/// `<cargo's per-target tmp dir>/<group>/<name>`, emptied: outputs kept after
/// the test for inspection.
pub fn target_tmp(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create target tmp dir");
    dir
}

/// An executable `#!/bin/sh` script at `path` running `body`. `sh` writes it,
/// not the test process: a test running beside this one may fork while a
/// write handle of ours is open, and until that child execs it holds the
/// handle, so running the script would fail with "Text file busy" (ETXTBSY).
#[cfg(unix)]
pub fn executable_script(path: &Path, body: &str) {
    let script = format!("#!/bin/sh\n{body}");
    let status = std::process::Command::new("sh")
        .args(["-c", r#"printf '%s' "$1" > "$2" && chmod 755 "$2""#, "sh", &script])
        .arg(path)
        .status()
        .expect("run sh");
    assert!(status.success(), "writing {}", path.display());
}
