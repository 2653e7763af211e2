//! The C and C++ examples, compiled with the system compilers against the
//! committed header and the built `libmmrt_c`, run on `models/tiny` (text, and
//! text with an image): each prints the same token ids as `mmrt run`. The C
//! example also runs under valgrind (no invalid access, no definite leak).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Compile `source` with `compiler` into `dir`, linked to the shared library.
fn compile(compiler: &str, source: &str, std: &str, dir: &Path) -> PathBuf {
    let lib = shared_library();
    let lib_dir = lib.parent().expect("library folder");
    let exe = dir.join(Path::new(source).file_stem().expect("stem"));
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg(root().join(source))
        .arg("-I")
        .arg(root().join("mmrt-capi/include"))
        .arg("-L")
        .arg(lib_dir)
        .arg("-lmmrt_c")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe);
    let out = cmd.output().unwrap_or_else(|e| panic!("{compiler} is needed to build the examples: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// Run an example (or `wrapper example`) with ARGS; stdout, after checking it exited 0.
fn run(wrapper: &[&str], exe: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).env("MMRT_ORT_LIB", ort_lib()).env_remove("RUST_LOG");
    let out = cmd.output().expect("spawn the example");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    (stdout, stderr)
}

/// The cases: (prompt, images).
fn cases() -> Vec<(&'static str, Vec<PathBuf>)> {
    vec![("Once upon a time", vec![]), ("Describe the image.", vec![image("a_32.png")])]
}

/// Example arguments for a case (one thread, as `mmrt_run` passes).
fn args<'a>(bundle: &'a str, prompt: &'a str, images: &'a [PathBuf]) -> Vec<&'a str> {
    let mut args = vec![bundle, prompt, "--threads", "1"];
    for image in images {
        args.extend(["--image", image.to_str().expect("UTF-8 path")]);
    }
    args
}

fn check_example(compiler: &str, source: &str, std: &str) {
    let dir = temp_dir(&format!("example-{compiler}"));
    let exe = compile(compiler, source, std, &dir);
    let bundle = tiny();
    let bundle = bundle.to_str().expect("UTF-8 path");
    for (prompt, images) in cases() {
        let reference = mmrt_run(&tiny(), prompt, &images, &[]);
        assert!(!reference.token_ids.is_empty(), "mmrt run generated nothing for {prompt:?}");
        let (stdout, _) = run(&[], &exe, &args(bundle, prompt, &images));
        assert_eq!(printed_ids(&stdout), reference.token_ids, "{source} vs mmrt run, prompt {prompt:?} images {images:?}");
        // The streamed pieces, before the ids, are the result's text.
        let streamed = stdout.split("\ntoken_ids:").next().expect("text before the ids");
        assert_eq!(streamed, reference.text, "{source}: streamed text vs mmrt run's");
    }
}

#[test]
fn c_example_generates_what_mmrt_run_does() {
    check_example("cc", "examples/c/generate.c", "c99");
}

#[test]
fn cpp_example_generates_what_mmrt_run_does() {
    check_example("c++", "examples/cpp/generate.cpp", "c++17");
}

/// valgrind's memcheck on the C example: an invalid read or write, a use of
/// uninitialised memory or a definitely lost block fails (exit code 1). What
/// ONNX Runtime itself reports is suppressed narrowly in `valgrind.supp`.
#[test]
fn c_example_is_valgrind_clean() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("SKIPPED: valgrind is not installed (apt-get install valgrind)");
        return;
    }
    let dir = temp_dir("valgrind");
    let exe = compile("cc", "examples/c/generate.c", "c99", &dir);
    let supp = root().join("mmrt-capi/tests/valgrind.supp");
    let supp_arg = format!("--suppressions={}", supp.display());
    let wrapper = [
        "valgrind",
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        supp_arg.as_str(),
        "--quiet",
    ];
    let bundle = tiny();
    let images = vec![image("a_32.png")];
    let prompt = "Describe the image.";
    let reference = mmrt_run(&tiny(), prompt, &images, &[]);
    let (stdout, stderr) = run(&wrapper, &exe, &args(bundle.to_str().expect("UTF-8"), prompt, &images));
    assert_eq!(printed_ids(&stdout), reference.token_ids, "C example under valgrind vs mmrt run");
    assert!(!stderr.contains("definitely lost"), "valgrind reported a leak:\n{stderr}");
}

/// The C example linked with the static library (`libmmrt_c.a`) instead.
#[test]
fn c_example_links_statically() {
    let archive = shared_library().with_file_name("libmmrt_c.a");
    if cfg!(not(target_os = "linux")) {
        eprintln!("SKIPPED: the static link line below is Linux's");
        return;
    }
    assert!(archive.is_file(), "{} is missing", archive.display());
    let exe = temp_dir("static").join("generate");
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c99", "-Wall", "-Werror"])
        .arg(root().join("examples/c/generate.c"))
        .arg("-I")
        .arg(root().join("mmrt-capi/include"))
        .arg(&archive)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe);
    let out = cmd.output().expect("cc");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let reference = mmrt_run(&tiny(), "Once upon a time", &[], &[]);
    let (stdout, _) = run(&[], &exe, &args(tiny().to_str().expect("UTF-8"), "Once upon a time", &[]));
    assert_eq!(printed_ids(&stdout), reference.token_ids, "statically linked C example vs mmrt run");
}
