//! The `mmrt` executable: running it, what one run left behind, and the checks
//! that a failed run is clean (non-zero exit, one `error:` line naming the
//! problem, never a panic or a backtrace).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

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

/// What one run of the binary left behind.
pub struct Outcome {
    /// Exited with status 0.
    pub ok: bool,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The exit code, `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// `mmrt ARGS` run from the repository root (relative paths in ARGS are the
/// repository's), with a clean logging environment and backtraces switched
/// on, so a panic anywhere would show up in stderr.
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(mmrt_bin());
    cmd.args(args).current_dir(super::root()).env("RUST_BACKTRACE", "1").env_remove("RUST_LOG");
    cmd
}

/// Run a command built by [`command`] (with its own tweaks) to the end.
pub fn output(mut cmd: Command) -> Outcome {
    let out = cmd.output().expect("spawn mmrt");
    Outcome {
        ok: out.status.success(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mmrt ARGS`, run to the end.
pub fn mmrt<S: AsRef<OsStr>>(args: &[S]) -> Outcome {
    output(command(args))
}

/// `mmrt run --bundle BUNDLE --prompt PROMPT [--image I]... EXTRA...`.
pub fn run_bundle(bundle: &Path, prompt: &str, images: &[&Path], extra: &[&str]) -> Outcome {
    let mut args: Vec<OsString> = vec!["run".into(), "--bundle".into(), bundle.into(), "--prompt".into(), prompt.into()];
    for image in images {
        args.push("--image".into());
        args.push((*image).into());
    }
    args.extend(extra.iter().map(Into::into));
    mmrt(&args)
}

/// Problems with a failed run: none when it exited non-zero with a clean
/// `error:` message that contains every needle.
pub fn failure_problems(out: &Outcome, needles: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if out.status.success() {
        problems.push("exited 0, expected a non-zero status".to_string());
    }
    if out.status.code().is_none() {
        problems.push(format!("killed by a signal ({:?})", out.status));
    }
    if !out.stderr.trim_start().starts_with("error:") {
        problems.push("stderr does not start with \"error:\"".to_string());
    }
    for needle in needles {
        if !out.stderr.contains(needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    problems.extend(panic_problems(&out.stderr));
    problems
}

/// A panic or backtrace in stderr.
pub fn panic_problems(stderr: &str) -> Vec<String> {
    ["panicked", "stack backtrace", "RUST_BACKTRACE", "\n   0: "]
        .iter()
        .filter(|marker| stderr.contains(*marker))
        .map(|marker| format!("stderr contains {marker:?} (a panic or backtrace)"))
        .collect()
}

/// Assert one failed run is clean and says what is wrong.
#[track_caller]
pub fn assert_fails(what: &str, out: &Outcome, needles: &[&str]) {
    let problems = failure_problems(out, needles);
    assert!(problems.is_empty(), "{what}: {}\nstatus: {:?}\nstderr:\n{}", problems.join("; "), out.status, out.stderr);
}

/// Table runner: check every row `(what, outcome, needles)`, then report all
/// failing rows together.
#[track_caller]
pub fn assert_all_fail(rows: Vec<(String, Outcome, Vec<String>)>) {
    let mut report = String::new();
    for (what, out, needles) in &rows {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let problems = failure_problems(out, &needles);
        if !problems.is_empty() {
            report += &format!("\n* {what}: {}\n  status: {:?}\n  stderr: {}", problems.join("; "), out.status, out.stderr.trim());
        }
    }
    assert!(report.is_empty(), "{} of {} cases failed:{report}", report.matches("\n* ").count(), rows.len());
}

/// Needles for [`assert_all_fail`]'s rows.
pub fn strings(needles: &[&str]) -> Vec<String> {
    needles.iter().map(|s| s.to_string()).collect()
}
