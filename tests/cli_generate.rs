//! `mmrt run` on the any-to-any path, through the real binary: a request whose
//! generation emits the signal tokens prints its text and writes an image into
//! `--out-dir`; `--json` lists the file with its modality and stage timings;
//! a request without them writes nothing; bad generation input (zero steps,
//! negative guidance, signal tokens missing from the tokenizer, an unusable
//! output directory) exits non-zero with one clear `error:` line, no panic.
//! Prompts come from `tests/golden/any_to_any.json`, where PyTorch decided
//! which requests emit the signal tokens.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny");
const TINY_F16: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny-f16");

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn mmrt(args: &[&str]) -> Outcome {
    let out = Command::new(common::mmrt_bin()).args(args).env("RUST_BACKTRACE", "1").env_remove("RUST_LOG").output().expect("spawn mmrt");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `(signal prompt, no-signal prompt)` from the goldens.
fn prompts() -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/any_to_any.json");
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let find = |emits: bool| {
        g["signal"]["requests"].as_array().unwrap().iter().find(|r| r["emits_signal"] == emits).unwrap()["prompt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (find(true), find(false))
}

/// A fresh empty directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("mmrt-cli-generate-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn assert_clean_failure(what: &str, out: &Outcome, needles: &[&str]) {
    assert!(out.code.is_some_and(|c| c != 0), "{what}: expected a non-zero exit, got {:?}\n{}", out.code, out.stderr);
    assert!(out.stderr.trim_start().starts_with("error:"), "{what}: stderr should start with error:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{what}: panic\n{}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "{what}: stderr lacks {needle:?}\n{}", out.stderr);
    }
}

#[test]
fn signal_request_prints_text_and_writes_an_image() {
    let (signal, _) = prompts();
    let dir = TempDir::new("text");
    let out_dir = dir.s("out/nested");
    let out = mmrt(&["run", "--bundle", TINY, "--prompt", &signal, "--out-dir", &out_dir, "--steps", "4"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.trim().is_empty(), "text on stdout");
    let png = dir.join("out/nested/image_generator_0.png");
    assert!(out.stderr.contains("wrote") && out.stderr.contains("image_generator_0.png"), "{}", out.stderr);
    let img = image::open(&png).expect("a PNG was written").to_rgb8();
    assert_eq!(img.dimensions(), (32, 32));
}

#[test]
fn json_lists_each_file_with_modality_and_timings() {
    let (signal, _) = prompts();
    let dir = TempDir::new("json");
    let out = mmrt(&["run", "--bundle", TINY, "--prompt", &signal, "--out-dir", &dir.s("o"), "--json", "--steps", "3", "--guidance", "2.5"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    let media = json["media"].as_array().expect("media list");
    assert_eq!(media.len(), 1);
    let m = &media[0];
    assert_eq!(m["modality"], "image");
    assert_eq!(m["format"], "png");
    assert_eq!(m["steps"], 3);
    assert_eq!(m["guidance_scale"], 2.5);
    assert_eq!(m["scheduler"], "DDIMScheduler");
    assert!(Path::new(m["path"].as_str().unwrap()).is_file());
    let t = &m["timings"];
    assert!(t["output_projector"].as_f64().unwrap() > 0.0 && t["decode"].as_f64().unwrap() > 0.0);
    assert_eq!(t["denoise_steps"].as_array().unwrap().len(), 3, "one time per denoiser step");
    for stage in ["output_projector", "denoise", "generator_decode"] {
        assert!(json["stages"][stage].is_number(), "stages.{stage}");
    }
}

#[test]
fn request_without_signal_tokens_writes_no_file() {
    let (_, silent) = prompts();
    let dir = TempDir::new("silent");
    let out = mmrt(&["run", "--bundle", TINY, "--prompt", &silent, "--out-dir", &dir.s("o"), "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["media"], serde_json::json!([]));
    assert_eq!(std::fs::read_dir(dir.join("o")).unwrap().count(), 0);
}

#[test]
fn bad_generation_input_is_a_clear_error() {
    let (signal, _) = prompts();
    let dir = TempDir::new("bad");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--bundle", TINY, "--prompt", signal.as_str()];
        args.extend_from_slice(extra);
        mmrt(&args)
    };
    assert_clean_failure("--steps 0", &run(&["--steps", "0"]), &["steps", "at least 1", "got 0"]);
    let huge = run(&["--steps", "5000"]);
    assert_clean_failure("--steps huge", &huge, &["5000", "1000 training timesteps"]);
    assert!(huge.stdout.is_empty(), "rejected before generating any text: {:?}", huge.stdout);
    assert_clean_failure("--guidance -1", &run(&["--guidance", "-1"]), &["guidance scale", ">= 0", "-1"]);
    assert_clean_failure("--guidance nan", &run(&["--guidance", "NaN"]), &["guidance scale"]);

    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let file = dir.s("a-file");
    assert_clean_failure("--out-dir is a file", &run(&["--out-dir", &file]), &["output directory", "a-file", "not a directory"]);
    let under_file = dir.s("a-file/sub");
    assert_clean_failure("--out-dir under a file", &run(&["--out-dir", &under_file]), &["output directory", "cannot be created"]);

    assert_clean_failure(
        "--steps on a bundle without a generator",
        &mmrt(&["run", "--bundle", TINY_F16, "--prompt", "hi", "--steps", "3"]),
        &["--steps", "has none"],
    );
}

#[test]
fn signal_tokens_missing_from_the_tokenizer_are_a_clear_error() {
    let dir = TempDir::new("tokens");
    let bundle = dir.join("tiny");
    std::fs::create_dir_all(&bundle).unwrap();
    for entry in std::fs::read_dir(TINY).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bundle.join(entry.file_name())).unwrap();
    }
    let manifest = bundle.join("bundle.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let stage = json["stages"].as_array_mut().unwrap().iter_mut().find(|s| s["kind"] == "output_projector").unwrap();
    stage["signal_tokens"][3] = "[IMG9]".into();
    std::fs::write(&manifest, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let out = mmrt(&["run", "--bundle", bundle.to_str().unwrap(), "--prompt", "hi"]);
    assert_clean_failure("missing signal token", &out, &["invalid manifest", "bundle.json", "signal token \"[IMG9]\"", "image_output_projector", "tokenizer.json"]);
}
