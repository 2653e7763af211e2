//! Multistep consistency sampling (Song et al. 2023, "Consistency Models",
//! Algorithm 1) over Karras noise levels; the graph behind the consistency
//! function runs in [`crate::stages::consistency`], behind the
//! [`ConsistencyFunction`] seam so the loop is tested without a model.
//!
//! With noise levels `s_0 = sigma_max > s_1 > … > s_{k-1} > sigma_min` and
//! standard normal `z_0 … z_{k-1}`:
//!
//! ```text
//! x = f(s_0 · z_0, s_0)
//! x = f(x + sqrt(s_i² − sigma_min²) · z_i, s_i)      for i = 1 … k-1
//! ```
//!
//! One step is the package's one-step sampler exactly (`f(sigma_max · z, sigma_max)`).
//! The levels are the first `k` points of a Karras grid of `k + 1` points from
//! `sigma_max` down to `sigma_min`: the grid's last point, `sigma_min`, is where
//! sampling ends and gets no call of its own, because a consistency function
//! is the identity there (`c_skip(sigma_min) = 1`, `c_out(sigma_min) = 0`; the
//! terrain graph returns its input bit for bit), so a call at `sigma_min` would
//! be a step that changes nothing. This is the reference sampler's choice too
//! (`stochastic_iterative_sampler` of openai/consistency_models: calls at the
//! grid points but the last, whose level only sets the final, zero, noise).

use std::time::Instant;

use super::{gaussian, Noise};
use crate::error::{Error, Result};

/// A consistency function `f(x, sigma)`: a noisy sample at noise level `sigma`
/// -> its estimate of the clean sample (same length).
pub trait ConsistencyFunction {
    /// Denoise `x` (one sample, C order) from noise level `sigma`.
    fn denoise(&mut self, x: &[f32], sigma: f32) -> Result<Vec<f32>>;
}

/// The noise levels of `steps` consistency steps: `sigma_max` first, then the
/// next `steps - 1` points of Karras et al.'s schedule
/// `(sigma_max^(1/rho) + i/steps · (sigma_min^(1/rho) − sigma_max^(1/rho)))^rho`,
/// all above `sigma_min` (see the module docs). Computed in f64.
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, rho: f64, steps: usize) -> Vec<f64> {
    let (hi, lo) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    (0..steps)
        .map(|i| match i {
            // Exactly sigma_max, whatever the rounding of the powers: step 1 is the one-step sampler.
            0 => sigma_max,
            _ => (hi + i as f64 / steps as f64 * (lo - hi)).powf(rho),
        })
        .collect()
}

/// One sampling run's result.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The final sample (model space), C order.
    pub sample: Vec<f32>,
    /// Milliseconds of each step (noise, graph call), one per graph call.
    pub step_ms: Vec<f64>,
}

/// Step `i`'s standard normal noise, `n` values: stream `i` of a seed (so every
/// run's first step draws the same noise, whatever its step count), or block `i`
/// of given noise (checked to hold `steps × n` values by [`sample`]).
fn step_noise(noise: &Noise, i: usize, n: usize) -> Vec<f32> {
    match noise {
        Noise::Seed(seed) => gaussian(*seed, i as u64, n),
        Noise::Given(values) => values[i * n..(i + 1) * n].to_vec(),
    }
}

