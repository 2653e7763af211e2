//! The encoder-decoder (speech recognition) stages: the audio encoder
//! (log-mel `input_features` -> encoder states), the cross-attention input
//! projection (encoder states -> per-layer cross keys/values, once per window)
//! and the text decoder step with its self-attention KV cache.
//!
//! Shapes (batch 1):
//! * encoder: `input_features [1, n_mels, frames]` -> `encoder_hidden_states [1, positions, d]`
//! * cross_kv: `encoder_hidden_states` -> `cross.{i}.key/value [1, heads, positions, head_dim]`
//! * decoder: `input_ids [1, n]`, `past.{i}.* [1, heads, past, head_dim]`, `cross.{i}.*`
//!   -> `logits [1, n, vocab]`, `present.{i}.* [1, heads, past + n, head_dim]`

use std::borrow::Cow;
use std::time::{Duration, Instant};

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::manifest::{AudioPreprocess, EncoderStage, Preprocess, Seq2seqDecoderStage};
use crate::preprocess::audio::LogMel;
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;
use crate::tensor;

/// The audio encoder with its log-mel front end.
pub struct AudioEncoder {
    name: String,
    /// `input_features [1, n_mels, frames]` -> `encoder_hidden_states [1, positions, d]`
    session: Session,
    input: String,
    input_type: TensorElementType,
    output: String,
    settings: AudioPreprocess,
    log_mel: LogMel,
}

impl AudioEncoder {
    /// Open the encoder graph and check its input agrees with the manifest's preprocessing.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &EncoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let Preprocess::Audio(settings) = &stage.preprocess else {
            return Err(Error::Request(format!("stage \"{}\" is not an audio encoder", stage.name)));
        };
        let log_mel = LogMel::new(settings).map_err(|source| Error::Audio { path: bundle.root.join(crate::bundle::MANIFEST_FILE), source })?;
        let OpenedSession { session, fallback } = session::open(runtime, &bundle.resolve(&stage.graph)?, &stage.name, config)?;
        let input_type = session::input_type(&session, &stage.name, &stage.input)?;
        session::require_output(&session, &stage.name, &stage.output)?;
        // The graph's static [_, n_mels, frames] must match what the preprocessing produces.
        if let Some(dims) = session::input_dims(&session, &stage.input) {
            let want = [log_mel.n_mels(), log_mel.frames()];
            let ok = dims.len() == 3 && dims[1..].iter().zip(want).all(|(d, w)| d.is_none_or(|d| d as usize == w));
            if !ok {
                return Err(Error::Tensor {
                    stage: stage.name.clone(),
                    tensor: stage.input.clone(),
                    expected: format!("[batch, {}, {}] (n_mels, chunk_seconds * sample_rate / hop_length from bundle.json)", want[0], want[1]),
                    found: format!("{dims:?} declared by {}", stage.graph),
                });
            }
        }
        let encoder = Self {
            name: stage.name.clone(),
            session,
            input: stage.input.clone(),
            input_type,
            output: stage.output.clone(),
            settings: settings.clone(),
            log_mel,
        };
        Ok((encoder, fallback))
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifest's preprocessing settings.
    pub fn settings(&self) -> &AudioPreprocess {
        &self.settings
    }

    /// The log-mel front end.
    pub fn log_mel(&self) -> &LogMel {
        &self.log_mel
    }

    /// Encode one window's features `[n_mels * frames]` (row-major) into encoder states.
    pub fn encode(&mut self, features: Vec<f32>) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let shape = [1, self.log_mel.n_mels(), self.log_mel.frames()];
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), features).map_err(|e| Error::Tensor {
            stage: self.name.clone(),
            tensor: self.input.clone(),
            expected: format!("{shape:?}"),
            found: e.to_string(),
        })?;
        let input = tensor::float_value(array, self.input_type, &self.name, &self.input)?;
        let mut out = super::run_named(&mut self.session, &self.name, vec![(self.input.as_str().into(), input.into())], &[&self.output])?;
        Ok((out.remove(0), start.elapsed()))
    }
}

/// Cross keys/values of one window, one pair per decoder layer, kept on the
/// device and lent (not copied) to every decoder step of that window.
pub struct CrossKv(Vec<DynValue>);

/// The text decoder and its cross-attention projection graph.
pub struct Seq2seqDecoder {
    name: String,
    /// `encoder_hidden_states` -> `cross.{i}.key/value`
    cross_session: Session,
    cross_input: String,
    cross_names: Vec<String>,
    /// `input_ids, past.*, cross.*` -> `logits, present.*`
    session: Session,
    ids_input: String,
    ids_type: TensorElementType,
    logits_output: String,
    past_names: Vec<String>,
    present_names: Vec<String>,
    /// `[1, heads, 0, head_dim]` and element type of each empty past input.
    empty_past: Vec<(TensorElementType, Vec<usize>)>,
    stage: Seq2seqDecoderStage,
}

