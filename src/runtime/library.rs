//! Finding and loading `libonnxruntime` at run time (`ort`'s `load-dynamic`).
//!
//! Search order, first that loads wins:
//! 1. `--ort-lib PATH` (explicit),
//! 2. the `MMRT_ORT_LIB` environment variable,
//! 3. next to the `mmrt` executable,
//! 4. the setup folder `.cache/onnxruntime/` written by `.ci/setup-ort`,
//! 5. the GPU setup folder `.cache/onnxruntime-gpu/onnxruntime/capi/` written by `.ci/setup-ort-gpu`,
//! 6. an installed Python `onnxruntime` / `onnxruntime-gpu` package.
//!
//! When a stage asks for CUDA or TensorRT ([`OrtRuntime::load_for`] with
//! `wants_gpu`), GPU builds go first: the GPU setup folder, then Python packages
//! whose capi folder holds the CUDA provider, then the rest. The pip CUDA
//! libraries beside a GPU build are preloaded ([`cuda_libs`]) before it loads.
//!
//! We load through `ort::init_from`, which returns an error for a bad library;
//! ort's own environment-variable path would panic instead.

use std::cell::LazyCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use super::cuda_libs::{self, CudaLibraries};
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
    /// The pip CUDA libraries beside a GPU build (None for a CPU build).
    pub cuda: Option<CudaLibraries>,
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
    /// Load ONNX Runtime once per process for CPU work: [`OrtRuntime::load_for`] without GPU.
    pub fn load(explicit: Option<&Path>) -> Result<OrtRuntime> {
        Self::load_for(explicit, false)
    }

    /// Load ONNX Runtime once per process, trying the candidates in order;
    /// `wants_gpu` (some stage asked for CUDA or TensorRT) puts GPU builds first
    /// and preloads the CUDA libraries beside the one that loads.
    /// Later calls return the library loaded first (a process holds one), and
    /// still preload the CUDA libraries if this call is the first to want a GPU.
    pub fn load_for(explicit: Option<&Path>, wants_gpu: bool) -> Result<OrtRuntime> {
        let mut rt = match RUNTIME.get() {
            Some(rt) => rt.clone(),
            None => {
                let rt = load_first(candidates(explicit, wants_gpu), wants_gpu)?;
                RUNTIME.get_or_init(|| rt).clone()
            }
        };
        if wants_gpu && cuda_libs::is_gpu_capable(&rt.info.library) {
            cuda_libs::preload_for(&rt.info.library);
        }
        // The first load may have only scanned (no GPU wanted then): report what a later preload did.
        if let Some(libs) = cuda_libs::preloaded().filter(|l| rt.info.cuda.as_ref().is_some_and(|c| c.root == l.root)) {
            rt.info.cuda = Some(libs);
        }
        Ok(rt)
    }
}

/// Why the CUDA provider failed to register with the runtime `info` describes:
/// a CPU build, the CUDA library files that are missing or failed to load, or a
/// missing or too old driver (CUDA 13 needs >= 580), with the fix
/// (`bash .ci/setup-ort-gpu`). None when nothing is known to be wrong.
pub fn cuda_unavailable_reason(info: &RuntimeInfo) -> Option<String> {
    cuda_libs::unavailable_reason(&info.library, info.cuda.as_ref())
}

/// Everything the search order depends on, gathered from the process by
/// [`SearchInputs::from_process`] so that [`candidates_from`] is a pure function.
#[derive(Debug, Clone, Default)]
pub struct SearchInputs {
    /// `--ort-lib PATH`.
    pub explicit: Option<PathBuf>,
    /// `MMRT_ORT_LIB` (empty counts as unset).
    pub env: Option<PathBuf>,
    /// The folder of the running executable.
    pub exe_dir: Option<PathBuf>,
    /// `.ci/setup-ort`'s folder ([`setup_dir`]).
    pub setup_dir: PathBuf,
    /// `.ci/setup-ort-gpu`'s capi folder ([`gpu_setup_dir`]).
    pub gpu_dir: PathBuf,
    /// Some stage asked for CUDA or TensorRT.
    pub wants_gpu: bool,
}

impl SearchInputs {
    /// This process's flag, environment, executable and setup folders.
    pub fn from_process(explicit: Option<&Path>, wants_gpu: bool) -> SearchInputs {
        SearchInputs {
            explicit: explicit.map(Path::to_path_buf),
            env: std::env::var_os("MMRT_ORT_LIB").filter(|v| !v.is_empty()).map(PathBuf::from),
            exe_dir: std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)),
            setup_dir: setup_dir(),
            gpu_dir: gpu_setup_dir(),
            wants_gpu,
        }
    }
}

