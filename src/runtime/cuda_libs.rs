//! The NVIDIA libraries `onnxruntime-gpu`'s CUDA provider links against, found
//! in the pip `nvidia-*` packages beside the ONNX Runtime library and opened
//! process-wide before the provider loads, so no `LD_LIBRARY_PATH` is needed.
//!
//! `libonnxruntime_providers_cuda.so` names `libcudart.so.13`, `libcublas.so.13`,
//! `libcudnn.so.9`, ... by soname only. The pip packages put those files under
//! `<site-packages>/nvidia/*/lib`, which the dynamic loader never searches. Once
//! a library with that soname is loaded `RTLD_GLOBAL`, the loader reuses it, so
//! opening them first (as Python's `onnxruntime.preload_dlls` does) is enough.
//!
//! The scan ([`scan`]) only looks at the file system, so it is tested on dummy
//! trees; opening ([`preload`]) is a separate step.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file in a capi folder that makes an ONNX Runtime build GPU-capable.
pub const CUDA_PROVIDER_FILE: &str = "libonnxruntime_providers_cuda.so";

/// Oldest NVIDIA driver branch that runs CUDA 13 (CUDA 13.0 release notes, "CUDA
/// Toolkit and Corresponding Driver Versions": >= 580 on Linux).
pub const MIN_DRIVER_MAJOR: u32 = 580;

/// The CUDA libraries found beside a GPU build of ONNX Runtime and what became of them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CudaLibraries {
    /// The pip `--target` / site-packages folder that holds `nvidia/`, if any.
    pub root: Option<PathBuf>,
    /// Library files found under `root`, in dependency (load) order.
    pub found: Vec<PathBuf>,
    /// The files opened `RTLD_NOW | RTLD_GLOBAL`; empty until a GPU provider was asked for.
    pub preloaded: Vec<PathBuf>,
    /// Required library files that are not under `root` (all of them when there is no root).
    pub missing: Vec<&'static str>,
    /// Files that were found but failed to open: `path: loader message`.
    pub failed: Vec<String>,
    /// The loaded NVIDIA kernel driver's version (`/proc/driver/nvidia/version`), if any.
    pub driver: Option<String>,
}

/// One library the CUDA provider needs and the `nvidia/<folder>/lib` folders that may hold it.
struct CudaLib {
    /// File name; a trailing `*` matches any suffix (versioned names like `libnvrtc-builtins.so.13.5`).
    file: &'static str,
    /// CUDA 13 wheels share `nvidia/cu13/lib`; CUDA 12 wheels had one folder per package.
    folders: &'static [&'static str],
    /// Whether the CUDA provider cannot start without it.
    required: bool,
}

