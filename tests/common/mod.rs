//! Helpers shared by the test files: the repository root, the `mmrt`
//! executable, a golden JSON file, the tiny pipeline, and number lists out of JSON.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

use mmrt::runtime::{OrtRuntime, SessionConfig};
use mmrt::{Bundle, Pipeline};
use serde_json::Value;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `mmrt` executable (package `mmrt-cli`), next to this test binary's
/// `deps/` folder: `cargo test` from the workspace root builds every default
/// member's targets, that binary included, before any test runs.
pub fn mmrt_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("mmrt{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} is missing: run the tests from the workspace root (cargo test), or `cargo build -p mmrt-cli` first", bin.display());
    bin
}

/// `tests/golden/<name>`, parsed.
pub fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/golden").join(name)).expect("golden file");
    serde_json::from_str(&text).expect("golden JSON")
}

/// The tiny bundle on one thread (the goldens' setting).
pub fn tiny_pipeline() -> Pipeline {
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)");
    let bundle = Bundle::open(root().join("models/tiny")).expect("tiny bundle");
    let config = SessionConfig { threads: Some(1), ..SessionConfig::default() };
    Pipeline::load(&runtime, bundle, &config).expect("pipeline")
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("float list").iter().map(|x| x.as_f64().expect("float") as f32).collect()
}
