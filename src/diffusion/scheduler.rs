//! Diffusion schedulers, computed exactly as diffusers computes them: DDIM
//! (`DDIMScheduler`) and Euler discrete (`EulerDiscreteScheduler`).
//!
//! "Exactly" is meant bit for bit where diffusers' own arithmetic allows it:
//!
//! * betas: `torch.linspace(…, dtype=float32)` (a fused multiply-add from the
//!   nearer end, see [`torch_linspace_f32`]), squared for `scaled_linear`;
//!   `squaredcos_cap_v2` in f64 then rounded to f32;
//! * `alphas_cumprod`: `torch.cumprod` over f32 alphas, accumulated in f64
//!   (PyTorch's CPU accumulation type) and rounded per element;
//! * timesteps: numpy's `linspace` / `arange` / `round` (ties to even) in f64;
//! * Euler sigmas: `np.interp` in f64 over the f32 training sigmas, rounded to f32.
//!
//! The step functions use the same f32 operations in the same order as the
//! torch code, so a step reproduces diffusers' to within an ulp or two.
//! Stochastic options (DDIM `eta > 0`, Euler `s_churn > 0`), thresholding and
//! Karras / exponential sigmas are not supported; the configuration structs
//! reject their keys (`deny_unknown_fields`) rather than ignore them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A scheduler kind and its diffusers configuration, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchedulerConfig {
    /// `diffusers.DDIMScheduler` (deterministic, `eta = 0`).
    Ddim(DdimConfig),
    /// `diffusers.EulerDiscreteScheduler` (`s_churn = 0`).
    EulerDiscrete(EulerDiscreteConfig),
}

/// How training betas are laid out (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end)`.
    Linear,
    /// `linspace(sqrt(beta_start), sqrt(beta_end)) ** 2` (Stable Diffusion).
    ScaledLinear,
    /// The cosine schedule of Nichol & Dhariwal, betas capped at 0.999.
    SquaredcosCapV2,
}

/// How inference timesteps are spread over the training range (diffusers' `timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `arange(0, n) * (N // n) + steps_offset`, descending.
    Leading,
    /// `round(arange(N, 0, -N / n)) - 1`.
    Trailing,
    /// `linspace(0, N - 1, n)`, descending.
    Linspace,
}

/// What the denoiser predicts (diffusers' `prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The added noise.
    Epsilon,
    /// The clean sample.
    Sample,
    /// Velocity `alpha * noise - sigma * sample`.
    VPrediction,
}

/// DDIM configuration: the keys of diffusers' `DDIMScheduler` config the runtime reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdimConfig {
    /// Training timesteps `N`.
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// First beta.
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Last beta.
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// Beta layout.
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: BetaSchedule,
    /// Inference timestep spacing.
    #[serde(default = "default_ddim_spacing")]
    pub timestep_spacing: TimestepSpacing,
    /// Added to `leading` timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// What the denoiser predicts.
    #[serde(default = "default_prediction")]
    pub prediction_type: PredictionType,
    /// Clamp the predicted clean sample to `±clip_sample_range`.
    #[serde(default = "yes")]
    pub clip_sample: bool,
    /// Clamp bound.
    #[serde(default = "one")]
    pub clip_sample_range: f32,
    /// `alphas_cumprod` before the first timestep: 1 (true) or `alphas_cumprod[0]`.
    #[serde(default = "yes")]
    pub set_alpha_to_one: bool,
}

/// Euler discrete configuration: the keys of diffusers' `EulerDiscreteScheduler` config the runtime reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EulerDiscreteConfig {
    /// Training timesteps `N`.
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// First beta.
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Last beta.
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// Beta layout.
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: BetaSchedule,
    /// Inference timestep spacing.
    #[serde(default = "default_euler_spacing")]
    pub timestep_spacing: TimestepSpacing,
    /// Added to `leading` timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// What the denoiser predicts.
    #[serde(default = "default_prediction")]
    pub prediction_type: PredictionType,
}

// diffusers' defaults for both schedulers.
fn default_train_timesteps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_beta_schedule() -> BetaSchedule {
    BetaSchedule::Linear
}
fn default_ddim_spacing() -> TimestepSpacing {
    TimestepSpacing::Leading
}
fn default_euler_spacing() -> TimestepSpacing {
    TimestepSpacing::Linspace
}
fn default_prediction() -> PredictionType {
    PredictionType::Epsilon
}
fn yes() -> bool {
    true
}
fn one() -> f32 {
    1.0
}

