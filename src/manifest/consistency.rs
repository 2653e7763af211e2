//! The `consistency_generator` stage: a standalone generator (a bundle of its
//! own, like a voice) that samples a consistency model — one graph
//! `f(noisy, sigma, condition) -> denoised`, its c_skip / c_out inside — from
//! noise in one or a few steps, conditioned on one integer the user picks
//! (e.g. a terrain difficulty 1..=100), with the sample turned into a file by
//! an output transform (`height_map`: a 16-bit grayscale PNG plus raw f32
//! heights). Every number is checked here before it sizes anything.

use serde::{Deserialize, Serialize};

use crate::limits;

/// `consistency_generator`: noise -> `steps` calls of a consistency function -> output transform.
///
/// The graph: `inputs.sample` f32 `[batch, ...sample_shape]`, `inputs.sigma`
/// f32 `[batch]`, `inputs.condition` f32 `[batch]` -> `output` f32
/// `[batch, ...sample_shape]` in model space (`output_transform.value_range`).
/// Sampling is Song et al. 2023's multistep consistency sampling (Algorithm 1)
/// over Karras noise levels (see [`crate::diffusion::consistency`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyGeneratorStage {
    /// Stage name (also the stem of the files written: `<name>.png`, `<name>.f32`).
    pub name: String,
    /// The consistency-function graph, bundle-relative.
    pub graph: String,
    /// The graph's input names.
    pub inputs: ConsistencyInputs,
    /// The graph's denoised-sample output name.
    pub output: String,
    /// One sample's shape without the batch dimension, e.g. `[1, 128, 128]`
    /// (checked against the graph's declared dimensions before anything is sized from it).
    pub sample_shape: Vec<usize>,
    /// Smallest noise level: where sampling ends (the model's epsilon; f(x, sigma_min) = x).
    pub sigma_min: f64,
    /// Largest noise level: the first step's (initial noise = sigma_max × N(0, 1)).
    pub sigma_max: f64,
    /// Karras schedule exponent (7 in Karras et al. and Song et al.).
    pub rho: f64,
    /// Default number of graph calls (1: one-step sampling).
    pub steps: usize,
    /// The one scalar condition the user sets.
    pub condition: ScalarCondition,
    /// How the final sample becomes a file.
    pub output_transform: SampleTransform,
}

/// Input names of a consistency-function graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyInputs {
    /// Noisy sample `[batch, ...sample_shape]`.
    pub sample: String,
    /// Noise level per batch row `[batch]`.
    pub sigma: String,
    /// Condition value per batch row `[batch]`.
    pub condition: String,
}

/// An integer the user chooses in `min..=max`, fed to the graph as
/// `(value - offset) / divisor` (the terrain model: difficulty 1..=100 -> (d - 1) / 99).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarCondition {
    /// What the value means (the command-line flag that sets it, e.g. `difficulty`).
    pub name: String,
    /// Used when the request sets none.
    pub default: i64,
    /// Smallest valid value.
    pub min: i64,
    /// Largest valid value.
    pub max: i64,
    /// Subtracted before dividing.
    pub offset: f64,
    /// Divides `value - offset`.
    pub divisor: f64,
}

impl ScalarCondition {
    /// The graph's value for `value` (not range-checked: see [`Self::check`]),
    /// computed in f64 and rounded once to f32, as numpy's `((d - 1) / 99).astype(float32)`.
    pub fn graph_value(&self, value: i64) -> f32 {
        ((value as f64 - self.offset) / self.divisor) as f32
    }

    /// `value` within `min..=max`, or an error naming the condition and its range.
    pub fn check(&self, value: i64) -> std::result::Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!("{} must be a whole number from {} to {}, got {value}", self.name, self.min, self.max))
        }
    }
}

/// What the final sample becomes, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SampleTransform {
    /// A height field: see [`HeightMapTransform`].
    HeightMap(HeightMapTransform),
}

/// Model space -> heights, as the `adaptive-terrain-diffusion` package's
/// `TerrainGenerator._from_model_space` computes them:
/// `unit = clip((x - lo) / (hi - lo), 0, 1)`,
/// `h = asinh_scale * sinh(unit * asinh(height_range / asinh_scale))` clipped to
/// `[0, height_range]`, then, with `zero_floor`, minus the sample's minimum.
/// Written as `<name>.f32` (the heights) and `<name>.png` (16-bit gray:
/// `round(h / height_range * 65535)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeightMapTransform {
    /// The graph's output range `[lo, hi]` (the package's model space: `[-1, 1]`).
    pub value_range: [f64; 2],
    /// Scale of the asinh compression of heights (the package: 0.1).
    pub asinh_scale: f64,
    /// Largest height, in the model's units (the package: 22.16864013671875).
    pub height_range: f64,
    /// Shift each sample so its lowest point is 0 (the package's default, `zero_floor=True`).
    pub zero_floor: bool,
}

impl HeightMapTransform {
    /// `asinh(height_range / asinh_scale)`: the model-space unit's scale.
    pub fn normalizer(&self) -> f64 {
        (self.height_range / self.asinh_scale).asinh()
    }
}

