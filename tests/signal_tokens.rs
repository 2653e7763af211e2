//! Signal-token runs through the `LanguageModel` seam, with a fake model whose
//! logits follow a script and whose "hidden state" at each forward pass is the
//! id of the token that pass consumed (so the collected states name the
//! positions they came from). Table-driven: where `[IMG0]` appears, the token
//! budget, and what the generation loop must emit and collect.

use mmrt::generate::{generate_with_signals, GenerateParams, LanguageModel, Sampler, SamplingConfig, SignalTokens};
use mmrt::kv_cache::KvCache;
use mmrt::runtime::OrtRuntime;
use ort::value::{DynValue, Tensor};

const VOCAB: usize = 32;
const IMG: [u32; 3] = [20, 21, 22];

/// Greedy picks `script[i]` at generation step i (then 5 forever); the hidden
/// state of a pass is `[input id, input id]`.
struct Scripted {
    script: Vec<u32>,
    step: usize,
    last_input: Option<u32>,
    with_hidden: bool,
    context: usize,
}

impl LanguageModel for Scripted {
    fn embed(&mut self, ids: &[u32]) -> mmrt::Result<DynValue> {
        // The fake "embedding" carries the ids so forward knows what it consumed.
        let data: Vec<f32> = ids.iter().map(|&i| i as f32).collect();
        Ok(Tensor::from_array((vec![1, ids.len(), 1], data)).unwrap().into_dyn())
    }

    fn forward(&mut self, embeds: DynValue, cache: KvCache, logits: &mut Vec<f32>) -> mmrt::Result<KvCache> {
        let (_, data) = embeds.try_extract_tensor::<f32>().unwrap();
        self.last_input = Some(*data.last().unwrap() as u32);
        let total = cache.seq_len() + data.len();
        let next = self.script.get(self.step).copied().unwrap_or(5);
        self.step += 1;
        logits.clear();
        logits.resize(VOCAB, 0.0);
        logits[next as usize] = 1.0;
        Ok(KvCache::new(Vec::new(), total))
    }

    fn empty_cache(&mut self) -> mmrt::Result<KvCache> {
        Ok(KvCache::new(Vec::new(), 0))
    }

    fn context_length(&self) -> usize {
        self.context
    }

    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> mmrt::Result<bool> {
        if !self.with_hidden {
            return Ok(false);
        }
        let id = self.last_input.expect("a forward pass ran") as f32;
        out.clear();
        out.extend([id, id]);
        Ok(true)
    }
}

struct Case {
    what: &'static str,
    script: Vec<u32>,
    max_new_tokens: usize,
    context: usize,
    ids: Vec<u32>,
    runs: usize,
}

fn run(script: Vec<u32>, max_new_tokens: usize, context: usize, with_hidden: bool) -> mmrt::Result<mmrt::generate::Generation> {
    let mut model = Scripted { script, step: 0, last_input: None, with_hidden, context };
    let prompt = [1u32, 2, 3];
    let embeds = model.embed(&prompt)?;
    let params = GenerateParams { max_new_tokens, stop_tokens: vec![2] };
    let signals = SignalTokens { ids: IMG.to_vec() };
    generate_with_signals(&mut model, embeds, &prompt, &mut Sampler::new(SamplingConfig::default()), &params, Some(&signals), |_| Ok(()))
}

#[test]
fn signal_runs_are_forced_and_their_hidden_states_collected() {
    OrtRuntime::load(None).expect("ONNX Runtime");
    // Script entries after [IMG0] are ignored while the run is forced: 9s mark them.
    let cases = [
        Case { what: "no signal", script: vec![7, 8, 2], max_new_tokens: 10, context: 64, ids: vec![7, 8, 2], runs: 0 },
        Case { what: "one run, then text", script: vec![7, 20, 9, 9, 8, 2], max_new_tokens: 10, context: 64, ids: vec![7, 20, 21, 22, 8, 2], runs: 1 },
        Case { what: "two runs", script: vec![20, 9, 9, 20, 9, 9, 2], max_new_tokens: 10, context: 64, ids: vec![20, 21, 22, 20, 21, 22, 2], runs: 2 },
        Case { what: "run ends the budget", script: vec![7, 20], max_new_tokens: 4, context: 64, ids: vec![7, 20, 21, 22], runs: 1 },
        Case { what: "budget cuts the run", script: vec![7, 8, 20], max_new_tokens: 4, context: 64, ids: vec![7, 8, 20, 21], runs: 0 },
        Case { what: "stray later signal token", script: vec![21, 22, 2], max_new_tokens: 10, context: 64, ids: vec![21, 22, 2], runs: 0 },
        Case { what: "context ends the run", script: vec![20], max_new_tokens: 10, context: 5, ids: vec![20, 21, 22], runs: 0 },
    ];
    for case in cases {
        let g = run(case.script, case.max_new_tokens, case.context, true).unwrap();
        assert_eq!(g.ids, case.ids, "{}: ids", case.what);
        assert_eq!(g.signal_hidden.len(), case.runs, "{}: complete runs", case.what);
        for run in &g.signal_hidden {
            // Each state comes from the pass that consumed that signal token, in order.
            assert_eq!(run, &vec![20.0, 20.0, 21.0, 21.0, 22.0, 22.0], "{}: hidden states", case.what);
        }
    }
}

#[test]
fn signal_tokens_need_hidden_states() {
    OrtRuntime::load(None).expect("ONNX Runtime");
    let err = run(vec![20], 10, 64, false).unwrap_err().to_string();
    assert!(err.contains("hidden_states") && err.contains("returns none"), "{err}");
    // Without signal tokens in the output, a model without hidden states is fine.
    assert!(run(vec![7, 2], 10, 64, false).is_ok());
}