/// The candidate list for this process, in search order (see [`candidates_from`]).
pub fn candidates(explicit: Option<&Path>, wants_gpu: bool) -> Box<dyn Iterator<Item = Candidate>> {
    candidates_from(SearchInputs::from_process(explicit, wants_gpu), python_package_dirs)
}

/// The candidate list, in search order. A library the user names (`--ort-lib`,
/// else `MMRT_ORT_LIB`) is the only candidate: if it fails to load, that is an
/// error, never a silent switch to some other library.
/// Lazy: `python_dirs` (asking the interpreter is slow) only runs when the
/// candidates before the first Python one failed; a Python capi folder counts
/// as GPU-capable only if it holds the CUDA provider library.
pub fn candidates_from(inputs: SearchInputs, python_dirs: impl FnOnce() -> Vec<PathBuf> + 'static) -> Box<dyn Iterator<Item = Candidate>> {
    if let Some(path) = inputs.explicit {
        return Box::new(std::iter::once(Candidate { path, source: "--ort-lib" }));
    }
    if let Some(path) = inputs.env {
        return Box::new(std::iter::once(Candidate { path, source: "MMRT_ORT_LIB" }));
    }
    let exe = inputs.exe_dir.map(|path| Candidate { path, source: "next to the executable" });
    let setup = Candidate { path: inputs.setup_dir, source: "setup folder (.ci/setup-ort)" };
    let gpu = Candidate { path: inputs.gpu_dir, source: "GPU setup folder (.ci/setup-ort-gpu)" };
    let python = Rc::new(LazyCell::new(python_dirs));
    if !inputs.wants_gpu {
        return Box::new(exe.into_iter().chain([setup, gpu]).chain(python_candidates(python, None)));
    }
    let gpu_python = python_candidates(Rc::clone(&python), Some(true));
    let cpu_python = python_candidates(python, Some(false));
    Box::new(std::iter::once(gpu).chain(gpu_python).chain(exe).chain(std::iter::once(setup)).chain(cpu_python))
}

/// The Python capi folders, asked for on first use; `gpu` keeps only GPU builds
/// (Some(true)), only CPU builds (Some(false)), or all (None).
fn python_candidates<F: FnOnce() -> Vec<PathBuf>>(dirs: Rc<LazyCell<Vec<PathBuf>, F>>, gpu: Option<bool>) -> impl Iterator<Item = Candidate> {
    let source = if gpu == Some(true) { "Python onnxruntime-gpu package" } else { "Python onnxruntime package" };
    std::iter::once(()).flat_map(move |()| {
        let keep = |d: &&PathBuf| gpu.is_none_or(|g| cuda_libs::is_gpu_capable(d) == g);
        dirs.iter().filter(keep).map(|path| Candidate { path: path.clone(), source }).collect::<Vec<_>>()
    })
}

/// The folder `.ci/setup-ort` extracts the library into.
pub fn setup_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache").join("onnxruntime")
}

/// The capi folder of the `onnxruntime-gpu` package `.ci/setup-ort-gpu` installs
/// (with `pip install --target .cache/onnxruntime-gpu`, its CUDA libraries under `nvidia/`).
pub fn gpu_setup_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache").join("onnxruntime-gpu").join("onnxruntime").join("capi")
}

