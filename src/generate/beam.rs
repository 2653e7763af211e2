//! Beam search, with the semantics of `transformers`' `generate(num_beams=k)`
//! (batch 1, no sampling, `early_stopping=False`), so its ids can be compared
//! with PyTorch's:
//!
//! * each step, every running beam's logits become log-probabilities
//!   (`log_softmax` over the whole vocabulary, *then* the logits processor, e.g.
//!   suppressed tokens at `-inf`), added to the beam's running score;
//! * the best `2k` (beam, token) candidates over all beams are kept, best first;
//! * a candidate that hits a stop condition (a stop token, or the token budget)
//!   and ranks among the first `k` becomes a finished hypothesis scored
//!   `sum_logprobs / generated_len ^ length_penalty`; the best `k` finished ones
//!   are kept;
//! * the best `k` candidates that do not stop continue as the running beams;
//! * search ends when no candidate continues, or when `k` hypotheses are
//!   finished and the best running beam's score divided by its current length
//!   cannot beat the worst of them (transformers' default heuristic).
//!
//! The model is reached through the loop's own [`DecoderModel`]: the running
//! beams are one batch, stepped by one [`DecoderModel::step_beams`] call (the
//! weights are read once per step, not once per beam), and after each
//! selection [`DecoderModel::select_beams`] rearranges the batched cache by
//! parent index (no per-beam copies of a state). The logits processors are
//! the loop's [`ProcessorChain`], so tests drive the search with a scripted fake.

use crate::error::{Error, Result};
use crate::generate::{DecoderModel, ProcessorChain, StepContext, StopReason};

/// Beam search settings.
#[derive(Debug, Clone)]
pub struct BeamSettings {
    /// Beams kept (`k`); 1 is greedy decoding.
    pub num_beams: usize,
    /// Exponent of the generated length dividing finished scores (transformers' default 1.0).
    pub length_penalty: f32,
    /// New tokens at most (the last one included).
    pub max_new_tokens: usize,
    /// Tokens that finish a hypothesis.
    pub stop_tokens: Vec<u32>,
}

/// The best hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamResult {
    /// Generated ids (a final stop token included).
    pub ids: Vec<u32>,
    /// `sum_logprobs / len ^ length_penalty`.
    pub score: f32,
    /// Why the hypothesis ended.
    pub stop_reason: StopReason,
}

/// A running beam: its generated ids and accumulated log-probability. Its
/// cache row and logits row have the beam's index in the batch.
struct Running {
    ids: Vec<u32>,
    score: f32,
}

/// A candidate continuation: accumulated log-probability, parent beam, token.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
}

