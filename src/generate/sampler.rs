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

    /// Temperature, then top-k, then top-p, as `transformers` applies its
    /// warpers. The kept candidates are found by partial selection (never a
    /// sort of the whole vocabulary): the `k` best for top-k, and for top-p
    /// alone a best prefix grown until it holds the nucleus's mass. Candidates
    /// are drawn in order of decreasing logit (lower id first on ties); with
    /// neither filter the draw walks the vocabulary in id order.
    fn sample_filtered(&mut self, logits: &[f32], temperature: f32, top_k: Option<usize>, top_p: f32) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let inv_t = 1.0 / temperature;
        let n = logits.len();
        let k = top_k.filter(|&k| k > 0 && k < n);
        if k.is_none() && top_p >= 1.0 {
            return self.draw_all(logits, inv_t);
        }
        let c = &mut self.candidates;
        let total_all = match k {
            // Top-k first: the softmax and the nucleus are over the k kept.
            Some(k) => {
                select_best(logits, inv_t, k, c);
                None
            }
            // Top-p alone: the nucleus is measured against the whole vocabulary's mass.
            None => {
                let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l * inv_t));
                let total: f32 = logits.iter().map(|&l| (l * inv_t - max).exp()).sum();
                let mut m = 64.min(n);
                loop {
                    select_best(logits, inv_t, m, c);
                    let mass: f32 = c.iter().map(|x| (x.0 - max).exp()).sum();
                    if mass >= top_p * total || m == n {
                        break;
                    }
                    m = (m * 4).min(n);
                }
                Some((max, total))
            }
        };
        // Softmax over the kept candidates (max-subtracted for stability).
        let max = total_all.map_or(c[0].0, |(max, _)| max);
        let mut total = 0.0f32;
        for cand in c.iter_mut() {
            cand.0 = (cand.0 - max).exp();
            total += cand.0;
        }
        if top_p < 1.0 {
            let denominator = total_all.map_or(total, |(_, t)| t);
            let mut cumulative = 0.0;
            let mut keep = c.len();
            for (i, cand) in c.iter().enumerate() {
                cumulative += cand.0 / denominator;
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

    /// Temperature alone: a draw from the softmax of the whole vocabulary, in id order.
    fn draw_all(&mut self, logits: &[f32], inv_t: f32) -> u32 {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l * inv_t));
        let total: f32 = logits.iter().map(|&l| (l * inv_t - max).exp()).sum();
        let mut r = self.rng.random::<f32>() * total;
        let mut last = 0;
        for (i, &l) in logits.iter().enumerate() {
            let p = (l * inv_t - max).exp();
            if p > 0.0 {
                if r < p {
                    return i as u32;
                }
                r -= p;
                last = i;
            }
        }
        last as u32
    }
}

