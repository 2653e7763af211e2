//! `tests/ctypes_smoke.py`: libmmrt_c loaded by Python's ctypes (stdlib only),
//! its generations compared with `mmrt run`, its error paths checked.

mod common;

use std::process::Command;

use common::*;

#[test]
fn python_ctypes_smoke() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    }
    let script = root().join("mmrt-capi/tests/ctypes_smoke.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(shared_library()).arg(mmrt_bin()).arg(tiny()).arg(image("a_32.png"));
    cmd.env("MMRT_ORT_LIB", ort_lib()).env_remove("RUST_LOG");
    let out = cmd.output().expect("run python3");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