/// Run beam search from `state`, whose next-token logits are `logits`.
/// `processors` adjust each beam's log-probabilities in place (e.g. suppressed
/// tokens at `-inf`); they see the beam's generated ids as both history and
/// generated ids.
pub fn beam_search<M: DecoderModel + ?Sized>(
    model: &mut M,
    state: M::Cache,
    mut logits: Vec<f32>,
    settings: &BeamSettings,
    processors: &mut ProcessorChain,
) -> Result<BeamResult> {
    let k = settings.num_beams.max(1);
    let vocab = logits.len();
    let mut running = vec![Running { ids: Vec::new(), score: 0.0 }];
    let mut state = Some(state);
    let mut finished: Vec<(Vec<u32>, f32)> = Vec::with_capacity(k);
    let penalty = |len: usize| (len as f32).powf(settings.length_penalty);
    if settings.max_new_tokens == 0 {
        return Ok(BeamResult { ids: Vec::new(), score: 0.0, stop_reason: StopReason::MaxTokens });
    }
    loop {
        if logits.len() != running.len() * vocab {
            return Err(Error::Request(format!(
                "stage \"{}\": a beam step returned {} logits for {} beams of {vocab}",
                model.name(),
                logits.len(),
                running.len()
            )));
        }
        let gen_len = running[0].ids.len() + 1;
        let mut candidates = Vec::with_capacity(2 * k * running.len());
        for (beam, (hyp, row)) in running.iter().zip(logits.chunks_exact_mut(vocab)).enumerate() {
            log_softmax(row);
            processors.process(row, &StepContext { history: &hyp.ids, generated: &hyp.ids });
            top_candidates(row, hyp.score, beam, 2 * k, &mut candidates);
        }
        // Best first; ties go to the lower flat index (beam, then token), like a stable top-k.
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.beam.cmp(&b.beam)).then(a.token.cmp(&b.token)));
        candidates.truncate(2 * k);
        let stops = |c: &Candidate| settings.stop_tokens.contains(&c.token) || gen_len >= settings.max_new_tokens;
        for c in candidates.iter().take(k).filter(|c| stops(c)) {
            let mut ids = running[c.beam].ids.clone();
            ids.push(c.token);
            keep_best(&mut finished, (ids, c.score / penalty(gen_len)), k);
        }
        let chosen: Vec<Candidate> = candidates.iter().filter(|c| !stops(c)).take(k).copied().collect();
        let Some(best) = chosen.first() else { break };
        let done = finished.len() == k && best.score / penalty(gen_len) <= finished[k - 1].1;
        if done {
            break;
        }
        let parents: Vec<usize> = chosen.iter().map(|c| c.beam).collect();
        let tokens: Vec<u32> = chosen.iter().map(|c| c.token).collect();
        let cache = model.select_beams(state.take().expect("the cache is put back after every step"), &parents)?;
        state = Some(model.step_beams(&tokens, cache, &mut logits)?);
        running = chosen.iter().map(|c| Running { ids: extended(&running[c.beam].ids, c.token), score: c.score }).collect();
    }
    Ok(match finished.into_iter().next() {
        Some((ids, score)) => {
            let stop_reason = match ids.last() {
                Some(t) if settings.stop_tokens.contains(t) => StopReason::StopToken,
                _ => StopReason::MaxTokens,
            };
            BeamResult { ids, score, stop_reason }
        }
        None => BeamResult { ids: Vec::new(), score: 0.0, stop_reason: StopReason::MaxTokens },
    })
}

/// `ids` followed by `token`.
fn extended(ids: &[u32], token: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len() + 1);
    out.extend_from_slice(ids);
    out.push(token);
    out
}

/// In-place `x - log(sum(exp(x)))`, the sum accumulated in f64.
fn log_softmax(values: &mut [f32]) {
    let max = values.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let sum: f64 = values.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let log_sum = max + sum.ln() as f32;
    for v in values.iter_mut() {
        *v -= log_sum;
    }
}

/// Append the `n` best `(score + logprob)` candidates of one beam (enough for the global top `n`).
fn top_candidates(logprobs: &[f32], score: f32, beam: usize, n: usize, out: &mut Vec<Candidate>) {
    let mut best: Vec<Candidate> = Vec::with_capacity(n + 1);
    for (token, &lp) in logprobs.iter().enumerate() {
        if lp == f32::NEG_INFINITY || lp.is_nan() {
            continue;
        }
        let c = Candidate { score: score + lp, beam, token: token as u32 };
        if best.len() == n && c.score <= best[n - 1].score {
            continue;
        }
        let at = best.partition_point(|b| b.score >= c.score);
        best.insert(at, c);
        best.truncate(n);
    }
    out.extend(best);
}