impl SchedulerConfig {
    /// Manifest-level checks (value ranges); returns what is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (n, start, end, offset) = match self {
            SchedulerConfig::Ddim(c) => (c.num_train_timesteps, c.beta_start, c.beta_end, c.steps_offset),
            SchedulerConfig::EulerDiscrete(c) => (c.num_train_timesteps, c.beta_start, c.beta_end, c.steps_offset),
        };
        if n < 2 {
            return Err(format!("`num_train_timesteps` must be at least 2, found {n}"));
        }
        if n > crate::limits::MAX_TRAIN_TIMESTEPS {
            return Err(format!(
                "`num_train_timesteps` {n} is above the limit of {} (limits::MAX_TRAIN_TIMESTEPS)",
                crate::limits::MAX_TRAIN_TIMESTEPS
            ));
        }
        if offset >= n {
            return Err(format!("`steps_offset` {offset} must be below `num_train_timesteps` {n}"));
        }
        if !(start.is_finite() && end.is_finite() && start > 0.0 && end > 0.0 && end < 1.0) {
            return Err(format!("betas must lie in (0, 1), found beta_start {start}, beta_end {end}"));
        }
        if let SchedulerConfig::Ddim(c) = self {
            if !(c.clip_sample_range.is_finite() && c.clip_sample_range > 0.0) {
                return Err(format!("`clip_sample_range` must be positive, found {}", c.clip_sample_range));
            }
        }
        Ok(())
    }

    /// Training timesteps `N` (the most denoising steps it can run).
    pub fn num_train_timesteps(&self) -> usize {
        match self {
            SchedulerConfig::Ddim(c) => c.num_train_timesteps,
            SchedulerConfig::EulerDiscrete(c) => c.num_train_timesteps,
        }
    }

    /// The scheduler's name as diffusers spells the class.
    pub fn class_name(&self) -> &'static str {
        match self {
            SchedulerConfig::Ddim(_) => "DDIMScheduler",
            SchedulerConfig::EulerDiscrete(_) => "EulerDiscreteScheduler",
        }
    }
}

/// `torch.linspace(start, end, n, dtype=torch.float32)` on CPU: `step = (end - start) / (n - 1)`
/// in f32, then `fma(step, i, start)` for the first half and `fma(-step, n - 1 - i, end)` for the rest.
pub fn torch_linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((n - 1 - i) as f32, end) })
        .collect()
}

/// Training betas `[N]` of a schedule, as diffusers builds them (float32).
pub fn betas(schedule: BetaSchedule, beta_start: f64, beta_end: f64, n: usize) -> Vec<f32> {
    match schedule {
        BetaSchedule::Linear => torch_linspace_f32(beta_start as f32, beta_end as f32, n),
        BetaSchedule::ScaledLinear => {
            torch_linspace_f32(beta_start.sqrt() as f32, beta_end.sqrt() as f32, n).into_iter().map(|b| b * b).collect()
        }
        BetaSchedule::SquaredcosCapV2 => {
            let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
            (0..n)
                .map(|i| {
                    let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
                })
                .collect()
        }
    }
}

/// `torch.cumprod(1 - betas)`: f32 alphas, f64 accumulation, f32 results.
pub fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            acc *= (1.0f32 - b) as f64;
            acc as f32
        })
        .collect()
}

/// numpy's `linspace(start, stop, num)` in f64 (`i * step + start`, last element = `stop`).
fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// numpy's `arange(start, stop, step)` in f64: length `ceil((stop - start) / step)`,
/// values `start + i * ((start + step) - start)`.
fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    let delta = (start + step) - start;
    (0..len).map(|i| if i == 1 { start + step } else { start + i as f64 * delta }).collect()
}

/// Check a step count against the training range.
fn check_steps(steps: usize, train: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::Request("the number of denoising steps must be at least 1, got 0".into()));
    }
    if steps > train {
        return Err(Error::Request(format!(
            "{steps} denoising steps exceed the scheduler's {train} training timesteps"
        )));
    }
    Ok(())
}

/// DDIM with `eta = 0`, after `set_timesteps(steps)`.
#[derive(Debug, Clone)]
pub struct Ddim {
    config: DdimConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<i64>,
}

impl Ddim {
    /// The scheduler for `steps` inference steps.
    pub fn new(config: &DdimConfig, steps: usize) -> Result<Self> {
        let n = config.num_train_timesteps;
        check_steps(steps, n)?;
        let ac = alphas_cumprod(&betas(config.beta_schedule, config.beta_start, config.beta_end, n));
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { ac[0] };
        let timesteps: Vec<i64> = match config.timestep_spacing {
            TimestepSpacing::Linspace => {
                np_linspace(0.0, (n - 1) as f64, steps).into_iter().rev().map(|t| t.round_ties_even() as i64).collect()
            }
            TimestepSpacing::Leading => {
                let ratio = n / steps;
                (0..steps).rev().map(|i| (i * ratio + config.steps_offset) as i64).collect()
            }
            TimestepSpacing::Trailing => {
                np_arange(n as f64, 0.0, -(n as f64 / steps as f64)).into_iter().map(|t| t.round_ties_even() as i64 - 1).collect()
            }
        };
        if let Some(&t) = timesteps.iter().find(|&&t| t < 0 || t as usize >= n) {
            return Err(Error::Request(format!(
                "DDIM timestep {t} (from {steps} steps, steps_offset {}) is outside the {n} training timesteps",
                config.steps_offset
            )));
        }
        Ok(Self { config: config.clone(), alphas_cumprod: ac, final_alpha_cumprod, timesteps })
    }

