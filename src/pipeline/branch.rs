//! Input modality branches: preprocess -> modality encoder -> input projector,
//! one object per modality, looked up by modality. Adding a modality is one
//! preprocess module, one branch here and its line in [`open_branch`].
//!
//! The audio branch also serves encoder-decoder (speech) bundles, which use
//! its windowing and encoder without a projector (their decoder attends to the
//! encoder states through cross-attention instead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{Array2, Array4, Axis, Ix2};
use ort::value::DynValue;

use super::cache::{CacheStats, EmbeddingCache};
use super::clip::{VideoBranch, VideoReport};
use super::frames::{self, FrameEncoder};
use super::input::MediaInput;
use super::request::{MediaOptions, StageTimings};
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, Modality, ProjectorStage};
use crate::preprocess;
use crate::stages::encoder::AudioEncoder;
use crate::stages::graph::StageLoader;
use crate::stages::projector::InputProjector;
use crate::tensor;
use crate::vad::{SileroVad, VadConfig};

/// Projected embeddings of a request's items of one modality, ready to merge.
pub struct MediaEmbeddings {
    /// Projector outputs as the graph returned them (element type kept): one
    /// `[n_items, tokens, d_llm]` value for an image batch, one `[1, tokens, d_llm]` per audio window.
    pub values: Vec<DynValue>,
    /// Rows per item (placeholder expansion length), in item order.
    pub tokens_per_item: Vec<usize>,
    /// The projector stage, for errors.
    pub stage: String,
    /// Embedding-cache hits and misses of these items (images, video frames).
    pub cache: CacheStats,
    /// What was read of each video.
    pub videos: Vec<VideoReport>,
}

impl MediaEmbeddings {
    /// Every row, item after item: `[sum(tokens_per_item), d_llm]` as f32.
    pub fn rows(&self) -> Result<Array2<f32>> {
        let mut parts = Vec::with_capacity(self.values.len());
        for value in &self.values {
            let array = tensor::to_f32_array(value, &self.stage, "output")?;
            let dims = array.shape().to_vec();
            let [n, t, d] = dims[..] else {
                return Err(self.bad_shape(format!("{dims:?}")));
            };
            parts.push(array.into_shape_with_order((n * t, d)).map_err(|e| self.bad_shape(e.to_string()))?.into_dimensionality::<Ix2>().expect("rank 2"));
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).map_err(|e| self.bad_shape(format!("windows of different widths: {e}")))
    }

    fn bad_shape(&self, found: String) -> Error {
        Error::Tensor { stage: self.stage.clone(), tensor: "output".into(), expected: "[n, tokens, d_llm]".into(), found }
    }
}

/// One input modality's path into the LLM's embedding space.
pub trait ModalityBranch: Send {
    /// The modality it handles.
    fn modality(&self) -> Modality;
    /// Preprocess, encode and project `inputs` (in prompt order), adding stage times to `timings`.
    fn embed(&mut self, inputs: &[MediaInput], options: &MediaOptions, timings: &mut StageTimings) -> Result<MediaEmbeddings>;
}

/// Open the branch of `modality` from its encoder and projector stages;
/// pictures go through `cache`.
pub fn open_branch(loader: &StageLoader<'_>, encoder: &EncoderStage, projector: &ProjectorStage, cache: &Arc<EmbeddingCache>) -> Result<Box<dyn ModalityBranch>> {
    Ok(match encoder.modality {
        Modality::Image => Box::new(ImageBranch { frames: FrameEncoder::open(loader, encoder, cache.clone())?, projector: InputProjector::open(loader, projector)? }),
        Modality::Audio => Box::new(AudioBranch { encoder: AudioEncoder::open(loader, encoder)?, projector: Some(InputProjector::open(loader, projector)?) }),
        Modality::Video => Box::new(VideoBranch::open(loader, encoder, projector, cache.clone())?),
    })
}

/// Images: decode + resize/crop/normalize -> vision encoder (cached per
/// image, the misses as one batch) -> projector.
pub struct ImageBranch {
    frames: FrameEncoder,
    projector: InputProjector,
}

impl ModalityBranch for ImageBranch {
    fn modality(&self) -> Modality {
        Modality::Image
    }