/// Run Algorithm 1 on `f` at the noise levels `sigmas` (from [`karras_sigmas`]),
/// for one sample of `n` values.
pub fn sample(f: &mut impl ConsistencyFunction, sigmas: &[f64], sigma_min: f64, noise: &Noise, n: usize) -> Result<Sampled> {
    if sigmas.is_empty() {
        return Err(Error::Request("consistency sampling needs at least one step".into()));
    }
    if let Noise::Given(values) = noise {
        let want = sigmas.len().checked_mul(n);
        if want != Some(values.len()) {
            return Err(Error::Request(format!(
                "given noise has {} values; {} step(s) of {n} values need {}",
                values.len(),
                sigmas.len(),
                want.map_or("more than fit in memory".into(), |w| w.to_string())
            )));
        }
    }
    let mut x: Vec<f32> = Vec::new();
    let mut step_ms = Vec::with_capacity(sigmas.len());
    for (i, &sigma) in sigmas.iter().enumerate() {
        let start = Instant::now();
        let z = step_noise(noise, i, n);
        // The scale is rounded to f32 once and the update done in f32, as the
        // package's `noise * np.float32(sigma_max)` is.
        x = if i == 0 {
            let scale = sigma as f32;
            z.iter().map(|&z| z * scale).collect()
        } else {
            let scale = (sigma * sigma - sigma_min * sigma_min).max(0.0).sqrt() as f32;
            x.iter().zip(&z).map(|(&x, &z)| x + scale * z).collect()
        };
        x = f.denoise(&x, sigma as f32)?;
        if x.len() != n {
            return Err(Error::Request(format!("the consistency function returned {} values for a sample of {n}", x.len())));
        }
        step_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Sampled { sample: x, step_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake consistency function: records each call's input and level, returns `x * keep`.
    struct Recorder {
        keep: f32,
        calls: Vec<(Vec<f32>, f32)>,
    }

    impl ConsistencyFunction for Recorder {
        fn denoise(&mut self, x: &[f32], sigma: f32) -> Result<Vec<f32>> {
            self.calls.push((x.to_vec(), sigma));
            Ok(x.iter().map(|v| v * self.keep).collect())
        }
    }

    #[test]
    fn karras_levels_start_at_sigma_max_and_stay_above_sigma_min() {
        assert_eq!(karras_sigmas(0.002, 80.0, 7.0, 1), [80.0]);
        for steps in [2, 3, 4, 40] {
            let s = karras_sigmas(0.002, 80.0, 7.0, steps);
            assert_eq!(s.len(), steps);
            assert_eq!(s[0], 80.0);
            assert!(s.windows(2).all(|w| w[1] < w[0]), "{s:?}");
            assert!(*s.last().unwrap() > 0.002, "{s:?}");
        }
        // Two steps: the middle of the rho-warped grid of three points.
        let mid = ((80f64.powf(1.0 / 7.0) + 0.002f64.powf(1.0 / 7.0)) / 2.0).powi(7);
        assert!((karras_sigmas(0.002, 80.0, 7.0, 2)[1] - mid).abs() < 1e-12);
    }

    #[test]
    fn each_step_adds_noise_at_its_level_and_calls_f_once() {
        // f = 0: every call sees exactly its own noise term.
        let mut f = Recorder { keep: 0.0, calls: Vec::new() };
        let sigmas = [80.0, 4.0, 0.5];
        let noise: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let out = sample(&mut f, &sigmas, 0.002, &Noise::Given(noise), 2).unwrap();
        assert_eq!(out.step_ms.len(), 3);
        assert_eq!(f.calls.iter().map(|c| c.1).collect::<Vec<_>>(), [80.0, 4.0, 0.5]);
        assert_eq!(f.calls[0].0, [0.0, 80.0]);
        let c1 = (16.0f64 - 0.002f64.powi(2)).sqrt() as f32;
        assert_eq!(f.calls[1].0, [2.0 * c1, 3.0 * c1]);
        let c2 = (0.25f64 - 0.002f64.powi(2)).sqrt() as f32;
        assert_eq!(f.calls[2].0, [4.0 * c2, 5.0 * c2]);
    }

    #[test]
    fn identity_f_accumulates_and_seeded_first_steps_agree() {
        let mut f = Recorder { keep: 1.0, calls: Vec::new() };
        let one = sample(&mut f, &[80.0], 0.002, &Noise::Seed(5), 8).unwrap();
        let mut g = Recorder { keep: 1.0, calls: Vec::new() };
        sample(&mut g, &karras_sigmas(0.002, 80.0, 7.0, 3), 0.002, &Noise::Seed(5), 8).unwrap();
        // Every run's first step draws the same noise, whatever its step count.
        assert_eq!(g.calls[0].0, one.sample);
        assert_eq!(one.sample, gaussian(5, 0, 8).iter().map(|z| z * 80.0).collect::<Vec<_>>());
    }

    #[test]
    fn given_noise_must_cover_every_step() {
        let mut f = Recorder { keep: 1.0, calls: Vec::new() };
        let e = sample(&mut f, &[80.0, 1.0], 0.002, &Noise::Given(vec![0.0; 3]), 2).unwrap_err().to_string();
        assert!(e.contains("3 values") && e.contains("need 4"), "{e}");
        assert!(f.calls.is_empty());
        assert!(sample(&mut f, &[], 0.002, &Noise::Seed(0), 2).is_err());
    }
}
