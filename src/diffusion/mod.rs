//! Diffusion generation support: the schedulers (DDIM, Euler discrete, as
//! diffusers computes them), multistep consistency sampling ([`consistency`])
//! and the initial noise. The graphs themselves run in
//! [`crate::stages::generator`] and [`crate::stages::consistency`].

pub mod consistency;
pub mod scheduler;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use scheduler::{Scheduler, SchedulerConfig};

/// Where a generation's initial latents come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Noise {
    /// Standard normal noise drawn from a seeded ChaCha8 stream (Box-Muller):
    /// reproducible across runs of mmrt, but not equal to PyTorch's `randn`.
    Seed(u64),
    /// Noise given by the caller, in C order (e.g. the noise a Python pipeline
    /// was run with): `latent_shape` elements for a diffusion generator; for a
    /// consistency generator, `steps × sample_shape` (each step's block in turn).
    Given(Vec<f32>),
}

impl Default for Noise {
    /// Seed 0.
    fn default() -> Self {
        Noise::Seed(0)
    }
}

/// `n` standard normal f32 values from `seed` (stream `stream`, so several
/// generations of one request draw independent noise).
pub fn gaussian(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // Box-Muller on (0, 1] × [0, 1).
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_reproducible_and_standard() {
        let a = gaussian(7, 0, 20_000);
        assert_eq!(a, gaussian(7, 0, 20_000));
        assert_ne!(a[..8], gaussian(7, 1, 8)[..]);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }
}
