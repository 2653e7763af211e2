//! Modality generator stage: conditioning -> media, as a diffusion loop.
//!
//! The scheduler (Rust, [`crate::diffusion::scheduler`]) calls the denoiser
//! graph once per step, with classifier-free guidance when the guidance scale
//! is above 1 (one batch of two: all-zero "unconditional" conditioning first,
//! then the conditioning, combined as `uncond + g * (cond - uncond)`, as
//! diffusers' Stable Diffusion pipeline does); the final latents go through the
//! decoder graph (VAE for images, vocoder / VAE for audio) and become
//! [`Media`]. Shapes:
//!
//! * denoiser: `latents [b, ...latent_shape]`, `timestep [b]`,
//!   `conditioning [b, n_cond, d_cond]` -> `prediction [b, ...latent_shape]`, b = 1 or 2;
//! * decoder: `latents [1, ...latent_shape]` -> `[1, C, H, W]` image or `[1, (C,) samples]` audio.

use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use ort::session::Session;
use ort::value::TensorElementType;

use crate::diffusion::{self, Noise, Scheduler, SchedulerConfig};
use crate::error::{Error, Result};
use crate::manifest::{GeneratorStage, MediaOutput, Modality};
use crate::media::Media;
use crate::runtime::session;
use crate::stages::graph::StageLoader;
use crate::tensor;

/// Per-request settings of a generation; `None` takes the manifest's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiffusionSettings {
    /// Denoising steps (>= 1).
    pub steps: Option<usize>,
    /// Classifier-free guidance scale (>= 0; guidance runs when > 1).
    pub guidance_scale: Option<f32>,
    /// Initial noise.
    pub noise: Noise,
}

impl DiffusionSettings {
    /// Reject values with no meaning (checked before any model runs).
    pub fn validate(&self) -> Result<()> {
        if self.steps == Some(0) {
            return Err(Error::Request("the number of denoising steps must be at least 1, got 0".into()));
        }
        if let Some(g) = self.guidance_scale {
            if !(g.is_finite() && g >= 0.0) {
                return Err(Error::Request(format!("guidance scale must be finite and >= 0, got {g}")));
            }
        }
        Ok(())
    }
}

/// Milliseconds of one generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GeneratorTimings {
    /// Each denoiser step (graph call + guidance + scheduler step).
    pub denoise_step_ms: Vec<f64>,
    /// All denoiser steps.
    pub denoise_ms: f64,
    /// The decoder graph and the conversion to media.
    pub decode_ms: f64,
}

/// The settings a generation actually used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsedSettings {
    /// diffusers class name of the scheduler.
    pub scheduler: &'static str,
    /// Denoising steps.
    pub steps: usize,
    /// Guidance scale.
    pub guidance_scale: f32,
}

/// A diffusion generator: denoiser and decoder graphs plus the scheduler configuration.
pub struct ModalityGenerator {
    name: String,
    modality: Modality,
    /// `latents, timestep, conditioning` -> `prediction`
    denoiser: Session,
    latents_in: (String, TensorElementType),
    timestep_in: (String, TensorElementType),
    conditioning_in: (String, TensorElementType),
    prediction_out: String,
    /// `latents [1, ...latent_shape]` -> media tensor
    decoder: Session,
    decoder_in: (String, TensorElementType),
    decoder_out: String,
    scheduler: SchedulerConfig,
    latent_shape: Vec<usize>,
    default_steps: usize,
    default_guidance: f32,
    output: MediaOutput,
}