impl Seq2seqDecoder {
    /// Open both graphs and check every tensor the manifest names.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, stage: &Seq2seqDecoderStage, config: &SessionConfig) -> Result<(Self, Option<String>)> {
        let name = stage.name.clone();
        let cross_stage = format!("{name}.cross_kv");
        let OpenedSession { session: cross_session, fallback } =
            session::open(runtime, &bundle.resolve(&stage.cross_kv.graph)?, &cross_stage, config)?;
        session::input_type(&cross_session, &cross_stage, &stage.cross_kv.input)?;
        let n = stage.kv_cache.num_layers;
        let cross_names = stage.cross_kv.names(n);
        for c in &cross_names {
            session::require_output(&cross_session, &cross_stage, c)?;
        }
        let OpenedSession { session, .. } = session::open(runtime, &bundle.resolve(&stage.graph)?, &name, config)?;
        let ids_type = session::input_type(&session, &name, &stage.input_ids)?;
        session::require_output(&session, &name, &stage.logits)?;
        for c in &cross_names {
            session::input_type(&session, &name, c)?;
        }
        let past_names = stage.kv_cache.past_names();
        let present_names = stage.kv_cache.present_names();
        for p in &present_names {
            session::require_output(&session, &name, p)?;
        }
        let empty_past = past_names.iter().map(|p| crate::kv_cache::empty_past_spec(&session, &name, p, stage.kv_cache.head_dim)).collect::<Result<_>>()?;
        let decoder = Self {
            name,
            cross_session,
            cross_input: stage.cross_kv.input.clone(),
            cross_names,
            session,
            ids_input: stage.input_ids.clone(),
            ids_type,
            logits_output: stage.logits.clone(),
            past_names,
            present_names,
            empty_past,
            stage: stage.clone(),
        };
        Ok((decoder, fallback))
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifest entry.
    pub fn stage(&self) -> &Seq2seqDecoderStage {
        &self.stage
    }

    /// Project encoder states into the cross keys/values of every layer.
    pub fn cross_kv(&mut self, encoder_states: DynValue) -> Result<(CrossKv, Duration)> {
        let start = Instant::now();
        let stage = format!("{}.cross_kv", self.name);
        let wanted: Vec<&str> = self.cross_names.iter().map(String::as_str).collect();
        let values = super::run_named(&mut self.cross_session, &stage, vec![(self.cross_input.as_str().into(), encoder_states.into())], &wanted)?;
        Ok((CrossKv(values), start.elapsed()))
    }

    /// A self-attention cache holding no positions.
    pub fn empty_cache(&self) -> Result<KvCache> {
        let values = self
            .empty_past
            .iter()
            .zip(&self.past_names)
            .map(|((dtype, shape), name)| tensor::zeros(shape, *dtype, &self.name, name))
            .collect::<Result<_>>()?;
        Ok(KvCache::new(values, 0))
    }

    /// One decoder pass over `ids` following `cache`; the cache moves into the
    /// graph and the new one is returned; the last position's logits go to `logits`.
    pub fn step(&mut self, ids: &[u32], cache: KvCache, cross: &CrossKv, logits: &mut Vec<f32>) -> Result<KvCache> {
        let total = cache.seq_len() + ids.len();
        let data = ids.iter().map(|&i| i as i64).collect();
        let input = tensor::int_value(&[1, ids.len()], data, self.ids_type, &self.name, &self.ids_input)?;
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(1 + 2 * self.past_names.len());
        inputs.push((self.ids_input.as_str().into(), input.into()));
        for (name, value) in self.past_names.iter().zip(cache.into_values()) {
            inputs.push((name.as_str().into(), value.into()));
        }
        // Cross keys/values are lent by reference: the same device buffers every step.
        for (name, value) in self.cross_names.iter().zip(&cross.0) {
            inputs.push((name.as_str().into(), value.into()));
        }
        let mut wanted: Vec<&str> = Vec::with_capacity(1 + self.present_names.len());
        wanted.push(&self.logits_output);
        wanted.extend(self.present_names.iter().map(String::as_str));
        let mut outputs = super::run_named(&mut self.session, &self.name, inputs, &wanted)?.into_iter();
        let logits_value = outputs.next().expect("logits requested first");
        tensor::last_row_f32(&logits_value, &self.name, &self.logits_output, logits)?;
        Ok(KvCache::new(outputs.collect(), total))
    }
}

