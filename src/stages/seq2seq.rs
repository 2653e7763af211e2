//! The encoder-decoder text side (Whisper): the cross-attention input
//! projection (encoder states -> per-layer cross keys/values, once per audio
//! window) and the text decoder, whose steps take those keys/values as
//! constant inputs. [`WindowDecoder`] binds one window's keys/values to the
//! decoder, making it the same [`DecoderModel`] the LLM is, so one generation
//! loop and one beam search serve both.
//!
//! Shapes (`beams` is 1 except in beam search, which steps its beams as one
//! batch; the cross keys/values stay batch 1 and the graph broadcasts them):
//! * cross_kv: `encoder_hidden_states [1, positions, d]` -> `cross.{i}.key/value [1, heads, positions, head_dim]`
//! * decoder: `input_ids [beams, n]`, `past.{i}.* [beams, heads, past, head_dim]`, `cross.{i}.*`
//!   -> `logits [beams, n, vocab]`, `present.{i}.* [beams, heads, past + n, head_dim]`

use std::time::{Duration, Instant};

use ort::value::DynValue;

use super::decoder::Decoder;
use super::graph::{StageGraph, StageLoader};
use super::io::KvCache;
use crate::error::{Error, Result};
use crate::generate::{DecoderModel, StepInput};
use crate::manifest::Seq2seqDecoderStage;
use crate::runtime::device::DeviceKind;

/// Cross keys/values of one window, one pair per decoder layer, kept as
/// runtime values and lent (not copied) to every decoder step of that window.
pub struct CrossKv(Vec<DynValue>);

/// The text decoder and its cross-attention projection graph.
pub struct Seq2seqDecoder {
    /// `encoder_hidden_states` -> `cross.{i}.key/value`
    cross_graph: StageGraph,
    cross_input: String,
    cross_names: Vec<String>,
    decoder: Decoder,
    stage: Seq2seqDecoderStage,
    /// Whether every cross key/value input is declared with batch 1, so the
    /// graph broadcasts it over a batch of beams.
    beams_batch: bool,
}

impl Seq2seqDecoder {
    /// Open both graphs and check every tensor the manifest names.
    pub fn open(loader: &StageLoader<'_>, stage: &Seq2seqDecoderStage) -> Result<Self> {
        let cross_graph = loader.open(&format!("{}.cross_kv", stage.name), &stage.cross_kv.graph)?;
        cross_graph.input_type(&stage.cross_kv.input)?;
        let cross_names = stage.cross_kv.names(stage.kv_cache.num_layers.min(cross_graph.session().outputs().len()));
        for c in &cross_names {
            cross_graph.require_output(c)?;
        }
        let decoder = Decoder::open_seq2seq(loader, stage, &cross_names)?;
        let beams_batch = cross_names.iter().all(|c| decoder.input_dims(c).and_then(|d| d.first().copied().flatten()) == Some(1));
        Ok(Self { cross_graph, cross_input: stage.cross_kv.input.clone(), cross_names, decoder, stage: stage.clone(), beams_batch })
    }

    /// The stage name.
    pub fn name(&self) -> &str {
        &self.stage.name
    }

    /// The manifest entry.
    pub fn stage(&self) -> &Seq2seqDecoderStage {
        &self.stage
    }

    /// Project encoder states into the cross keys/values of every layer, left
    /// in the memory the decoder computes in (on a GPU they are not uploaded
    /// again at every step).
    pub fn cross_kv(&mut self, encoder_states: DynValue) -> Result<(CrossKv, Duration)> {
        let start = Instant::now();
        let wanted: Vec<&str> = self.cross_names.iter().map(String::as_str).collect();
        // A session can only write into memory its own providers handle: device memory when
        // both graphs run there (one fell back to the CPU: the host).
        let device = if self.cross_graph.device() == self.decoder.device() { self.decoder.device() } else { DeviceKind::Host };
        let values = self.cross_graph.run_into(&[(self.cross_input.as_str(), &encoder_states)], &wanted, device)?;
        Ok((CrossKv(values), start.elapsed()))
    }

    /// The decoder bound to one window's cross keys/values.
    pub fn window<'a>(&'a mut self, cross: &'a CrossKv) -> WindowDecoder<'a> {
        let constants = self.cross_names.iter().map(String::as_str).zip(&cross.0).collect();
        WindowDecoder { constants, decoder: &mut self.decoder, beams_batch: self.beams_batch }
    }
}

/// One window's decoder: the text decoder with that window's cross keys/values.
pub struct WindowDecoder<'a> {
    /// `(name, value)` of each cross key/value input, paired once per window.
    constants: Vec<(&'a str, &'a DynValue)>,
    decoder: &'a mut Decoder,
    beams_batch: bool,
}

impl DecoderModel for WindowDecoder<'_> {
    type Cache = KvCache;

    fn new_cache(&mut self) -> Result<KvCache> {
        self.decoder.new_cache()
    }

    fn step(&mut self, input: StepInput<'_>, cache: KvCache, logits: &mut Vec<f32>) -> Result<KvCache> {
        // Cross keys/values are lent by reference: the same buffers every step.
        self.decoder.step_with(input, cache, &self.constants, logits)
    }

    fn select_beams(&mut self, cache: KvCache, parents: &[usize]) -> Result<KvCache> {
        cache.select_rows(parents, self.decoder.name())
    }

    fn step_beams(&mut self, tokens: &[u32], cache: KvCache, logits: &mut Vec<f32>) -> Result<KvCache> {
        if !self.beams_batch && tokens.len() > 1 {
            return Err(Error::Request(format!(
                "stage \"{}\": beam search steps its beams as one batch, and this decoder graph's cross key/value inputs are not declared \
                 with batch 1 (to broadcast over the beams); export it again with exporters/whisper",
                self.decoder.name()
            )));
        }
        self.decoder.step_beams(tokens, cache, &self.constants, logits)
    }

    fn context_length(&self) -> usize {
        self.decoder.context_length()
    }

    fn name(&self) -> &str {
        self.decoder.name()
    }
}
