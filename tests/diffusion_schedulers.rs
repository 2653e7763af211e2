//! The Rust DDIM and Euler discrete schedulers against diffusers
//! (`tests/golden/any_to_any.json`, written by `exporters/tiny/build.sh`), no
//! ONNX involved: `alphas_cumprod` and timesteps must be bit-identical for
//! every spacing, beta schedule and step count in the goldens; sigmas and
//! `init_noise_sigma` within one ulp (PyTorch's vectorised CPU `sqrt` — which
//! diffusers' `(...) ** 0.5` becomes — is not correctly rounded: on the machine
//! that wrote the goldens 6 of the 1000 Stable Diffusion training sigmas are one
//! ulp below the correctly rounded square root that Rust's `f32::sqrt` gives);
//! replaying each recorded `scheduler.step` (the sample entering it and the
//! guided model output) must give diffusers' next sample.

mod common;

use mmrt::diffusion::scheduler::{alphas_cumprod, betas, BetaSchedule, Ddim, EulerDiscrete, SchedulerConfig};
use mmrt::diffusion::Scheduler;

use common::golden::any_to_any as golden;

#[test]
fn alphas_cumprod_are_bit_identical() {
    let g = golden();
    let cases = [
        ("linear", BetaSchedule::Linear, 0.0001, 0.02),
        ("scaled_linear", BetaSchedule::ScaledLinear, 0.00085, 0.012),
        ("squaredcos_cap_v2", BetaSchedule::SquaredcosCapV2, 0.00085, 0.012),
    ];
    for (name, schedule, start, end) in cases {
        let want = g.alphas_cumprod.get(name).unwrap_or_else(|| panic!("no alphas_cumprod.{name} in the goldens"));
        let got = alphas_cumprod(&betas(schedule, start, end, want.len()));
        let differing: Vec<usize> = (0..want.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
        assert!(differing.is_empty(), "{name}: {} of {} differ, first at {:?}", differing.len(), want.len(), differing.first());
    }
}

#[test]
fn timesteps_exact_and_sigmas_within_one_ulp() {
    let g = golden();
    let schedules = &g.schedules;
    assert!(schedules.len() >= 60, "goldens cover both kinds, three spacings, two beta schedules, six step counts");
    for entry in schedules {
        let config = &entry.scheduler;
        let steps = entry.steps;
        let label = format!("{} {steps} steps", serde_json::to_string(config).expect("scheduler config as JSON"));
        let want_t = &entry.timesteps;
        match config {
            SchedulerConfig::Ddim(c) => {
                let s = Ddim::new(c, steps).expect(&label);
                let got: Vec<f32> = s.timesteps().iter().map(|&t| t as f32).collect();
                assert_eq!(&got, want_t, "{label}: timesteps");
            }
            SchedulerConfig::EulerDiscrete(c) => {
                let s = EulerDiscrete::new(c, steps).expect(&label);
                assert_eq!(s.timesteps(), &want_t[..], "{label}: timesteps");
                let want_sigmas = entry.sigmas.as_ref().unwrap_or_else(|| panic!("{label}: no sigmas in the goldens"));
                assert_eq!(s.sigmas().len(), want_sigmas.len(), "{label}: sigmas");
                let worst = s.sigmas().iter().zip(want_sigmas).map(|(a, b)| ulps(*a, *b)).max().unwrap();
                assert!(worst <= 1, "{label}: sigmas {worst} ulps apart\n  rust {:?}\n  diffusers {want_sigmas:?}", s.sigmas());
                let init = Scheduler::EulerDiscrete(s.clone()).init_noise_sigma();
                let want_init = entry.init_noise_sigma.unwrap_or_else(|| panic!("{label}: no init_noise_sigma in the goldens"));
                assert!(ulps(init, want_init) <= 1, "{label}: init_noise_sigma {init} vs {want_init}");
            }
        }
    }
}

/// Distance in units in the last place between two finite non-negative f32.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// Largest |a - b| / max(1, |b|) over two equally long slices.
fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

#[test]
fn each_step_reproduces_diffusers() {
    let g = golden();
    let denoise = &g.denoise;
    assert_eq!(denoise.len(), 4, "DDIM and Euler, with and without guidance");
    for (name, case) in denoise {
        let steps = case.steps;
        let scheduler = Scheduler::new(&case.scheduler, steps).unwrap();
        assert_eq!(scheduler.init_noise_sigma(), case.init_noise_sigma, "{name}");
        let log = &case.steps_log;
        assert_eq!(log.len(), steps, "{name}: one scheduler.step per step");
        let mut worst = 0.0f32;
        for (i, record) in log.iter().enumerate() {
            assert_eq!(scheduler.timestep(i), record.timestep, "{name} step {i}: timestep");
            let mut sample = record.sample.clone();
            scheduler.step(i, &record.model_output, &mut sample);
            worst = worst.max(max_rel(&sample, &record.prev_sample));
        }
        // f32 arithmetic in the same order as torch; torch may divide by a
        // scalar as a multiplication by its reciprocal, hence a few ulps.
        assert!(worst <= 1e-6, "{name}: a replayed step differs from diffusers by {worst} (relative)");
    }
}

#[test]
fn zero_and_too_many_steps_are_errors() {
    let g = golden();
    for case in g.denoise.values() {
        let config = &case.scheduler;
        let zero = Scheduler::new(config, 0).unwrap_err().to_string();
        assert!(zero.contains("at least 1"), "{zero}");
        let many = Scheduler::new(config, 1001).unwrap_err().to_string();
        assert!(many.contains("1001") && many.contains("1000 training timesteps"), "{many}");
    }
}
