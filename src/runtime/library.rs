//! Finding and loading `libonnxruntime` at run time (`ort`'s `load-dynamic`).
//!
//! Search order, first that loads wins:
//! 1. `--ort-lib PATH` (explicit),
//! 2. the `MMRT_ORT_LIB` environment variable,
//! 3. next to the `mmrt` executable,
//! 4. the setup folder `.cache/onnxruntime/` written by `.ci/setup-ort`,
//! 5. an installed Python `onnxruntime` / `onnxruntime-gpu` package.
//!
//! We load through `ort::init_from`, which returns an error for a bad library;
//! ort's own environment-variable path would panic instead.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The loaded ONNX Runtime: its environment and where it came from.
#[derive(Clone)]
pub struct OrtRuntime {
    /// The process-wide ONNX Runtime environment sessions are created in.
    pub environment: ort::environment::Environment,
    /// What was loaded.
    pub info: RuntimeInfo,
}

/// Where the library came from and what it is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    /// The file that was loaded.
    pub library: PathBuf,
    /// Which rule of the search order found it.
    pub found_by: String,
    /// ONNX Runtime version, e.g. `1.31.1`.
    pub version: String,
}

/// A place to look for the library and the rule that proposed it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// File (or directory to scan) to try.
    pub path: PathBuf,
    /// The rule, e.g. "MMRT_ORT_LIB".
    pub source: &'static str,
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();

impl OrtRuntime {
    /// Load ONNX Runtime once per process, trying the candidates in order.
    /// Later calls return the runtime loaded first (a process holds one library).
    pub fn load(explicit: Option<&Path>) -> Result<OrtRuntime> {
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt.clone());
        }
        let rt = load_first(candidates(explicit))?;
        Ok(RUNTIME.get_or_init(|| rt).clone())
    }
}

/// The candidate list, in search order. A library the user names (`--ort-lib`,
/// else `MMRT_ORT_LIB`) is the only candidate: if it fails to load, that is an
/// error, never a silent switch to some other library.
/// Lazy: the Python interpreter is only asked when the earlier candidates failed.
pub fn candidates(explicit: Option<&Path>) -> Box<dyn Iterator<Item = Candidate>> {
    if let Some(p) = explicit {
        return Box::new(std::iter::once(Candidate { path: p.to_path_buf(), source: "--ort-lib" }));
    }
    if let Some(p) = std::env::var_os("MMRT_ORT_LIB").filter(|v| !v.is_empty()) {
        return Box::new(std::iter::once(Candidate { path: PathBuf::from(p), source: "MMRT_ORT_LIB" }));
    }
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    let exe = exe_dir.map(|path| Candidate { path, source: "next to the executable" });
    let setup = Candidate { path: setup_dir(), source: "setup folder (.ci/setup-ort)" };
    let python = std::iter::once(()).flat_map(|()| python_package_dirs())
        .map(|path| Candidate { path, source: "Python onnxruntime package" });
    Box::new(exe.into_iter().chain(std::iter::once(setup)).chain(python))
}

/// The folder `.ci/setup-ort` extracts the library into.
pub fn setup_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache").join("onnxruntime")
}

fn load_first(candidates: impl IntoIterator<Item = Candidate>) -> Result<OrtRuntime> {
    let mut tried = Vec::new();
    for c in candidates {
        let files = match library_files(&c.path) {
            Ok(files) => files,
            Err(why) => {
                tried.push(format!("  {} ({}): {why}", c.path.display(), c.source));
                continue;
            }
        };
        for file in files {
            match try_load(&file) {
                Ok(environment) => {
                    let info = RuntimeInfo {
                        version: version_from_file_name(&file).unwrap_or_else(|| "unknown".into()),
                        library: file,
                        found_by: c.source.to_string(),
                    };
                    log::info!("ONNX Runtime {} loaded from {} ({})", info.version, info.library.display(), info.found_by);
                    return Ok(OrtRuntime { environment, info });
                }
                Err(why) => tried.push(format!("  {} ({}): {why}", file.display(), c.source)),
            }
        }
    }
    Err(Error::OrtNotFound { tried: tried.join("\n") })
}

fn try_load(file: &Path) -> std::result::Result<ort::environment::Environment, String> {
    let builder = ort::init_from(file).map_err(|e| e.to_string())?;
    builder.with_name("mmrt").build().map_err(|e| e.to_string())
}

/// A file is tried as is; a directory is scanned for the platform's library names.
fn library_files(path: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.exists() {
        return Err("does not exist".into());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_library_name))
        .collect();
    // Prefer versioned names (the real file) and the newest version first.
    found.sort();
    found.reverse();
    if found.is_empty() {
        return Err("no onnxruntime library in this folder".into());
    }
    Ok(found)
}

fn is_library_name(name: &str) -> bool {
    name == "libonnxruntime.so"
        || name.starts_with("libonnxruntime.so.")
        || (name.starts_with("libonnxruntime") && name.ends_with(".dylib") && !name.contains("providers"))
        || name == "onnxruntime.dll"
}

fn version_from_file_name(file: &Path) -> Option<String> {
    let resolved = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let name = resolved.file_name()?.to_str()?;
    let version = name.strip_prefix("libonnxruntime.so.").or_else(|| {
        name.strip_prefix("libonnxruntime.").and_then(|v| v.strip_suffix(".dylib"))
    })?;
    Some(version.to_string())
}

/// `site-packages/onnxruntime/capi` folders of the Python interpreters on PATH.
/// Asking Python is slow-ish, so it is the last resort and only runs when the
/// earlier candidates failed to produce a library.
fn python_package_dirs() -> Vec<PathBuf> {
    let script = "import importlib.util as u\nfor n in ('onnxruntime',):\n s=u.find_spec(n)\n if s and s.submodule_search_locations:\n  print(list(s.submodule_search_locations)[0])";
    let mut dirs = Vec::new();
    for python in ["python3", "python"] {
        let Ok(out) = std::process::Command::new(python).arg("-c").arg(script).output() else { continue };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let dir = PathBuf::from(line.trim()).join("capi");
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert!(is_library_name("libonnxruntime.so.1.31.1"));
        assert!(is_library_name("libonnxruntime.so"));
        assert!(!is_library_name("libonnxruntime_providers_cuda.so"));
        assert!(!is_library_name("libfoo.so"));
    }

    #[test]
    fn explicit_path_is_the_only_candidate() {
        let c: Vec<_> = candidates(Some(Path::new("/x/libonnxruntime.so"))).collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].source, "--ort-lib");
    }

    #[test]
    fn missing_library_lists_every_place_tried() {
        let err = load_first([
            Candidate { path: "/nonexistent/libonnxruntime.so".into(), source: "--ort-lib" },
            Candidate { path: "/nonexistent-dir".into(), source: "MMRT_ORT_LIB" },
        ])
        .err()
        .expect("nothing to load");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so (--ort-lib)"), "{msg}");
        assert!(msg.contains("/nonexistent-dir (MMRT_ORT_LIB)"), "{msg}");
        assert!(msg.contains("setup-ort"), "{msg}");
    }
}
