//! `mmrt run` on the any-to-any path, through the real binary: a request whose
//! generation emits the signal tokens prints its text and writes an image into
//! `--out-dir`; `--json` lists the file with its modality and stage timings;
//! a request without them writes nothing; bad generation input (zero steps,
//! negative guidance, signal tokens missing from the tokenizer, an unusable
//! output directory) exits non-zero with one clear `error:` line, no panic.
//! Prompts come from `tests/golden/any_to_any.json`, where PyTorch decided
//! which requests emit the signal tokens.

mod common;

use std::path::Path;

use common::bundles::{copy_bundle, edit_manifest, stage_mut};
use common::cli::{assert_fails, mmrt};
use common::{root, TempDir, TINY};

/// `(signal prompt, no-signal prompt)` from the goldens.
fn prompts() -> (String, String) {
    let g = common::golden::any_to_any();
    (g.request(true).prompt.clone(), g.request(false).prompt.clone())
}

#[test]
fn signal_request_prints_text_and_writes_an_image() {
    let (signal, _) = prompts();
    let dir = TempDir::new("text");
    let out_dir = dir.s("out/nested");
    let out = mmrt(&["run", "--bundle", TINY, "--prompt", &signal, "--out-dir", &out_dir, "--steps", "4"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
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
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
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
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
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
    assert_fails("--steps 0", &run(&["--steps", "0"]), &["steps", "at least 1", "got 0"]);
    let huge = run(&["--steps", "5000"]);
    assert_fails("--steps huge", &huge, &["5000", "1000 training timesteps"]);
    assert!(huge.stdout.is_empty(), "rejected before generating any text: {:?}", huge.stdout);
    assert_fails("--guidance -1", &run(&["--guidance", "-1"]), &["guidance scale", ">= 0", "-1"]);
    assert_fails("--guidance nan", &run(&["--guidance", "NaN"]), &["guidance scale"]);

    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let file = dir.s("a-file");
    assert_fails("--out-dir is a file", &run(&["--out-dir", &file]), &["output directory", "a-file", "not a directory"]);
    let under_file = dir.s("a-file/sub");
    assert_fails("--out-dir under a file", &run(&["--out-dir", &under_file]), &["output directory", "cannot be created"]);

    assert_fails(
        "--steps on a bundle without a generator",
        &mmrt(&["run", "--bundle", root().join("models/tiny-f16").to_str().unwrap(), "--prompt", "hi", "--steps", "3"]),
        &["--steps", "has none"],
    );
}

#[test]
fn signal_tokens_missing_from_the_tokenizer_are_a_clear_error() {
    let dir = TempDir::new("tokens");
    let bundle = dir.join("tiny");
    copy_bundle(&common::tiny_dir(), &bundle);
    edit_manifest(&bundle, |json| stage_mut(json, "kind", "output_projector")["signal_tokens"][3] = "[IMG9]".into());
    let out = mmrt(&["run", "--bundle", bundle.to_str().unwrap(), "--prompt", "hi"]);
    assert_fails("missing signal token", &out, &["invalid manifest", "bundle.json", "signal token \"[IMG9]\"", "image_output_projector", "tokenizer.json"]);
}
