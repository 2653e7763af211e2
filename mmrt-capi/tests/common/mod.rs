//! What the C ABI tests share: the built artifacts (`libmmrt_c`, the `mmrt`
//! binary), ONNX Runtime's path for child processes, and `mmrt run --json`
//! as the independent reference every ABI result is compared with.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The repository (workspace) root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("mmrt-capi sits in the workspace").to_path_buf()
}

/// `models/tiny`, absolute.
pub fn tiny() -> PathBuf {
    root().join("models/tiny")
}

/// `tests/fixtures/images/<name>`, absolute.
pub fn image(name: &str) -> PathBuf {
    root().join("tests/fixtures/images").join(name)
}

/// `target/<profile>`: this test binary lives in its `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// Newest modification time of the files under `dir`.
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let m = if path.is_dir() { newest(&path) } else { entry.metadata().and_then(|m| m.modified()).unwrap_or(t) };
        t = t.max(m);
    }
    t
}

/// The shared library and the `mmrt` binary, built by `cargo build
/// --all-targets` (as CI does) before the tests; `cargo test` alone builds
/// neither (an integration test links the rlib). Missing, or older than the
/// sources, they are built here with the same cargo and profile.
fn built() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let lib = dir.join(format!("{}mmrt_c{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
        let bin = dir.join(format!("mmrt{}", std::env::consts::EXE_SUFFIX));
        let root = root();
        let sources = [root.join("src"), root.join("mmrt-capi/src"), root.join("mmrt-cli/src")].iter().map(|d| newest(d)).max().expect("three folders");
        let fresh = |p: &Path| p.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= sources);
        if !(fresh(&lib) && fresh(&bin)) {
            let profile = dir.file_name().and_then(|n| n.to_str()).expect("profile folder name");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "mmrt-capi", "-p", "mmrt-cli"]).current_dir(&root);
            cmd.env("CARGO_TARGET_DIR", dir.parent().expect("target dir"));
            match profile {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                other => {
                    cmd.args(["--profile", other]);
                }
            }
            eprintln!("building libmmrt_c and mmrt (missing or older than the sources): {cmd:?}");
            let status = cmd.status().expect("run cargo");
            assert!(status.success(), "{cmd:?} failed");
        }
        assert!(lib.is_file(), "{} is missing", lib.display());
        assert!(bin.is_file(), "{} is missing", bin.display());
        (lib, bin)
    })
}

/// `target/<profile>/libmmrt_c.so`, built and fresh.
pub fn shared_library() -> PathBuf {
    built().0.clone()
}

/// `target/<profile>/mmrt`, built and fresh.
pub fn mmrt_bin() -> PathBuf {
    built().1.clone()
}

/// The ONNX Runtime library this process loads (as the library finds it),
/// passed to child processes as MMRT_ORT_LIB so they all use the same one.
pub fn ort_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        mmrt::runtime::OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)").info.library
    })
    .clone()
}

/// What `mmrt run --json` generated.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub token_ids: Vec<u32>,
    pub text: String,
    pub prompt_tokens: usize,
}

/// `mmrt run --bundle BUNDLE --prompt PROMPT [--image I]... --threads 1 --json EXTRA...`.
pub fn mmrt_run(bundle: &Path, prompt: &str, images: &[PathBuf], extra: &[&str]) -> Reference {
    let mut cmd = Command::new(mmrt_bin());
    cmd.arg("run").arg("--bundle").arg(bundle).arg("--prompt").arg(prompt);
    for image in images {
        cmd.arg("--image").arg(image);
    }
    cmd.args(["--threads", "1", "--json"]).args(extra).env("MMRT_ORT_LIB", ort_lib()).env_remove("RUST_LOG");
    let out = cmd.output().expect("spawn mmrt");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("mmrt run --json prints one JSON object");
    Reference {
        token_ids: json["token_ids"].as_array().expect("token_ids").iter().map(|v| v.as_u64().expect("id") as u32).collect(),
        text: json["text"].as_str().expect("text").to_string(),
        prompt_tokens: json["prompt_tokens"].as_u64().expect("prompt_tokens") as usize,
    }
}

/// The ids an example printed on its `token_ids:` line.
pub fn printed_ids(stdout: &str) -> Vec<u32> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("token_ids:")).unwrap_or_else(|| panic!("no token_ids: line in\n{stdout}"));
    line.split_whitespace().map(|t| t.parse().expect("an id")).collect()
}

/// A fresh folder for this test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mmrt-capi").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
