//! Consistency generator stage: the graph of a standalone generator bundle
//! (`consistency_generator`, e.g. models/terrain) sampled by
//! [`crate::diffusion::consistency`] in one or a few steps, conditioned on one
//! integer, its final sample turned into a [`HeightMap`]. Shapes:
//!
//! * graph: `sample [1, ...sample_shape]`, `sigma [1]`, `condition [1]` ->
//!   `denoised [1, ...sample_shape]` (model space); batch 1 per call.

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use ort::session::Session;
use ort::value::TensorElementType;

use crate::bundle::Bundle;
use crate::diffusion::consistency::{self, ConsistencyFunction};
use crate::diffusion::Noise;
use crate::error::{Error, Result};
use crate::manifest::{ConsistencyGeneratorStage, SampleTransform};
use crate::media::HeightMap;
use crate::runtime::{session, OrtRuntime, ProviderReport, SessionPlan};
use crate::stages::graph::StageLoader;
use crate::tensor;

/// Per-request settings; `None` takes the manifest's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsistencySettings {
    /// Graph calls (1..=`limits::MAX_CONSISTENCY_STEPS`).
    pub steps: Option<usize>,
    /// The condition's value (within the manifest's `condition.min..=max`).
    pub condition: Option<i64>,
    /// Each step's noise: seeded, or given (`steps × sample` values, C order, step after step).
    pub noise: Noise,
}

/// The settings a generation actually used.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsedConsistency {
    /// Graph calls.
    pub steps: usize,
    /// Noise level of each call (f64; fed to the graph as f32).
    pub sigmas: Vec<f64>,
    /// The condition's name (e.g. `difficulty`).
    pub condition_name: String,
    /// The condition's value.
    pub condition: i64,
    /// What the graph was fed for it.
    pub condition_value: f32,
}

/// Milliseconds of one generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsistencyTimings {
    /// Each step (noise + graph call), one per graph call.
    pub step_ms: Vec<f64>,
    /// All steps.
    pub sample_ms: f64,
    /// Model space -> heights.
    pub transform_ms: f64,
}

/// One generated sample.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The heights.
    pub height_map: HeightMap,
    /// The settings used.
    pub used: UsedConsistency,
    /// Where the time went.
    pub timings: ConsistencyTimings,
}

/// A loaded consistency generator.
pub struct ConsistencyGenerator {
    stage: ConsistencyGeneratorStage,
    /// `sample [1, ...sample_shape], sigma [1], condition [1]` -> `denoised [1, ...sample_shape]`
    session: Session,
    /// Element types the graph declares for sample, sigma and condition (float32 or float16).
    input_types: [TensorElementType; 3],
    /// `(width, height)` of the height map.
    size: (u32, u32),
    provider: ProviderReport,
}

