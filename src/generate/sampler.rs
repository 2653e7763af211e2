//! Choosing the next token from processed logits: greedy (arg-max) or random
//! sampling with temperature / top-k / top-p and an explicit seed, applied in
//! the order `transformers`' `generate()` applies its warpers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Sampling {
    /// The most likely token (the first one on ties, as `torch.argmax`).
    Greedy,
    /// A token drawn from the softmax of `logits / temperature`, restricted
    /// to the `top_k` most likely (all when `None`) and then to the smallest
    /// set whose probability reaches `top_p` (1.0 keeps all).
    Random {
        /// Softmax temperature, > 0.
        temperature: f32,
        /// Keep the k most likely tokens.
        top_k: Option<usize>,
        /// Nucleus mass in (0, 1].
        top_p: f32,
    },
}

impl Default for Sampling {
    /// Greedy: the deterministic `generate()` default.
    fn default() -> Self {
        Self::Greedy
    }
}

impl Sampling {
    /// From the flat knobs of a manifest or command line, where temperature 0
    /// selects greedy (the file format's convention, as `do_sample=False`)
    /// and top-k 0 keeps all tokens.
    pub fn from_knobs(temperature: f32, top_k: usize, top_p: f32) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::Request(format!("temperature must be finite and >= 0, got {temperature}")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::Request(format!("top-p must be in (0, 1], got {top_p}")));
        }
        Ok(if temperature == 0.0 {
            Self::Greedy
        } else {
            Self::Random { temperature, top_k: (top_k > 0).then_some(top_k), top_p }
        })
    }

    /// The flat knobs `(temperature, top_k, top_p)` of [`Self::from_knobs`].
    pub fn knobs(&self) -> (f32, usize, f32) {
        match *self {
            Self::Greedy => (0.0, 0, 1.0),
            Self::Random { temperature, top_k, top_p } => (temperature, top_k.unwrap_or(0), top_p),
        }
    }

    /// Reject values with no meaning.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Greedy => Ok(()),
            Self::Random { temperature, top_p, .. } if temperature > 0.0 => Self::from_knobs(temperature, 0, top_p).map(|_| ()),
            Self::Random { temperature, .. } => Err(Error::Request(format!("temperature must be > 0 for random sampling, got {temperature}"))),
        }
    }
}

/// A seeded sampler with reusable scratch space (no allocation per token after warm-up).
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler for `sampling`, seeded with `seed`.
    pub fn new(sampling: Sampling, seed: u64) -> Self {
        Self { sampling, rng: ChaCha8Rng::seed_from_u64(seed), candidates: Vec::new() }
    }

    /// The strategy in use.
    pub fn sampling(&self) -> &Sampling {
        &self.sampling
    }

    /// Pick the next token from `logits` `[vocab]` (already processed).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random { temperature, top_k, top_p } => self.sample_filtered(logits, temperature, top_k, top_p),
        }
    }

    fn sample_filtered(&mut self, logits: &[f32], temperature: f32, top_k: Option<usize>, top_p: f32) -> u32 {
        let inv_t = 1.0 / temperature;
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (l * inv_t, i as u32)));
        if c.is_empty() {
            return 0;
        }
        let by_logit_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if let Some(k) = top_k.filter(|&k| k > 0 && k < c.len()) {
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
        if top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut keep = c.len();
            for (i, cand) in c.iter().enumerate() {
                cumulative += cand.0 / total;
                if cumulative >= top_p {
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

    fn random(temperature: f32, top_k: Option<usize>, top_p: f32) -> Sampling {
        Sampling::Random { temperature, top_k, top_p }
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
        let mut s = Sampler::new(Sampling::Greedy, 0);
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn knobs_map_temperature_zero_to_greedy_and_round_trip() {
        assert_eq!(Sampling::from_knobs(0.0, 5, 0.9).unwrap(), Sampling::Greedy);
        let s = Sampling::from_knobs(0.7, 0, 0.9).unwrap();
        assert_eq!(s, random(0.7, None, 0.9));
        assert_eq!(Sampling::from_knobs(0.7, 3, 1.0).unwrap().knobs(), (0.7, 3, 1.0));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(random(1.5, Some(1), 1.0), 7);
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 5.0, 4.9, 1.0]), 1);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 0 holds ~88% of the mass, so top_p = 0.5 keeps it alone.
        let mut s = Sampler::new(random(1.0, None, 0.5), 3);
        for _ in 0..50 {
            assert_eq!(s.sample(&[4.0, 2.0, 0.0]), 0);
        }
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let draw = |seed| {
            let mut s = Sampler::new(random(1.0, None, 1.0), seed);
            (0..64).map(|_| s.sample(&[0.0; 16])).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn sampling_frequencies_follow_softmax() {
        let mut s = Sampler::new(random(1.0, None, 1.0), 11);
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let n = 20000;
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let freq = ones as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.02, "frequency {freq}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Sampling::from_knobs(-1.0, 0, 1.0).is_err());
        assert!(Sampling::from_knobs(1.0, 0, 0.0).is_err());
        assert!(Sampling::from_knobs(f32::NAN, 0, 1.0).is_err());
        assert!(random(0.0, None, 1.0).validate().is_err());
    }
}