fn load_first(candidates: impl IntoIterator<Item = Candidate>, wants_gpu: bool) -> Result<OrtRuntime> {
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
            let cuda = cuda_for(&file, wants_gpu);
            match try_load(&file) {
                Ok(environment) => {
                    let info = RuntimeInfo {
                        version: version_from_file_name(&file).unwrap_or_else(|| "unknown".into()),
                        library: file,
                        found_by: c.source.to_string(),
                        cuda,
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

/// For a GPU build: its CUDA libraries, opened before the library itself loads
/// when a GPU is wanted, else only scanned (so `mmrt --version` can show them).
fn cuda_for(file: &Path, wants_gpu: bool) -> Option<CudaLibraries> {
    if !cuda_libs::is_gpu_capable(file) {
        return None;
    }
    Some(if wants_gpu { cuda_libs::preload_for(file) } else { cuda_libs::scan(cuda_libs::nvidia_root(file).as_deref()) })
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
        let c: Vec<_> = candidates(Some(Path::new("/x/libonnxruntime.so")), true).collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].source, "--ort-lib");
    }

    /// A temp tree with a CPU and a GPU Python capi folder (the GPU one holds the
    /// CUDA provider library), and search inputs pointing at fake setup folders.
    fn search_tree(name: &str, wants_gpu: bool) -> (PathBuf, SearchInputs) {
        let root = std::env::temp_dir().join(format!("mmrt-search-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["cpu/onnxruntime/capi", "gpu/onnxruntime/capi"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("libonnxruntime.so.1.31.1"), b"").unwrap();
        }
        std::fs::write(root.join("gpu/onnxruntime/capi").join(cuda_libs::CUDA_PROVIDER_FILE), b"").unwrap();
        let inputs = SearchInputs {
            exe_dir: Some(root.join("bin")),
            setup_dir: root.join("setup"),
            gpu_dir: root.join("setup-gpu"),
            wants_gpu,
            ..SearchInputs::default()
        };
        (root, inputs)
    }

    /// `(path relative to root, source)` of each candidate; Python lists CPU before GPU.
    fn order(root: &Path, inputs: SearchInputs) -> Vec<(String, &'static str)> {
        let python = vec![root.join("cpu/onnxruntime/capi"), root.join("gpu/onnxruntime/capi")];
        candidates_from(inputs, move || python)
            .map(|c| (c.path.strip_prefix(root).unwrap_or(&c.path).display().to_string(), c.source))
            .collect()
    }

    #[test]
    fn cpu_search_order() {
        let (root, inputs) = search_tree("cpu", false);
        let got: Vec<String> = order(&root, inputs).into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, ["bin", "setup", "setup-gpu", "cpu/onnxruntime/capi", "gpu/onnxruntime/capi"]);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn gpu_search_order_puts_gpu_builds_first() {
        let (root, inputs) = search_tree("gpu", true);
        assert_eq!(
            order(&root, inputs),
            [
                ("setup-gpu".into(), "GPU setup folder (.ci/setup-ort-gpu)"),
                ("gpu/onnxruntime/capi".into(), "Python onnxruntime-gpu package"),
                ("bin".into(), "next to the executable"),
                ("setup".into(), "setup folder (.ci/setup-ort)"),
                // No CUDA provider library in it: a CPU build, after the CPU setup folder.
                ("cpu/onnxruntime/capi".into(), "Python onnxruntime package"),
            ]
        );
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn named_library_is_the_only_candidate_even_for_gpu() {
        let named = |explicit: Option<&str>, env: Option<&str>| {
            let inputs = SearchInputs {
                explicit: explicit.map(PathBuf::from),
                env: env.map(PathBuf::from),
                wants_gpu: true,
                ..SearchInputs::default()
            };
            let got: Vec<_> = candidates_from(inputs, || panic!("Python must not be asked")).map(|c| (c.path, c.source)).collect();
            got
        };
        assert_eq!(named(Some("/a/lib.so"), Some("/b/lib.so")), [(PathBuf::from("/a/lib.so"), "--ort-lib")]);
        assert_eq!(named(None, Some("/b/lib.so")), [(PathBuf::from("/b/lib.so"), "MMRT_ORT_LIB")]);
    }

    #[test]
    fn python_is_asked_only_when_reached() {
        let asked = Rc::new(std::cell::Cell::new(false));
        let flag = Rc::clone(&asked);
        let inputs = SearchInputs { gpu_dir: "/nonexistent/gpu".into(), wants_gpu: true, ..SearchInputs::default() };
        let mut it = candidates_from(inputs, move || {
            flag.set(true);
            Vec::new()
        });
        assert_eq!(it.next().map(|c| c.source), Some("GPU setup folder (.ci/setup-ort-gpu)"));
        assert!(!asked.get(), "the GPU setup folder comes before asking Python");
        assert_eq!(it.next().map(|c| c.source), Some("setup folder (.ci/setup-ort)"));
        assert!(asked.get());
    }

    #[test]
    fn missing_library_lists_every_place_tried() {
        let err = load_first([
            Candidate { path: "/nonexistent/libonnxruntime.so".into(), source: "--ort-lib" },
            Candidate { path: "/nonexistent-dir".into(), source: "MMRT_ORT_LIB" },
        ], false)
        .err()
        .expect("nothing to load");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so (--ort-lib)"), "{msg}");
        assert!(msg.contains("/nonexistent-dir (MMRT_ORT_LIB)"), "{msg}");
        assert!(msg.contains("setup-ort"), "{msg}");
    }
}