const fn lib(file: &'static str, folders: &'static [&'static str], required: bool) -> CudaLib {
    CudaLib { file, folders, required }
}

/// In dependency order: a library comes after those it links against, since a
/// library opened by full path still finds its own dependencies by soname only.
/// cuDNN's sub-libraries are opened on demand by `libcudnn.so.9`; preloading them
/// keeps that working where their folder is not on the loader's path.
const CUDA_LIBS: &[CudaLib] = &[
    lib("libcudart.so.13", &["cu13", "cuda_runtime"], true),
    lib("libnvJitLink.so.13", &["cu13", "nvjitlink"], true),
    lib("libnvrtc.so.13", &["cu13", "cuda_nvrtc"], false),
    lib("libnvrtc-builtins.so.13*", &["cu13", "cuda_nvrtc"], false),
    lib("libcublasLt.so.13", &["cu13", "cublas"], true),
    lib("libcublas.so.13", &["cu13", "cublas"], true),
    lib("libcurand.so.10", &["cu13", "curand"], true),
    lib("libcufft.so.12", &["cu13", "cufft"], true),
    lib("libcudnn.so.9", &["cudnn", "cu13"], true),
    lib("libcudnn_graph.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_engines_precompiled.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_engines_runtime_compiled.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_engines_tensor_ir.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_heuristic.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_ops.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_cnn.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_adv.so.9", &["cudnn", "cu13"], false),
    lib("libcudnn_ext.so.9", &["cudnn", "cu13"], false),
];

/// Whether `path` (an ONNX Runtime library file or its folder) is a GPU build:
/// its folder holds the CUDA provider library.
pub fn is_gpu_capable(path: &Path) -> bool {
    let dir = if path.is_dir() { Some(path) } else { path.parent() };
    dir.is_some_and(|d| d.join(CUDA_PROVIDER_FILE).is_file())
}

/// The folder holding `nvidia/` for a library in `<root>/onnxruntime/capi/`
/// (a site-packages folder or `pip install --target`), resolving symlinks first.
pub fn nvidia_root(library: &Path) -> Option<PathBuf> {
    let resolved = std::fs::canonicalize(library).unwrap_or_else(|_| library.to_path_buf());
    let capi = if resolved.is_dir() { resolved.as_path() } else { resolved.parent()? };
    let root = capi.parent()?.parent()?;
    root.join("nvidia").is_dir().then(|| root.to_path_buf())
}

/// Find the CUDA libraries under `root` (None: no pip CUDA libraries at all).
/// Looks only; nothing is opened.
pub fn scan(root: Option<&Path>) -> CudaLibraries {
    let mut libs = CudaLibraries { root: root.map(Path::to_path_buf), driver: driver_version(), ..Default::default() };
    for lib in CUDA_LIBS {
        match root.and_then(|r| find(r, lib)) {
            Some(file) => libs.found.push(file),
            None if lib.required => libs.missing.push(lib.file),
            None => {}
        }
    }
    libs
}

/// The first `nvidia/<folder>/lib/<file>` that exists for `lib`.
fn find(root: &Path, lib: &CudaLib) -> Option<PathBuf> {
    lib.folders.iter().find_map(|folder| {
        let dir = root.join("nvidia").join(folder).join("lib");
        match lib.file.strip_suffix('*') {
            Some(prefix) => find_prefixed(&dir, prefix),
            None => Some(dir.join(lib.file)).filter(|f| f.is_file()),
        }
    })
}

/// The newest file in `dir` whose name starts with `prefix` (names that are not UTF-8 are skipped).
fn find_prefixed(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut matches: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    matches.sort();
    matches.pop()
}

/// Handles of the preloaded libraries: never closed, the provider needs them for the whole process.
#[cfg(unix)]
static HANDLES: Mutex<Vec<libloading::os::unix::Library>> = Mutex::new(Vec::new());

/// What the last [`preload_for`] did, so later loads of the runtime report it too.
static PRELOADED: Mutex<Option<CudaLibraries>> = Mutex::new(None);

/// Scan beside `library` and open what was found, once per process (per root).
/// A missing or unloadable library is recorded, not an error: the CPU provider
/// still works, and [`CudaLibraries::missing`] explains a CUDA provider failure later.
pub fn preload_for(library: &Path) -> CudaLibraries {
    let root = nvidia_root(library);
    let mut done = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(libs) = done.as_ref().filter(|l| l.root == root) {
        return libs.clone();
    }
    let mut libs = scan(root.as_deref());
    preload(&mut libs);
    log::info!("CUDA libraries: {} preloaded from {:?}, missing {:?}", libs.preloaded.len(), libs.root, libs.missing);
    *done = Some(libs.clone());
    libs
}

/// The result of the last [`preload_for`], if one ran.
pub fn preloaded() -> Option<CudaLibraries> {
    PRELOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Open every found file `RTLD_NOW | RTLD_GLOBAL`, in order, keeping the handles.
#[cfg(unix)]
pub fn preload(libs: &mut CudaLibraries) {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    let mut handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    for file in &libs.found {
        // SAFETY: NVIDIA's CUDA libraries, from the pip packages installed beside
        // the ONNX Runtime build that links against them; their initialisers only
        // set up the library and they are never unloaded.
        match unsafe { Library::open(Some(file.as_path()), RTLD_NOW | RTLD_GLOBAL) } {
            Ok(handle) => {
                handles.push(handle);
                libs.preloaded.push(file.clone());
            }
            Err(e) => libs.failed.push(format!("{}: {e}", file.display())),
        }
    }
}

/// Elsewhere the pip CUDA packages do not apply; nothing is opened.
#[cfg(not(unix))]
pub fn preload(_libs: &mut CudaLibraries) {}

/// The NVIDIA kernel driver's version, read from `/proc/driver/nvidia/version`
/// (present whenever the driver is loaded; cheaper than running `nvidia-smi`).
pub fn driver_version() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    parse_driver_version(&text)
}

/// The first dotted number on the `NVRM version:` line, e.g. `580.65.06` from
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 ...`.
fn parse_driver_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

/// The driver's major version, e.g. 580 for `580.65.06`.
fn driver_major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// Why the CUDA provider of the library at `library` cannot work, from what the
/// scan found; None when nothing is known to be wrong (the provider's own error then says more).
pub fn unavailable_reason(library: &Path, libs: Option<&CudaLibraries>) -> Option<String> {
    const FIX: &str = "run `bash .ci/setup-ort-gpu` (onnxruntime-gpu with its CUDA 13 and cuDNN 9 libraries, \
                       which need an NVIDIA driver >= 580)";
    if !is_gpu_capable(library) {
        return Some(format!("ONNX Runtime at {} is a CPU build (no {CUDA_PROVIDER_FILE} beside it); {FIX}", library.display()));
    }
    let scanned;
    let libs = match libs {
        Some(l) => l,
        None => {
            scanned = scan(nvidia_root(library).as_deref());
            &scanned
        }
    };
    libraries_reason(libs, library).or_else(|| driver_reason(libs.driver.as_deref())).map(|why| format!("{why}; {FIX}"))
}

/// Missing or unloadable CUDA libraries, named.
fn libraries_reason(libs: &CudaLibraries, library: &Path) -> Option<String> {
    let Some(root) = &libs.root else {
        return Some(format!(
            "no pip CUDA libraries (nvidia/*/lib) beside {}; without them CUDA 13 and cuDNN 9 must be on the loader path",
            library.display()
        ));
    };
    if !libs.missing.is_empty() {
        return Some(format!("CUDA libraries missing under {}: {}", root.join("nvidia").display(), libs.missing.join(", ")));
    }
    if !libs.failed.is_empty() {
        return Some(format!("CUDA libraries failed to load: {}", libs.failed.join("; ")));
    }
    (cfg!(unix) && libs.preloaded.is_empty() && !libs.found.is_empty())
        .then(|| "CUDA libraries were found but not preloaded (the runtime was loaded with OrtRuntime::load_for(.., false))".into())
}

/// No driver, or one too old for CUDA 13.
fn driver_reason(driver: Option<&str>) -> Option<String> {
    let Some(version) = driver else {
        return Some("no NVIDIA driver is loaded (/proc/driver/nvidia/version is absent)".into());
    };
    match driver_major(version) {
        Some(major) if major >= MIN_DRIVER_MAJOR => None,
        _ => Some(format!("NVIDIA driver {version} is older than the {MIN_DRIVER_MAJOR} that CUDA 13 needs")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir for one test.
    fn temp_tree(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mmrt-cuda-libs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Empty files at `root/rel` for each `rel`.
    fn touch(root: &Path, rels: &[&str]) {
        for rel in rels {
            let file = root.join(rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"").unwrap();
        }
    }

    /// The CUDA 13 wheels' layout (onnxruntime-gpu 1.31.1 with its [cuda,cudnn] extras).
    const CU13_TREE: &[&str] = &[
        "onnxruntime/capi/libonnxruntime.so.1.31.1",
        "onnxruntime/capi/libonnxruntime_providers_cuda.so",
        "onnxruntime/capi/libonnxruntime_providers_shared.so",
        "nvidia/cu13/lib/libcudart.so.13",
        "nvidia/cu13/lib/libnvJitLink.so.13",
        "nvidia/cu13/lib/libnvrtc.so.13",
        "nvidia/cu13/lib/libnvrtc-builtins.so.13.5",
        "nvidia/cu13/lib/libcublasLt.so.13",
        "nvidia/cu13/lib/libcublas.so.13",
        "nvidia/cu13/lib/libnvblas.so.13",
        "nvidia/cu13/lib/libcurand.so.10",
        "nvidia/cu13/lib/libcufft.so.12",
        "nvidia/cu13/lib/libcufftw.so.12",
        "nvidia/cudnn/lib/libcudnn.so.9",
        "nvidia/cudnn/lib/libcudnn_ops.so.9",
        "nvidia/cudnn/lib/libcudnn_graph.so.9",
    ];

    fn names(files: &[PathBuf]) -> Vec<String> {
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn scan_finds_cuda13_layout_in_dependency_order() {
        let root = temp_tree("cu13");
        touch(&root, CU13_TREE);
        let libs = scan(Some(&root));
        assert_eq!(
            names(&libs.found),
            [
                "libcudart.so.13", "libnvJitLink.so.13", "libnvrtc.so.13", "libnvrtc-builtins.so.13.5", "libcublasLt.so.13",
                "libcublas.so.13", "libcurand.so.10", "libcufft.so.12", "libcudnn.so.9", "libcudnn_graph.so.9", "libcudnn_ops.so.9",
            ]
        );
        assert!(libs.missing.is_empty(), "{:?}", libs.missing);
        assert!(libs.preloaded.is_empty(), "a scan opens nothing");
        assert!(libs.found[0].ends_with("nvidia/cu13/lib/libcudart.so.13"));
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn scan_handles_per_package_folders() {
        let root = temp_tree("per-package");
        touch(&root, &["nvidia/cuda_runtime/lib/libcudart.so.13", "nvidia/cublas/lib/libcublas.so.13", "nvidia/cudnn/lib/libcudnn.so.9"]);
        let libs = scan(Some(&root));
        assert_eq!(names(&libs.found), ["libcudart.so.13", "libcublas.so.13", "libcudnn.so.9"]);
        assert_eq!(libs.missing, ["libnvJitLink.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12"]);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn scan_without_root_or_folders_reports_all_required_missing() {
        let required = CUDA_LIBS.iter().filter(|l| l.required).count();
        assert_eq!(scan(None).missing.len(), required);
        let root = temp_tree("empty");
        assert_eq!(scan(Some(&root)).missing.len(), required, "no nvidia/ folder at all");
        assert_eq!(scan(Some(Path::new("/nonexistent/mmrt"))).missing.len(), required);
        std::fs::remove_dir_all(root).ok();
    }

    #[cfg(unix)]
    #[test]
    fn scan_skips_non_utf8_names() {
        use std::os::unix::ffi::OsStrExt;
        let root = temp_tree("non-utf8");
        let dir = root.join("nvidia/cu13/lib");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"libnvrtc-builtins.so.13\xff")), b"").unwrap();
        assert!(scan(Some(&root)).found.is_empty());
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn root_and_gpu_capability_from_the_capi_folder() {
        let root = temp_tree("root");
        touch(&root, CU13_TREE);
        let capi = root.join("onnxruntime/capi");
        let canonical = std::fs::canonicalize(&root).unwrap();
        assert_eq!(nvidia_root(&capi.join("libonnxruntime.so.1.31.1")), Some(canonical.clone()));
        assert_eq!(nvidia_root(&capi), Some(canonical));
        assert!(is_gpu_capable(&capi) && is_gpu_capable(&capi.join("libonnxruntime.so.1.31.1")));
        let cpu = temp_tree("root-cpu");
        touch(&cpu, &["onnxruntime/capi/libonnxruntime.so.1.31.1"]);
        assert!(!is_gpu_capable(&cpu.join("onnxruntime/capi")));
        assert_eq!(nvidia_root(&cpu.join("onnxruntime/capi")), None);
        assert_eq!(nvidia_root(Path::new("/")), None);
        std::fs::remove_dir_all(root).ok();
        std::fs::remove_dir_all(cpu).ok();
    }

    #[test]
    fn driver_version_lines() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:16 UTC 2025\nGCC version:  gcc 12\n";
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build  (dvs-builder@U16)\n";
        assert_eq!(parse_driver_version(proprietary).as_deref(), Some("580.65.06"));
        assert_eq!(parse_driver_version(open).as_deref(), Some("570.133.20"));
        assert_eq!(parse_driver_version("garbage"), None);
        assert_eq!(driver_reason(Some("580.65.06")), None);
        assert!(driver_reason(Some("570.133.20")).unwrap().contains("older than the 580"));
        assert!(driver_reason(None).unwrap().contains("no NVIDIA driver"));
    }

    #[test]
    fn reasons_name_the_missing_files_and_the_fix() {
        let root = temp_tree("reasons");
        touch(&root, &CU13_TREE[..4]);
        let lib = root.join("onnxruntime/capi/libonnxruntime.so.1.31.1");
        let why = unavailable_reason(&lib, None).unwrap();
        assert!(why.contains("libcublasLt.so.13") && why.contains("libcudnn.so.9"), "{why}");
        assert!(why.contains(".ci/setup-ort-gpu") && why.contains(">= 580"), "{why}");
        let cpu = temp_tree("reasons-cpu");
        touch(&cpu, &["libonnxruntime.so.1.31.1"]);
        let why = unavailable_reason(&cpu.join("libonnxruntime.so.1.31.1"), None).unwrap();
        assert!(why.contains("CPU build") && why.contains(CUDA_PROVIDER_FILE), "{why}");
        let complete = CudaLibraries { root: Some(root.clone()), driver: Some("580.65.06".into()), ..Default::default() };
        assert_eq!(unavailable_reason(&lib, Some(&complete)), None, "nothing known to be wrong");
        std::fs::remove_dir_all(root).ok();
        std::fs::remove_dir_all(cpu).ok();
    }
}