/// Insert a finished hypothesis, keeping the best `k` (best first).
fn keep_best(finished: &mut Vec<(Vec<u32>, f32)>, hyp: (Vec<u32>, f32), k: usize) {
    let at = finished.partition_point(|f| f.1 >= hyp.1);
    if at < k {
        finished.insert(at, hyp);
        finished.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{DecoderCache, LogitsProcessor, StepInput};

    /// A scripted model over a 4-token vocabulary (token 3 stops): the
    /// next-token log-probabilities depend only on the ids so far.
    struct Script {
        /// Beams copied into a second row by `select_beams`.
        forks: usize,
    }

    /// One row of ids per beam.
    struct Ids(Vec<Vec<u32>>);

    impl DecoderCache for Ids {
        fn seq_len(&self) -> usize {
            self.0.first().map_or(0, Vec::len)
        }
    }

    fn table(ids: &[u32]) -> Vec<f32> {
        let p: [f32; 4] = match ids {
            // Greedy takes 0 (0.5) then is stuck with a flat tail; 1 (0.4) leads to a sure stop.
            [] => [0.5, 0.4, 0.1, 0.0],
            [0] => [0.3, 0.3, 0.0, 0.4],
            [1] => [0.0, 0.0, 0.05, 0.95],
            _ => [0.1, 0.1, 0.1, 0.7],
        };
        p.iter().map(|x| x.ln()).collect()
    }

    impl DecoderModel for Script {
        type Cache = Ids;
        fn new_cache(&mut self) -> Result<Ids> {
            Ok(Ids(vec![Vec::new()]))
        }
        fn step(&mut self, input: StepInput<'_>, mut state: Ids, logits: &mut Vec<f32>) -> Result<Ids> {
            let StepInput::Ids(ids) = input else { unreachable!("beam search feeds ids") };
            state.0[0].extend_from_slice(ids);
            *logits = table(&state.0[0]);
            Ok(state)
        }
        fn select_beams(&mut self, state: Ids, parents: &[usize]) -> Result<Ids> {
            let mut seen = vec![false; state.0.len()];
            for &p in parents {
                self.forks += usize::from(std::mem::replace(&mut seen[p], true));
            }
            Ok(Ids(parents.iter().map(|&p| state.0[p].clone()).collect()))
        }
        fn step_beams(&mut self, tokens: &[u32], mut state: Ids, logits: &mut Vec<f32>) -> Result<Ids> {
            assert_eq!(tokens.len(), state.0.len(), "one token per beam");
            logits.clear();
            for (row, &t) in state.0.iter_mut().zip(tokens) {
                row.push(t);
                logits.extend(table(row));
            }
            Ok(state)
        }
        fn context_length(&self) -> usize {
            64
        }
        fn name(&self) -> &str {
            "script"
        }
    }

    fn search(num_beams: usize, max_new_tokens: usize, processors: &mut ProcessorChain) -> (BeamResult, usize) {
        let mut model = Script { forks: 0 };
        let settings = BeamSettings { num_beams, length_penalty: 1.0, max_new_tokens, stop_tokens: vec![3] };
        let result = beam_search(&mut model, Ids(vec![Vec::new()]), table(&[]), &settings, processors).unwrap();
        (result, model.forks)
    }

    fn run(num_beams: usize, max_new_tokens: usize) -> (BeamResult, usize) {
        search(num_beams, max_new_tokens, &mut ProcessorChain::new())
    }

    #[test]
    fn one_beam_is_greedy_and_two_find_the_likelier_sequence() {
        // Greedy: 0 (0.5), then 3 (0.4): p = 0.20, score ln(0.2) / 2.
        let (greedy, _) = run(1, 8);
        assert_eq!(greedy.ids, vec![0, 3]);
        assert!((greedy.score - 0.2f32.ln() / 2.0).abs() < 1e-6);
        // Two beams also see 1 then 3: p = 0.38 > 0.20.
        let (beam, forks) = run(2, 8);
        assert_eq!(beam.ids, vec![1, 3]);
        assert_eq!(beam.stop_reason, StopReason::StopToken);
        assert!((beam.score - 0.38f32.ln() / 2.0).abs() < 1e-6);
        assert!(forks > 0, "two continuations of one beam share its cache row");
    }

    #[test]
    fn the_token_budget_ends_every_hypothesis() {
        let (r, _) = run(2, 1);
        assert_eq!(r.ids, vec![0]);
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
    }

    #[test]
    fn processed_tokens_are_never_chosen() {
        struct NoOneFirst;
        impl LogitsProcessor for NoOneFirst {
            fn process(&mut self, lp: &mut [f32], step: &StepContext<'_>) {
                if step.generated.is_empty() {
                    lp[1] = f32::NEG_INFINITY;
                }
            }
        }
        let (r, _) = search(2, 8, &mut ProcessorChain::new().with(NoOneFirst));
        assert_eq!(r.ids.first(), Some(&0));
    }

    #[test]
    fn log_softmax_normalizes() {
        let mut v = vec![1.0f32, 2.0, 3.0];
        log_softmax(&mut v);
        let total: f32 = v.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