impl ConsistencyGenerator {
    /// Open the `consistency_generator` stage of a standalone generator bundle.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, sessions: &SessionPlan) -> Result<ConsistencyGenerator> {
        let stage = bundle.manifest.consistency_generator().ok_or_else(|| Error::Manifest {
            path: bundle.manifest_path(),
            message: "not a consistency generator bundle: it has no `consistency_generator` stage".into(),
        })?;
        let plan = sessions.for_manifest(&bundle.manifest)?;
        Self::open_stage(&StageLoader::new(runtime, bundle, &plan), stage)
    }

    /// Open `stage`'s graph and check its inputs, output and dimensions against the manifest.
    pub fn open_stage(loader: &StageLoader<'_>, stage: &ConsistencyGeneratorStage) -> Result<ConsistencyGenerator> {
        // Validated manifests satisfy this; a stage built in code is checked here too.
        let size = crate::manifest::height_map_size(&stage.sample_shape).map_err(|m| Error::Request(format!("stage \"{}\": {m}", stage.name)))?;
        let session = loader.open(&stage.name, &stage.graph)?.into_session();
        let input_types = check_graph(&session, stage)?;
        Ok(ConsistencyGenerator { stage: stage.clone(), session, input_types, size, provider: loader.provider_report() })
    }

    /// The stage as the manifest describes it.
    pub fn stage(&self) -> &ConsistencyGeneratorStage {
        &self.stage
    }

    /// Which execution provider runs the graph.
    pub fn provider(&self) -> &ProviderReport {
        &self.provider
    }

    /// Values of one sample (`sample_shape`'s product).
    pub fn sample_len(&self) -> usize {
        self.stage.sample_shape.iter().product()
    }

    /// Steps, noise levels and condition after applying `settings` over the manifest's defaults.
    pub fn resolve(&self, settings: &ConsistencySettings) -> Result<UsedConsistency> {
        let s = &self.stage;
        let steps = settings.steps.unwrap_or(s.steps);
        crate::manifest::check_steps("the number of steps", steps).map_err(Error::Request)?;
        let condition = settings.condition.unwrap_or(s.condition.default);
        s.condition.check(condition).map_err(Error::Request)?;
        Ok(UsedConsistency {
            steps,
            sigmas: consistency::karras_sigmas(s.sigma_min, s.sigma_max, s.rho, steps),
            condition_name: s.condition.name.clone(),
            condition,
            condition_value: s.condition.graph_value(condition),
        })
    }

    /// Sample once and turn the result into a height map.
    pub fn generate(&mut self, settings: &ConsistencySettings) -> Result<Generated> {
        let used = self.resolve(settings)?;
        let n = self.sample_len();
        let start = Instant::now();
        let sigma_min = self.stage.sigma_min;
        let mut f = GraphFunction { generator: self, condition_value: used.condition_value };
        let sampled = consistency::sample(&mut f, &used.sigmas, sigma_min, &settings.noise, n)?;
        let sample_ms = ms_since(start);
        if let Some(bad) = sampled.sample.iter().find(|v| !v.is_finite()) {
            return Err(self.tensor_error(&self.stage.output, "finite values", format!("{bad} in the final sample")));
        }
        let start = Instant::now();
        let SampleTransform::HeightMap(t) = &self.stage.output_transform;
        let height_map = HeightMap::from_sample(t, &sampled.sample, self.size.0, self.size.1);
        let timings = ConsistencyTimings { step_ms: sampled.step_ms, sample_ms, transform_ms: ms_since(start) };
        Ok(Generated { height_map, used, timings })
    }

    /// One graph call: `x` at noise level `sigma` with the condition's graph value.
    fn call(&mut self, x: &[f32], sigma: f32, condition_value: f32) -> Result<Vec<f32>> {
        let s = &self.stage;
        let stage = s.name.as_str();
        let [sample_type, sigma_type, condition_type] = self.input_types;
        let shape: Vec<usize> = std::iter::once(1).chain(s.sample_shape.iter().copied()).collect();
        let sample = ArrayD::from_shape_vec(IxDyn(&shape), x.to_vec())
            .map_err(|e| Error::Request(format!("stage \"{stage}\": a sample of {} values for shape {shape:?}: {e}", x.len())))?;
        let scalar = |v: f32| ArrayD::from_elem(IxDyn(&[1]), v);
        let inputs = vec![
            (s.inputs.sample.as_str().into(), tensor::float_value(sample, sample_type, stage, &s.inputs.sample)?.into()),
            (s.inputs.sigma.as_str().into(), tensor::float_value(scalar(sigma), sigma_type, stage, &s.inputs.sigma)?.into()),
            (s.inputs.condition.as_str().into(), tensor::float_value(scalar(condition_value), condition_type, stage, &s.inputs.condition)?.into()),
        ];
        let mut out = super::run_named(&mut self.session, stage, inputs, &[&s.output])?;
        let denoised = tensor::to_f32_array(&out.remove(0), stage, &s.output)?;
        if denoised.shape() != shape.as_slice() {
            return Err(self.tensor_error(&s.output, &format!("{shape:?} (the sample's shape)"), format!("{:?}", denoised.shape())));
        }
        Ok(denoised.into_raw_vec_and_offset().0)
    }

    fn tensor_error(&self, tensor: &str, expected: &str, found: String) -> Error {
        Error::Tensor { stage: self.stage.name.clone(), tensor: tensor.into(), expected: expected.into(), found }
    }
}

/// The graph as the sampler's consistency function, at one condition value.
struct GraphFunction<'a> {
    generator: &'a mut ConsistencyGenerator,
    condition_value: f32,
}

impl ConsistencyFunction for GraphFunction<'_> {
    fn denoise(&mut self, x: &[f32], sigma: f32) -> Result<Vec<f32>> {
        self.generator.call(x, sigma, self.condition_value)
    }
}

/// Every named tensor exists, the inputs are float, and the declared
/// dimensions agree with `sample_shape` (batch free) before anything is sized from it.
fn check_graph(session: &Session, stage: &ConsistencyGeneratorStage) -> Result<[TensorElementType; 3]> {
    let name = stage.name.as_str();
    let mut types = [TensorElementType::Float32; 3];
    for (slot, input) in types.iter_mut().zip([&stage.inputs.sample, &stage.inputs.sigma, &stage.inputs.condition]) {
        *slot = session::input_type(session, name, input)?;
        if !matches!(slot, TensorElementType::Float32 | TensorElementType::Float16) {
            return Err(Error::Tensor { stage: name.into(), tensor: input.clone(), expected: "float32 or float16".into(), found: format!("{slot:?}") });
        }
    }
    session::require_output(session, name, &stage.output)?;
    let batched: Vec<Option<usize>> = std::iter::once(None).chain(stage.sample_shape.iter().map(|&d| Some(d))).collect();
    let from = "`sample_shape` in bundle.json";
    session::check_dims(name, &stage.inputs.sample, session::input_dims(session, &stage.inputs.sample).as_deref(), &batched, from)?;
    session::check_dims(name, &stage.output, session::output_dims(session, &stage.output).as_deref(), &batched, from)?;
    for input in [&stage.inputs.sigma, &stage.inputs.condition] {
        session::check_dims(name, input, session::input_dims(session, input).as_deref(), &[None], "one value per batch row")?;
    }
    Ok(types)
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
