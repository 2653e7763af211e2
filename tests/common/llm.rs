//! Checks shared by the GGUF-imported LLM bundles (Gemma 3, SmolLM2, Qwen2.5): greedy ids
//! through the Rust pipeline against transformers' `generate()` goldens, and teacher-forced
//! agreement of the quantized bundle with the float32 one through the decoder's own KV path.

use std::path::Path;

use mmrt::generate::sampler::argmax;
use mmrt::generate::{DecoderModel, StepInput};
use mmrt::stages::decoder::Decoder;
use mmrt::Request;

use super::golden::LlmGreedy;
use super::{decoder, pipeline, runtime, session_config};

/// Every golden case through `dir`'s pipeline: the prompt tokenizes (template or chat template
/// included) to the golden's ids and greedy decoding gives transformers' ids. Returns the longest
/// prompt, for callers that need one past a sliding window.
#[track_caller]
pub fn check_greedy_ids(dir: &Path, g: &LlmGreedy) -> usize {
    let mut pipeline = pipeline(dir, &session_config(2));
    assert!(g.cases.len() >= 5, "at least five golden prompts, got {}", g.cases.len());
    let full = g.cases.iter().filter(|c| c.expected_ids.len() == g.max_new_tokens).count();
    let mut longest = 0;
    for case in &g.cases {
        let name = &case.name;
        let request = Request::new(case.prompt.as_str()).with_chat(case.chat).with_max_new_tokens(g.max_new_tokens);
        let out = pipeline.run(&request, |_| Ok(())).expect("run");
        assert_eq!(out.prompt_ids, case.prompt_ids, "{}: {name}: prompt tokenization", dir.display());
        assert_eq!(out.token_ids, case.expected_ids, "{}: {name}: greedy ids", dir.display());
        longest = longest.max(out.prompt_ids.len());
    }
    assert!(full >= 4, "{}: only {full} golden prompts run the full {} tokens", dir.display(), g.max_new_tokens);
    longest
}

/// Feed `ids` one token at a time (prefill of one token, then decode steps) and return the
/// argmax after each.
fn teacher_forced_argmax(model: &mut Decoder, ids: &[u32]) -> Vec<u32> {
    let mut cache = model.new_cache().expect("empty cache");
    let mut logits = Vec::new();
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        cache = model.step(StepInput::Ids(&[id]), cache, &mut logits).expect("forward");
        out.push(argmax(&logits));
    }
    out
}

/// Teacher-forced next-token agreement of `quant_dir` with `f32_dir` on the golden's natural-text
/// prompts (first 200 tokens of each, then the expected continuation). Returns (agreeing, total).
pub fn agreement(f32_dir: &Path, quant_dir: &Path, g: &LlmGreedy) -> (usize, usize) {
    let runtime = runtime();
    let open = |dir: &Path| decoder(&runtime, dir, session_config(2));
    let (mut reference, mut quant) = (open(f32_dir), open(quant_dir));
    let (mut agree, mut total) = (0, 0);
    for case in g.cases.iter().filter(|c| !c.chat && c.name != "capital") {
        let mut seq = case.prompt_ids.clone();
        seq.truncate(200);
        seq.extend(&case.expected_ids);
        let a = teacher_forced_argmax(&mut reference, &seq);
        let b = teacher_forced_argmax(&mut quant, &seq);
        agree += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        total += a.len();
    }
    eprintln!("{} vs f32 teacher-forced agreement: {agree}/{total} = {:.4}", quant_dir.display(), agree as f64 / total as f64);
    (agree, total)
}
