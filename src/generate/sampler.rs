//! Choosing the next token from logits: repetition penalty, then greedy or
//! temperature / top-k / top-p sampling with an explicit seed, in the order
//! `transformers`' `generate()` applies its logits processors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Sampling settings. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 selects the arg-max (greedy).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1.0 keeps all.
    pub top_p: f32,
    /// CTRL-style penalty on tokens already in the sequence; 1.0 disables.
    pub repetition_penalty: f32,
    /// RNG seed; the same seed and inputs give the same tokens.
    pub seed: u64,
}

impl Default for SamplingConfig {
    /// Greedy, no penalty, seed 0: the deterministic `generate()` default.
    fn default() -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingConfig {
    /// Reject values that have no meaning.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Request(format!("temperature must be finite and >= 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Request(format!("top-p must be in (0, 1], got {}", self.top_p)));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::Request(format!("repetition penalty must be > 0, got {}", self.repetition_penalty)));
        }
        Ok(())
    }

    /// Whether this configuration always picks the arg-max.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// A seeded sampler with reusable scratch space (no allocation per token after warm-up).
pub struct Sampler {
    config: SamplingConfig,
    rng: ChaCha8Rng,
    candidates: Vec<(f32, u32)>,
    seen: Vec<bool>,
}

impl Sampler {
    /// A sampler for `config`, seeded from `config.seed`.
    pub fn new(config: SamplingConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Self { config, rng, candidates: Vec::new(), seen: Vec::new() }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Pick the next token. `logits` (`[vocab]`) is modified in place by the
    /// penalty; `history` holds the ids seen so far (prompt and generated).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        apply_repetition_penalty(logits, history, self.config.repetition_penalty, &mut self.seen);
        if self.config.is_greedy() {
            return argmax(logits);
        }
        self.sample_filtered(logits)
    }

    fn sample_filtered(&mut self, logits: &[f32]) -> u32 {
        let inv_t = 1.0 / self.config.temperature;
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (l * inv_t, i as u32)));
        let by_logit_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.config.top_k;
        if k > 0 && k < c.len() {
            c.select_nth_unstable_by(k - 1, by_logit_desc);
            c.truncate(k);
        }
        c.sort_unstable_by(by_logit_desc);
        // Softmax over the kept candidates (max-subtracted for stability).
        let max = c[0].0;
        let mut total = 0.0f32;
        for cand in c.iter_mut() {
            cand.0 = (cand.0 - max).exp();
            total += cand.0;
        }
        if self.config.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut keep = c.len();
            for (i, cand) in c.iter().enumerate() {
                cumulative += cand.0 / total;
                if cumulative >= self.config.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
            total = c.iter().map(|x| x.0).sum();
        }
        let mut r = self.rng.random::<f32>() * total;
        for cand in c.iter() {
            if r < cand.0 {
                return cand.1;
            }
            r -= cand.0;
        }
        c[c.len() - 1].1
    }
}

/// Divide positive logits / multiply negative ones of already-seen tokens by
/// `penalty` (the CTRL rule used by `transformers`). Ids out of range are ignored.
/// `seen` is scratch space reused across calls (left all-false on return).
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32, seen: &mut Vec<bool>) {
    if penalty == 1.0 {
        return;
    }
    seen.resize(logits.len(), false);
    // A token seen twice is penalized once.
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let l = &mut logits[i];
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
    for &id in history {
        if let Some(s) = seen.get_mut(id as usize) {
            *s = false;
        }
    }
}

/// Index of the largest logit; the first one on ties (as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    // Two passes the compiler vectorises (a data-dependent index in one pass
    // does not): the maximum over 16 lanes, then the first index holding it.
    // NaNs are skipped by `max`; with no number at all the answer is 0.
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = logits.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes.iter().chain(rest).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    logits.iter().position(|&l| l == max).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> SamplingConfig {
        SamplingConfig { temperature, top_k, top_p, repetition_penalty: 1.0, seed }
    }

    #[test]
    fn argmax_is_the_first_maximum_and_skips_nans() {
        let mut v: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        let naive = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b }) as u32;
        assert_eq!(argmax(&v), naive(&v));
        v[3] = 5000.0;
        v[900] = 5000.0;
        v[10] = f32::NAN;
        assert_eq!(argmax(&v), 3);
        assert_eq!(argmax(&[f32::NAN, 1.0, 2.0, 2.0]), 2);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
    }

    #[test]
    fn greedy_takes_first_max() {
        let mut s = Sampler::new(SamplingConfig::default());
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, -1.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_follows_ctrl_rule() {
        let mut logits = [2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 1], 2.0, &mut Vec::new());
        assert_eq!(logits, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn penalty_changes_the_greedy_choice() {
        let mut s = Sampler::new(SamplingConfig { repetition_penalty: 3.0, ..Default::default() });
        assert_eq!(s.sample(&mut [3.0, 2.0], &[0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(cfg(1.5, 1, 1.0, 7));
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.0, 5.0, 4.9, 1.0], &[]), 1);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 0 holds ~88% of the mass, so top_p = 0.5 keeps it alone.
        let mut s = Sampler::new(cfg(1.0, 0, 0.5, 3));
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [4.0, 2.0, 0.0], &[]), 0);
        }
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let draw = |seed| {
            let mut s = Sampler::new(cfg(1.0, 0, 1.0, seed));
            (0..64).map(|_| s.sample(&mut [0.0; 16], &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn sampling_frequencies_follow_softmax() {
        let mut s = Sampler::new(cfg(1.0, 0, 1.0, 11));
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let n = 20000;
        let ones = (0..n).filter(|_| s.sample(&mut logits.clone(), &[]) == 1).count();
        let freq = ones as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.02, "frequency {freq}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(cfg(-1.0, 0, 1.0, 0).validate().is_err());
        assert!(cfg(1.0, 0, 0.0, 0).validate().is_err());
        assert!(SamplingConfig { repetition_penalty: 0.0, ..Default::default() }.validate().is_err());
    }
}