    /// Integer timesteps, descending (diffusers' `scheduler.timesteps`).
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    /// `alphas_cumprod` `[N]`.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// One DDIM step (`eta = 0`): `sample` `[n]` at step `i` becomes the previous-timestep sample.
    pub fn step(&self, i: usize, model_output: &[f32], sample: &mut [f32]) {
        let t = self.timesteps[i];
        // diffusers derives the previous timestep from N // steps whatever the spacing.
        let prev = t - (self.config.num_train_timesteps / self.timesteps.len()) as i64;
        let alpha_t = self.alphas_cumprod[t as usize];
        let alpha_prev = if prev >= 0 { self.alphas_cumprod[prev as usize] } else { self.final_alpha_cumprod };
        let beta_t = 1.0 - alpha_t;
        let (sqrt_a, sqrt_b) = (alpha_t.sqrt(), beta_t.sqrt());
        let direction_scale = (1.0 - alpha_prev - 0.0).sqrt();
        let sqrt_a_prev = alpha_prev.sqrt();
        let clip = self.config.clip_sample.then_some(self.config.clip_sample_range);
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let (mut x0, eps) = match self.config.prediction_type {
                PredictionType::Epsilon => ((*x - sqrt_b * m) / sqrt_a, m),
                PredictionType::Sample => (m, (*x - sqrt_a * m) / sqrt_b),
                PredictionType::VPrediction => (sqrt_a * *x - sqrt_b * m, sqrt_a * m + sqrt_b * *x),
            };
            if let Some(r) = clip {
                x0 = x0.clamp(-r, r);
            }
            *x = sqrt_a_prev * x0 + direction_scale * eps;
        }
    }
}

/// Euler discrete with `s_churn = 0`, after `set_timesteps(steps)`.
#[derive(Debug, Clone)]
pub struct EulerDiscrete {
    config: EulerDiscreteConfig,
    timesteps: Vec<f32>,
    /// `[steps + 1]`, the last one 0.
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
}

impl EulerDiscrete {
    /// The scheduler for `steps` inference steps.
    pub fn new(config: &EulerDiscreteConfig, steps: usize) -> Result<Self> {
        let n = config.num_train_timesteps;
        check_steps(steps, n)?;
        let ac = alphas_cumprod(&betas(config.beta_schedule, config.beta_start, config.beta_end, n));
        let train_sigmas: Vec<f64> = ac.iter().map(|&a| ((1.0 - a) / a).sqrt() as f64).collect();
        let timesteps: Vec<f32> = match config.timestep_spacing {
            TimestepSpacing::Linspace => np_linspace(0.0, (n - 1) as f64, steps).into_iter().rev().map(|t| t as f32).collect(),
            TimestepSpacing::Leading => {
                let ratio = n / steps;
                (0..steps).rev().map(|i| (i * ratio) as f32 + config.steps_offset as f32).collect()
            }
            TimestepSpacing::Trailing => np_arange(n as f64, 0.0, -(n as f64 / steps as f64))
                .into_iter()
                .map(|t| t.round_ties_even() as f32 - 1.0)
                .collect(),
        };
        let mut sigmas: Vec<f32> = timesteps.iter().map(|&t| np_interp(t as f64, &train_sigmas) as f32).collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let init_noise_sigma = match config.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        };
        Ok(Self { config: config.clone(), timesteps, sigmas, init_noise_sigma })
    }

    /// Float timesteps, descending.
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// Sigmas `[steps + 1]`, ending with 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// Divide the model input by `sqrt(sigma² + 1)`.
    pub fn scale_model_input(&self, i: usize, sample: &mut [f32]) {
        let sigma = self.sigmas[i];
        let d = (sigma * sigma + 1.0).sqrt();
        sample.iter_mut().for_each(|x| *x /= d);
    }

    /// One Euler step: `sample` at step `i` moves to `sigmas[i + 1]`.
    pub fn step(&self, i: usize, model_output: &[f32], sample: &mut [f32]) {
        let sigma = self.sigmas[i];
        let sigma_hat = sigma * (0.0 + 1.0);
        let dt = self.sigmas[i + 1] - sigma_hat;
        let s2 = sigma * sigma + 1.0;
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let x0 = match self.config.prediction_type {
                PredictionType::Epsilon => *x - sigma_hat * m,
                PredictionType::Sample => m,
                PredictionType::VPrediction => m * (-sigma / s2.sqrt()) + *x / s2,
            };
            let derivative = (*x - x0) / sigma_hat;
            *x += derivative * dt;
        }
    }
}