/// The `k` best `(logit * inv_t, id)` of `logits` into `out`, best first
/// (higher value, then lower id). A small `k` is one pass keeping the `k` best
/// seen so far and their worst (most logits are below it and cost one
/// comparison); a large one is a linear-time selection over all candidates.
fn select_best(logits: &[f32], inv_t: f32, k: usize, out: &mut Vec<(f32, u32)>) {
    let desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    out.clear();
    if k > 256 || k * 16 >= logits.len() {
        out.extend(logits.iter().enumerate().map(|(i, &l)| (l * inv_t, i as u32)));
        if k < out.len() {
            out.select_nth_unstable_by(k - 1, desc);
            out.truncate(k);
        }
    } else {
        let better = |a: &(f32, u32), b: &(f32, u32)| desc(a, b) == std::cmp::Ordering::Less;
        out.extend(logits.iter().take(k).enumerate().map(|(i, &l)| (l * inv_t, i as u32)));
        let worst_of = |out: &[(f32, u32)]| (0..out.len()).fold(0, |w, i| if better(&out[w], &out[i]) { i } else { w });
        let mut worst = worst_of(out);
        let mut threshold = out[worst].0;
        // Later ids lose ties, so a candidate must beat the worst kept value strictly;
        // a block of 16 whose maximum does not is skipped whole (the check vectorizes).
        let mut start = k;
        while start < logits.len() {
            let end = (start + 16).min(logits.len());
            if let Ok(block) = <&[f32; 16]>::try_from(&logits[start..end]) {
                let mut m = f32::NEG_INFINITY;
                for &l in block {
                    let v = l * inv_t;
                    m = if v > m { v } else { m };
                }
                if !(m > threshold) {
                    start = end;
                    continue;
                }
            }
            for (i, &l) in logits[start..end].iter().enumerate() {
                let v = l * inv_t;
                if v > threshold {
                    out[worst] = (v, (start + i) as u32);
                    worst = worst_of(out);
                    threshold = out[worst].0;
                }
            }
            start = end;
        }
    }
    out.sort_unstable_by(desc);
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

    /// The filters as a plain sort of the whole vocabulary would apply them.
    fn reference_kept(logits: &[f32], temperature: f32, top_k: Option<usize>, top_p: f32) -> Vec<u32> {
        let inv_t = 1.0 / temperature;
        let mut c: Vec<(f32, u32)> = logits.iter().enumerate().map(|(i, &l)| (l * inv_t, i as u32)).collect();
        c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(k) = top_k {
            c.truncate(k);
        }
        // The sampler's arithmetic: f32, the mass of the whole vocabulary (or the k kept) summed in id order.
        let max = c[0].0;
        let total: f32 = match top_k {
            Some(_) => c.iter().map(|x| (x.0 - max).exp()).sum(),
            None => logits.iter().map(|&l| (l * inv_t - max).exp()).sum(),
        };
        let mut cumulative = 0.0f32;
        let mut keep = c.len();
        for (i, x) in c.iter().enumerate() {
            cumulative += (x.0 - max).exp() / total;
            if cumulative >= top_p {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
        c.into_iter().map(|x| x.1).collect()
    }

    #[test]
    fn partial_selection_keeps_what_a_full_sort_keeps() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (n, top_k, top_p) in [(5000, Some(40), 0.95), (5000, Some(7), 1.0), (5000, None, 0.9), (5000, None, 0.999), (300, None, 0.5), (64, Some(63), 0.8)] {
            // Rounded logits make ties, which must break toward the lower id.
            let logits: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() * 12.0).round() - 6.0).collect();
            let kept = reference_kept(&logits, 0.8, top_k, top_p);
            let mut sampler = Sampler::new(random(0.8, top_k, top_p), 11);
            for _ in 0..200 {
                let id = sampler.sample(&logits);
                assert!(kept.contains(&id), "n {n} top_k {top_k:?} top_p {top_p}: {id} is not among the {} kept", kept.len());
            }
            let mut best = Vec::new();
            select_best(&logits, 1.0 / 0.8, kept.len(), &mut best);
            assert_eq!(best.iter().map(|x| x.1).collect::<Vec<_>>(), kept, "the nucleus is the best prefix, in order");
        }
        // A flat distribution's nucleus is most of the vocabulary: found by selection, not a quadratic scan.
        let flat = vec![0.0f32; 100_000];
        let id = Sampler::new(random(1.0, None, 0.95), 1).sample(&flat);
        assert!(id < 95_000, "{id}: ties keep the lower ids");
    }

    #[test]
    fn temperature_alone_follows_the_softmax() {
        let logits = [0.0f32, 1.0, 2.0, -50.0];
        let mut sampler = Sampler::new(random(1.0, None, 1.0), 3);
        let mut counts = [0usize; 4];
        let draws = 20_000;
        for _ in 0..draws {
            counts[sampler.sample(&logits) as usize] += 1;
        }
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        for (i, &c) in counts.iter().enumerate() {
            let expected = logits[i].exp() / z;
            assert!((c as f32 / draws as f32 - expected).abs() < 0.015, "token {i}: {} vs {expected}", c as f32 / draws as f32);
        }
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
