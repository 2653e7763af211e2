//! Signal-token runs through the `DecoderModel` seam, with the scripted fake
//! model (no ONNX Runtime) whose logits follow a script and whose "hidden
//! state" at each forward pass is the id of the token that pass consumed (so the collected states name the
//! positions they came from). Table-driven: where `[IMG0]` appears, the token
//! budget, and what the generation loop must emit and collect.

use mmrt::generate::{generate, Decoding, GenerationConfig, ScriptedModel, SignalTokens, StepInput};

const VOCAB: usize = 32;
const IMG: [u32; 3] = [20, 21, 22];

struct Case {
    what: &'static str,
    script: Vec<u32>,
    max_new_tokens: usize,
    context: usize,
    ids: Vec<u32>,
    runs: usize,
}

fn run(script: Vec<u32>, max_new_tokens: usize, context: usize, with_hidden: bool) -> mmrt::Result<mmrt::generate::Generation> {
    // Greedy picks `script[i]` at generation step i (then 5 forever).
    let mut model = ScriptedModel::new(script, 5, VOCAB, context);
    if with_hidden {
        model = model.with_hidden();
    }
    let prompt = [1u32, 2, 3];
    let signals = SignalTokens { ids: IMG.to_vec() };
    let config = GenerationConfig { max_new_tokens, ..Default::default() };
    let mut decoding = Decoding::new(&config, &[2]).with_signals(Some(&signals));
    generate(&mut model, StepInput::Ids(&prompt), &prompt, &mut decoding, |_| Ok(()))
}

#[test]
fn signal_runs_are_forced_and_their_hidden_states_collected() {
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
    let err = run(vec![20], 10, 64, false).unwrap_err().to_string();
    assert!(err.contains("hidden_states") && err.contains("returns none"), "{err}");
    // Without signal tokens in the output, a model without hidden states is fine.
    assert!(run(vec![7, 2], 10, 64, false).is_ok());
}