/// `np.interp(x, arange(len(fp)), fp)` in f64.
fn np_interp(x: f64, fp: &[f64]) -> f64 {
    let last = fp.len() - 1;
    if x <= 0.0 {
        return fp[0];
    }
    if x >= last as f64 {
        return fp[last];
    }
    let j = x.floor() as usize;
    if j as f64 == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / 1.0;
    slope * (x - j as f64) + fp[j]
}

/// A configured scheduler of either kind, with the interface the generator loop uses.
#[derive(Debug, Clone)]
pub enum Scheduler {
    /// DDIM.
    Ddim(Ddim),
    /// Euler discrete.
    EulerDiscrete(EulerDiscrete),
}

impl Scheduler {
    /// `config` set up for `steps` inference steps (errors for 0 or more than the training timesteps).
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        Ok(match config {
            SchedulerConfig::Ddim(c) => Scheduler::Ddim(Ddim::new(c, steps)?),
            SchedulerConfig::EulerDiscrete(c) => Scheduler::EulerDiscrete(EulerDiscrete::new(c, steps)?),
        })
    }

    /// Inference steps.
    pub fn len(&self) -> usize {
        match self {
            Scheduler::Ddim(s) => s.timesteps.len(),
            Scheduler::EulerDiscrete(s) => s.timesteps.len(),
        }
    }

    /// Always false: a scheduler has at least one step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The timestep fed to the denoiser at step `i`.
    pub fn timestep(&self, i: usize) -> f32 {
        match self {
            Scheduler::Ddim(s) => s.timesteps[i] as f32,
            Scheduler::EulerDiscrete(s) => s.timesteps[i],
        }
    }

    /// Factor applied to the initial noise.
    pub fn init_noise_sigma(&self) -> f32 {
        match self {
            Scheduler::Ddim(_) => 1.0,
            Scheduler::EulerDiscrete(s) => s.init_noise_sigma,
        }
    }

    /// Scale the denoiser input in place (identity for DDIM).
    pub fn scale_model_input(&self, i: usize, sample: &mut [f32]) {
        if let Scheduler::EulerDiscrete(s) = self {
            s.scale_model_input(i, sample);
        }
    }

    /// Advance `sample` by step `i` given the (guided) model output.
    pub fn step(&self, i: usize, model_output: &[f32], sample: &mut [f32]) {
        match self {
            Scheduler::Ddim(s) => s.step(i, model_output, sample),
            Scheduler::EulerDiscrete(s) => s.step(i, model_output, sample),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_ddim() -> DdimConfig {
        serde_json::from_value(serde_json::json!({"beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "steps_offset": 1, "clip_sample": false, "set_alpha_to_one": false}))
        .unwrap()
    }

    #[test]
    fn stable_diffusion_ddim_timesteps() {
        let s = Ddim::new(&sd_ddim(), 50).unwrap();
        assert_eq!(&s.timesteps()[..3], &[981, 961, 941]);
        assert_eq!(*s.timesteps().last().unwrap(), 1);
    }

    #[test]
    fn linspace_is_symmetric_at_the_ends() {
        let v = torch_linspace_f32(0.1, 0.9, 5);
        assert_eq!((v[0], v[4]), (0.1, 0.9));
        assert_eq!(torch_linspace_f32(3.0, 4.0, 1), vec![3.0]);
    }

    #[test]
    fn bad_step_counts_are_errors() {
        assert!(Ddim::new(&sd_ddim(), 0).unwrap_err().to_string().contains("at least 1"));
        assert!(Ddim::new(&sd_ddim(), 1001).unwrap_err().to_string().contains("exceed"));
    }

    #[test]
    fn unknown_scheduler_options_are_rejected() {
        let err = serde_json::from_value::<SchedulerConfig>(serde_json::json!({"kind": "euler_discrete", "use_karras_sigmas": true}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("use_karras_sigmas"), "{err}");
    }

    #[test]
    fn euler_ends_at_sigma_zero_and_scales_its_noise() {
        let c: EulerDiscreteConfig = serde_json::from_value(serde_json::json!({"beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "beta_end": 0.012})).unwrap();
        let s = EulerDiscrete::new(&c, 10).unwrap();
        assert_eq!(s.sigmas().len(), 11);
        assert_eq!(*s.sigmas().last().unwrap(), 0.0);
        assert_eq!(s.init_noise_sigma, s.sigmas()[0]);
        assert_eq!(s.timesteps()[0], 999.0);
    }
}