impl ModalityGenerator {
    /// Open both graphs of `stage` and check every named tensor (their provider fallbacks go to the loader).
    pub fn open(loader: &StageLoader<'_>, stage: &GeneratorStage) -> Result<Self> {
        let den_name = format!("{}.denoiser", stage.name);
        let dec_name = format!("{}.decoder", stage.name);
        // Validated manifests satisfy this already; a stage built in code is checked here too.
        if stage.latent_shape.is_empty()
            || crate::limits::checked_product(&stage.latent_shape).is_none_or(|n| n == 0 || n > crate::limits::MAX_LATENT_ELEMENTS)
        {
            return Err(Error::Request(format!(
                "stage \"{}\": `latent_shape` {:?} must have 1 to {} elements (limits::MAX_LATENT_ELEMENTS)",
                stage.name,
                stage.latent_shape,
                crate::limits::MAX_LATENT_ELEMENTS
            )));
        }
        let denoiser = loader.open(&den_name, &stage.denoiser.graph)?.into_session();
        let input = |s: &Session, stage_name: &str, n: &str| -> Result<(String, TensorElementType)> {
            Ok((n.to_string(), session::input_type(s, stage_name, n)?))
        };
        let latents_in = input(&denoiser, &den_name, &stage.denoiser.inputs.latents)?;
        let timestep_in = input(&denoiser, &den_name, &stage.denoiser.inputs.timestep)?;
        let conditioning_in = input(&denoiser, &den_name, &stage.denoiser.inputs.conditioning)?;
        session::require_output(&denoiser, &den_name, &stage.denoiser.output)?;
        let decoder = loader.open(&dec_name, &stage.decoder.graph)?.into_session();
        let decoder_in = input(&decoder, &dec_name, &stage.decoder.input)?;
        session::require_output(&decoder, &dec_name, &stage.decoder.output)?;
        // Latents are sized from `latent_shape`: it must be what both graphs declare
        // (batch aside) before anything is allocated from it.
        let batched: Vec<Option<usize>> = std::iter::once(None).chain(stage.latent_shape.iter().map(|&d| Some(d))).collect();
        let latents_dims = session::input_dims(&denoiser, &latents_in.0);
        session::check_dims(&den_name, &latents_in.0, latents_dims.as_deref(), &batched, "`latent_shape` in bundle.json")?;
        let prediction_dims = session::output_dims(&denoiser, &stage.denoiser.output);
        session::check_dims(&den_name, &stage.denoiser.output, prediction_dims.as_deref(), &batched, "`latent_shape` in bundle.json")?;
        let decoder_dims = session::input_dims(&decoder, &decoder_in.0);
        session::check_dims(&dec_name, &decoder_in.0, decoder_dims.as_deref(), &batched, "`latent_shape` in bundle.json")?;
        if !matches!(timestep_in.1, TensorElementType::Float32 | TensorElementType::Float16 | TensorElementType::Int64 | TensorElementType::Int32) {
            return Err(Error::Tensor {
                stage: den_name,
                tensor: timestep_in.0,
                expected: "float32, float16, int64 or int32".into(),
                found: format!("{:?}", timestep_in.1),
            });
        }
        let generator = Self {
            name: stage.name.clone(),
            modality: stage.modality,
            denoiser,
            latents_in,
            timestep_in,
            conditioning_in,
            prediction_out: stage.denoiser.output.clone(),
            decoder,
            decoder_in,
            decoder_out: stage.decoder.output.clone(),
            scheduler: stage.scheduler.clone(),
            latent_shape: stage.latent_shape.clone(),
            default_steps: stage.steps,
            default_guidance: stage.guidance_scale,
            output: stage.output.clone(),
        };
        Ok(generator)
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it generates.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Latent shape without batch.
    pub fn latent_shape(&self) -> &[usize] {
        &self.latent_shape
    }

    /// Static dimensions the denoiser declares for its conditioning input (`None`: symbolic).
    pub fn conditioning_dims(&self) -> Option<Vec<Option<i64>>> {
        session::input_dims(&self.denoiser, &self.conditioning_in.0)
    }

    /// The denoiser's stage name and conditioning input name, for errors.
    pub fn conditioning_input(&self) -> (String, &str) {
        (format!("{}.denoiser", self.name), &self.conditioning_in.0)
    }

    /// Replace the scheduler configuration (e.g. to run Euler on a DDIM bundle).
    pub fn set_scheduler(&mut self, config: SchedulerConfig) -> Result<()> {
        config.validate().map_err(|m| Error::Request(format!("scheduler: {m}")))?;
        self.scheduler = config;
        Ok(())
    }

    /// Steps and guidance after applying `settings` over the manifest defaults.
    pub fn resolve(&self, settings: &DiffusionSettings) -> Result<UsedSettings> {
        settings.validate()?;
        Ok(UsedSettings {
            scheduler: self.scheduler.class_name(),
            steps: settings.steps.unwrap_or(self.default_steps),
            guidance_scale: settings.guidance_scale.unwrap_or(self.default_guidance),
        })
    }

    /// Validate `settings` and build the scheduler they ask for, without running anything.
    pub fn check(&self, settings: &DiffusionSettings) -> Result<()> {
        let used = self.resolve(settings)?;
        Scheduler::new(&self.scheduler, used.steps).map(|_| ())
    }

    /// Initial noise for generation `stream` of a request, `latent_shape` elements.
    fn initial_noise(&self, noise: &Noise, stream: u64) -> Result<Vec<f32>> {
        let n: usize = self.latent_shape.iter().product();
        match noise {
            Noise::Seed(seed) => Ok(diffusion::gaussian(*seed, stream, n)),
            Noise::Given(values) if values.len() == n => Ok(values.clone()),
            Noise::Given(values) => Err(Error::Request(format!(
                "given noise has {} values but the latent shape {:?} needs {n}",
                values.len(),
                self.latent_shape
            ))),
        }
    }

    /// Run the scheduler loop on `conditioning` `[1, n_cond, d_cond]`: returns the
    /// final latents (`latent_shape` elements, C order) and per-step milliseconds.
    pub fn denoise(&mut self, conditioning: &ArrayD<f32>, settings: &DiffusionSettings, stream: u64) -> Result<(Vec<f32>, Vec<f64>)> {
        let used = self.resolve(settings)?;
        let scheduler = Scheduler::new(&self.scheduler, used.steps)?;
        let cfg = used.guidance_scale > 1.0;
        let batch = if cfg { 2 } else { 1 };
        let n: usize = self.latent_shape.iter().product();
        let den = format!("{}.denoiser", self.name);

        let mut latents = self.initial_noise(&settings.noise, stream)?;
        let sigma = scheduler.init_noise_sigma();
        latents.iter_mut().for_each(|x| *x *= sigma);

        // Conditioning batch: [uncond (zeros), cond] under guidance, as diffusers orders it.
        let cond_shape = conditioning.shape().to_vec();
        if cond_shape.len() != 3 || cond_shape[0] != 1 {
            return Err(Error::Tensor {
                stage: den.clone(),
                tensor: self.conditioning_in.0.clone(),
                expected: "conditioning [1, n_cond, d_cond]".into(),
                found: format!("{cond_shape:?}"),
            });
        }
        let per_row = conditioning.len();
        let mut cond = vec![0.0f32; batch * per_row];
        cond[(batch - 1) * per_row..].copy_from_slice(conditioning.as_slice().expect("standard layout"));
        let cond = ArrayD::from_shape_vec(IxDyn(&[batch, cond_shape[1], cond_shape[2]]), cond).expect("shape");

        let mut shape = vec![batch];
        shape.extend_from_slice(&self.latent_shape);
        // Allocated once: the conditioning value is fed by reference every step,
        // the latents value is rewritten in place, the host buffers are reused.
        let cond_value = tensor::float_value(cond, self.conditioning_in.1, &den, &self.conditioning_in.0)?;
        let mut latents_value = tensor::zeros(&shape, self.latents_in.1, &den, &self.latents_in.0)?;
        let mut model_in = vec![0.0f32; batch * n];
        let mut guided = vec![0.0f32; n];
        let mut step_ms = Vec::with_capacity(scheduler.len());
        for i in 0..scheduler.len() {
            let start = Instant::now();
            for row in model_in.chunks_mut(n) {
                row.copy_from_slice(&latents);
                scheduler.scale_model_input(i, row);
            }
            write_floats(&mut latents_value, &model_in, &den, &self.latents_in.0)?;
            let timestep_value = timestep_value(scheduler.timestep(i), batch, self.timestep_in.1, &den, &self.timestep_in.0)?;
            let inputs = vec![
                (self.latents_in.0.as_str().into(), (&latents_value).into()),
                (self.timestep_in.0.as_str().into(), timestep_value.into()),
                (self.conditioning_in.0.as_str().into(), (&cond_value).into()),
            ];
            let mut out = super::run_named(&mut self.denoiser, &den, inputs, &[&self.prediction_out])?;
            let pred = tensor::to_f32_array(&out.remove(0), &den, &self.prediction_out)?;
            if pred.shape() != shape.as_slice() {
                return Err(Error::Tensor {
                    stage: den,
                    tensor: self.prediction_out.clone(),
                    expected: format!("{shape:?} (the latents' shape)"),
                    found: format!("{:?}", pred.shape()),
                });
            }
            let pred = pred.as_slice().expect("standard layout");
            if cfg {
                let g = used.guidance_scale;
                let (uncond, text) = pred.split_at(n);
                for ((o, &u), &c) in guided.iter_mut().zip(uncond).zip(text) {
                    *o = u + g * (c - u);
                }
            } else {
                guided.copy_from_slice(pred);
            }
            scheduler.step(i, &guided, &mut latents);
            step_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok((latents, step_ms))
    }

    /// Decode final latents (`latent_shape` elements) into media.
    pub fn decode(&mut self, latents: Vec<f32>) -> Result<Media> {
        let dec = format!("{}.decoder", self.name);
        let mut shape = vec![1];
        shape.extend_from_slice(&self.latent_shape);
        let value = tensor::float_value(
            ArrayD::from_shape_vec(IxDyn(&shape), latents).expect("latent_shape elements"),
            self.decoder_in.1,
            &dec,
            &self.decoder_in.0,
        )?;
        let mut out = super::run_named(&mut self.decoder, &dec, vec![(self.decoder_in.0.as_str().into(), value.into())], &[&self.decoder_out])?;
        let media = tensor::to_f32_array(&out.remove(0), &dec, &self.decoder_out)?;
        Media::from_tensor(&self.output, &media, &dec, &self.decoder_out)
    }

    /// Denoise then decode: conditioning `[1, n_cond, d_cond]` -> media.
    pub fn generate(
        &mut self,
        conditioning: &ArrayD<f32>,
        settings: &DiffusionSettings,
        stream: u64,
    ) -> Result<(Media, UsedSettings, GeneratorTimings)> {
        let used = self.resolve(settings)?;
        let start = Instant::now();
        let (latents, denoise_step_ms) = self.denoise(conditioning, settings, stream)?;
        let denoise = start.elapsed();
        let start = Instant::now();
        let media = self.decode(latents)?;
        let timings = GeneratorTimings { denoise_step_ms, denoise_ms: ms(denoise), decode_ms: ms(start.elapsed()) };
        Ok((media, used, timings))
    }
}

/// Overwrite a float tensor's data (f32 or f16, as created) with `data`.
fn write_floats(value: &mut ort::value::DynValue, data: &[f32], stage: &str, name: &str) -> Result<()> {
    let err = |e: ort::Error| Error::stage(stage, &format!("writing tensor {name}"), e);
    match tensor::element_type(value) {
        Some(TensorElementType::Float16) => {
            let (_, buf) = value.try_extract_tensor_mut::<half::f16>().map_err(err)?;
            buf.iter_mut().zip(data).for_each(|(b, &x)| *b = half::f16::from_f32(x));
        }
        _ => {
            let (_, buf) = value.try_extract_tensor_mut::<f32>().map_err(err)?;
            buf.copy_from_slice(data);
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `[batch]` timesteps in the element type the denoiser declares; integer
/// types only take whole timesteps (DDIM's), never a rounded Euler timestep.
fn timestep_value(t: f32, batch: usize, dtype: TensorElementType, stage: &str, name: &str) -> Result<ort::value::DynValue> {
    match dtype {
        TensorElementType::Int64 | TensorElementType::Int32 => {
            if t.fract() != 0.0 {
                return Err(Error::Tensor {
                    stage: stage.into(),
                    tensor: name.into(),
                    expected: "a float timestep input (this scheduler's timesteps are fractional)".into(),
                    found: format!("{dtype:?} for timestep {t}"),
                });
            }
            tensor::int_value(&[batch], vec![t as i64; batch], dtype, stage, name)
        }
        _ => tensor::float_value(ArrayD::from_elem(IxDyn(&[batch]), t), dtype, stage, name),
    }
}