pub(super) fn validate_consistency_generator(c: &ConsistencyGeneratorStage) -> std::result::Result<(), String> {
    for (field, value) in [
        ("inputs.sample", &c.inputs.sample),
        ("inputs.sigma", &c.inputs.sigma),
        ("inputs.condition", &c.inputs.condition),
        ("output", &c.output),
    ] {
        if value.trim().is_empty() {
            return Err(format!("`{field}` names no tensor"));
        }
    }
    if c.inputs.sample == c.inputs.sigma || c.inputs.sample == c.inputs.condition || c.inputs.sigma == c.inputs.condition {
        return Err(format!("`inputs` must name three different tensors, found {:?}", c.inputs));
    }
    check_sample_shape(&c.sample_shape)?;
    check_sigmas(c.sigma_min, c.sigma_max, c.rho)?;
    check_steps("`steps`", c.steps)?;
    check_condition(&c.condition)?;
    match &c.output_transform {
        SampleTransform::HeightMap(h) => {
            check_height_map(h)?;
            height_map_size(&c.sample_shape).map(|_| ())
        }
    }
}

/// `(width, height)` of a height map sample: `sample_shape` is `[height, width]`
/// after any leading 1s (`[1, 128, 128]`: one channel).
pub fn height_map_size(shape: &[usize]) -> std::result::Result<(u32, u32), String> {
    match shape {
        [lead @ .., h, w] if lead.iter().all(|&d| d == 1) => {
            let side = |d: usize| u32::try_from(d).map_err(|_| format!("`sample_shape` side {d} is too large for an image"));
            Ok((side(*w)?, side(*h)?))
        }
        _ => Err(format!("a `height_map` sample is [height, width] or [1, height, width], but `sample_shape` is {shape:?}")),
    }
}

fn check_sample_shape(shape: &[usize]) -> std::result::Result<(), String> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(format!("`sample_shape` must be non-empty with positive sizes, found {shape:?}"));
    }
    if shape.len() > limits::MAX_LATENT_RANK {
        return Err(format!(
            "`sample_shape` {shape:?} has {} dimensions, above the limit of {} (limits::MAX_LATENT_RANK)",
            shape.len(),
            limits::MAX_LATENT_RANK
        ));
    }
    match limits::checked_product(shape) {
        Some(n) if n <= limits::MAX_LATENT_ELEMENTS => Ok(()),
        _ => Err(format!("`sample_shape` {shape:?} has more than {} elements (limits::MAX_LATENT_ELEMENTS)", limits::MAX_LATENT_ELEMENTS)),
    }
}

/// Noise levels are fed to the graph as f32: they must stay positive and ordered there too.
fn check_sigmas(sigma_min: f64, sigma_max: f64, rho: f64) -> std::result::Result<(), String> {
    for (field, v) in [("sigma_min", sigma_min), ("sigma_max", sigma_max)] {
        if !(v.is_finite() && v > 0.0 && (v as f32).is_finite() && v as f32 > 0.0) {
            return Err(format!("`{field}` must be a positive number within float32's range, found {v}"));
        }
    }
    if sigma_min as f32 >= sigma_max as f32 {
        return Err(format!("`sigma_min` ({sigma_min}) must be smaller than `sigma_max` ({sigma_max})"));
    }
    if !(rho.is_finite() && rho > 0.0) {
        return Err(format!("`rho` must be a positive number, found {rho}"));
    }
    Ok(())
}

/// A step count (the manifest's default or a request's): 1..=[`limits::MAX_CONSISTENCY_STEPS`].
pub fn check_steps(what: &str, steps: usize) -> std::result::Result<(), String> {
    if !(1..=limits::MAX_CONSISTENCY_STEPS).contains(&steps) {
        return Err(format!(
            "{what} must be in 1..={} (limits::MAX_CONSISTENCY_STEPS), found {steps}",
            limits::MAX_CONSISTENCY_STEPS
        ));
    }
    Ok(())
}

fn check_condition(c: &ScalarCondition) -> std::result::Result<(), String> {
    if c.name.trim().is_empty() {
        return Err("`condition.name` is empty".into());
    }
    let bound = limits::MAX_CONDITION_MAGNITUDE;
    if c.min > c.max || c.min < -bound || c.max > bound {
        return Err(format!(
            "`condition.min` and `condition.max` must satisfy -{bound} <= min <= max <= {bound} \
             (limits::MAX_CONDITION_MAGNITUDE), found {}..={}",
            c.min, c.max
        ));
    }
    if !(c.min..=c.max).contains(&c.default) {
        return Err(format!("`condition.default` {} is outside `condition.min`..=`condition.max` ({}..={})", c.default, c.min, c.max));
    }
    if !c.offset.is_finite() {
        return Err(format!("`condition.offset` must be finite, found {}", c.offset));
    }
    if !(c.divisor.is_finite() && c.divisor != 0.0) {
        return Err(format!("`condition.divisor` must be finite and non-zero, found {}", c.divisor));
    }
    // The map is affine: finite at both ends means finite everywhere between.
    for end in [c.min, c.max] {
        if !c.graph_value(end).is_finite() {
            return Err(format!("`condition`: value {end} maps to {}, outside float32's range", c.graph_value(end)));
        }
    }
    Ok(())
}

fn check_height_map(h: &HeightMapTransform) -> std::result::Result<(), String> {
    let [lo, hi] = h.value_range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(format!("`output_transform.value_range` must be [low, high] with low < high, found {:?}", h.value_range));
    }
    for (field, v) in [("asinh_scale", h.asinh_scale), ("height_range", h.height_range)] {
        if !(v.is_finite() && v > 0.0 && (v as f32).is_finite()) {
            return Err(format!("`output_transform.{field}` must be a positive number within float32's range, found {v}"));
        }
    }
    if !(h.normalizer().is_finite() && h.normalizer() > 0.0) {
        return Err(format!(
            "`output_transform`: asinh(height_range / asinh_scale) = asinh({} / {}) is not a positive finite number",
            h.height_range, h.asinh_scale
        ));
    }
    Ok(())
}