    fn embed(&mut self, inputs: &[MediaInput], _options: &MediaOptions, timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        let start = Instant::now();
        let mut items: Vec<Array4<f32>> = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let item = self.frames.preprocess(&input.to_rgb()?, &input.label())?;
            if let Some(((first_height, first_width), (height, width))) = items.first().and_then(|first| self.frames.size_mismatch(first, &item)) {
                let source = preprocess::image::ImageError::MixedSizes { index, width, height, first_width, first_height };
                return Err(Error::Image { path: input.label(), source });
            }
            items.push(item);
        }
        timings.push("preprocess", start.elapsed());
        let encoded = self.frames.encode(&items)?;
        timings.push(self.frames.name(), encoded.encode_time);
        let features = frames::stack(&encoded.features, self.frames.name())?;
        let (value, t) = self.projector.project(tensor::float_value(features.into_dyn(), ort::value::TensorElementType::Float32, self.frames.name(), "output")?)?;
        timings.push(self.projector.name(), t);
        let dims = tensor::dims(&value);
        if dims.len() != 3 || dims[0] as usize != inputs.len() {
            return Err(Error::Tensor {
                stage: self.projector.name().into(),
                tensor: "output".into(),
                expected: format!("[{}, tokens, d_llm]", inputs.len()),
                found: format!("{dims:?}"),
            });
        }
        Ok(MediaEmbeddings {
            values: vec![value],
            tokens_per_item: vec![dims[1] as usize; inputs.len()],
            stage: self.projector.name().into(),
            cache: encoded.cache,
            videos: Vec::new(),
        })
    }
}

/// Audio: read + resample -> `chunk_seconds` windows (or voice-activity
/// spans) -> log-mel -> audio encoder, then the projector per window when the
/// branch feeds an LLM.
pub struct AudioBranch {
    encoder: AudioEncoder,
    projector: Option<InputProjector>,
}

impl AudioBranch {
    /// The audio encoder alone (an encoder-decoder bundle's front end).
    pub fn encoder_only(loader: &StageLoader<'_>, encoder: &EncoderStage) -> Result<Self> {
        Ok(Self { encoder: AudioEncoder::open(loader, encoder)?, projector: None })
    }

    /// The encoder's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.encoder.settings().sample_rate
    }

    /// The encoder stage's name.
    pub fn encoder_name(&self) -> &str {
        self.encoder.name()
    }

    /// Read `input` and resample it to the encoder's rate.
    pub fn load(&self, input: &MediaInput) -> Result<Vec<f32>> {
        input.to_samples(self.sample_rate())
    }

    /// `[start, end)` sample spans to encode: consecutive `chunk_seconds`
    /// windows, or voice-activity segments packed into windows when `vad` is given.
    pub fn spans(&self, samples: &[f32], vad: Option<(&mut SileroVad, &VadConfig)>) -> Result<Vec<(usize, usize)>> {
        let window = self.encoder.log_mel().window_samples();
        match vad {
            None => Ok((0..samples.len()).step_by(window.max(1)).map(|s| (s, (s + window).min(samples.len()))).collect()),
            Some((vad, config)) => Ok(crate::vad::pack_segments(&vad.speech_segments(samples, config)?, window)),
        }
    }

    /// Log-mel of one span into `features` (reused), then the encoder: `(states, log-mel time, encoder time)`.
    pub fn encode_span(&mut self, span: &[f32], features: &mut Vec<f32>) -> Result<(DynValue, Duration, Duration)> {
        let start = Instant::now();
        self.encoder.log_mel().compute_into(span, features);
        let mel = start.elapsed();
        let (states, enc) = self.encoder.encode(std::mem::take(features))?;
        Ok((states, mel, enc))
    }
}

impl ModalityBranch for AudioBranch {
    fn modality(&self) -> Modality {
        Modality::Audio
    }

    fn embed(&mut self, paths: &[MediaInput], _options: &MediaOptions, timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        let (mut pre, mut enc, mut proj) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut values = Vec::new();
        let mut tokens_per_item = Vec::with_capacity(paths.len());
        let mut features = Vec::new();
        for path in paths {
            let start = Instant::now();
            let samples = self.load(path)?;
            pre += start.elapsed();
            let mut rows = 0;
            for (s, e) in self.spans(&samples, None)? {
                let (states, t_mel, t_enc) = self.encode_span(&samples[s..e], &mut features)?;
                pre += t_mel;
                enc += t_enc;
                let projector = self.projector.as_mut().expect("an LLM audio branch has a projector");
                let (value, t) = projector.project(states)?;
                proj += t;
                let dims = tensor::dims(&value);
                let [1, tokens, _] = dims[..] else {
                    return Err(Error::Tensor {
                        stage: projector.name().into(),
                        tensor: "output".into(),
                        expected: "[1, tokens, d_llm] per audio window".into(),
                        found: format!("{dims:?}"),
                    });
                };
                rows += tokens as usize;
                values.push(value);
            }
            tokens_per_item.push(rows);
        }
        let projector = self.projector.as_ref().expect("an LLM audio branch has a projector").name().to_string();
        timings.push("audio_preprocess", pre);
        timings.push(self.encoder.name(), enc);
        timings.push(&projector, proj);
        Ok(MediaEmbeddings { values, tokens_per_item, stage: projector, cache: CacheStats::default(), videos: Vec::new() })
    }
}
