//! The decoder graph with its KV cache, one type for both decoders: the LLM
//! backbone (`llm_decoder`: with its token embedding graph, or taking ids) and
//! the text decoder of an encoder-decoder model (`seq2seq_decoder`: ids in,
//! cross-attention keys/values as constant inputs, see [`super::seq2seq`]).
//! Implements [`DecoderModel`] for the generation loop.
//!
//! Two forms of LLM graph: multimodal-ready (`inputs_embeds` in, with a
//! separate embedding graph, so media rows can be spliced between text rows)
//! and text-only (`input_ids` in, the graph embeds: one session call a step).
//! With a token table ([`super::token_table`]) the graph takes
//! `inputs_embeds` and returns the final hidden state; mmrt embeds and
//! computes the logits from the mapped table itself.
//!
//! Shapes (batch is always 1 here):
//! * embedding: `input_ids [1, n]` -> `inputs_embeds [1, n, d_llm]`
//! * decoder: `inputs_embeds [1, n, d_llm]` or `input_ids [1, n]`, optional
//!   `attention_mask [1, past + n]` and `position_ids [1, n]`, `past.* [1, kv_heads, past, head_dim]`,
//!   constant inputs (`cross.*`) -> `logits [1, n, vocab]`, optionally
//!   `hidden_states [1, n, d_llm]`, `present.* [1, kv_heads, past + n, head_dim]`

use ort::session::IoBinding;
use ort::value::{DynValue, TensorElementType};

use super::graph::{StageGraph, StageLoader};
use super::io::{KvCache, KvLayout, OutputRows, PositionInputs};
use super::single::SingleIoGraph;
use super::token_table::TokenTable;
use crate::error::{Error, Result};
use crate::generate::{DecoderModel, StepInput};
use crate::manifest::{DecoderStage, EmbeddingGraph, Seq2seqDecoderStage};
use crate::tensor;

/// The token embedding graph.
pub struct TokenEmbedder {
    /// `input_ids [1, n]` -> `inputs_embeds [1, n, d_llm]`
    graph: SingleIoGraph,
    scale: f32,
}

impl TokenEmbedder {
    fn open(loader: &StageLoader<'_>, decoder: &str, graph: &EmbeddingGraph) -> Result<Self> {
        let stage = format!("{decoder}.embedding");
        Ok(Self { graph: SingleIoGraph::open(loader, &stage, &graph.graph, &graph.input, &graph.output)?, scale: graph.scale })
    }

    /// Embed `ids` as `[1, ids.len(), d_llm]`, applying the manifest's scale.
    pub fn embed(&mut self, ids: &[u32]) -> Result<DynValue> {
        let (stage, input) = (self.graph.stage().to_string(), self.graph.input().to_string());
        let value = tensor::int_value(&[1, ids.len()], ids.iter().map(|&i| i as i64).collect(), self.graph.input_type(), &stage, &input)?;
        let embeds = self.graph.run(value)?;
        if self.scale == 1.0 {
            return Ok(embeds);
        }
        let dtype = tensor::element_type(&embeds).unwrap_or(TensorElementType::Float32);
        let scaled = tensor::to_f32_array(&embeds, &stage, self.graph.output())? * self.scale;
        tensor::float_value(scaled, dtype, &stage, self.graph.output())
    }
}

/// What the decoder graph takes besides positions, cache and constants.
enum TokenInput {
    /// `inputs_embeds [1, n, d_llm]`, made by the embedding graph.
    Embeds { embedder: Box<TokenEmbedder>, name: String, dtype: TensorElementType },
    /// `inputs_embeds [1, n, d_llm]`, rows of the token table.
    TableRows { name: String, dtype: TensorElementType },
    /// `input_ids [1, n]`: the graph embeds.
    Ids { name: String, dtype: TensorElementType },
}

/// A decoder graph plus everything needed to feed it.
pub struct Decoder {
    /// `inputs_embeds | input_ids, [attention_mask, position_ids], past.*, [cross.*]` -> `logits, [hidden_states], present.*`
    graph: StageGraph,
    input: TokenInput,
    positions: PositionInputs,
    kv: KvLayout,
    outputs: OutputRows,
    context_length: usize,
    /// Embeds text and computes the logits when the manifest has a `token_table`.
    table: Option<TokenTable>,
    /// The shared KV buffers' binding, kept across the steps of a generation.
    bound: Option<KvBinding>,
}

impl Decoder {
    /// Open an LLM backbone: the embedding graph (if any) and the decoder
    /// graph, checking every named tensor exists.
    pub fn open(loader: &StageLoader<'_>, stage: &DecoderStage) -> Result<Self> {
        let name = &stage.name;
        // With a token table mmrt's own threads compute the logits right after each run: ONNX
        // Runtime's workers must not go on spinning on the cores they need (measured, Gemma 3
        // 270M, 2 threads: the output layer 11.7 ms a token with spinning workers, 5.9 ms without).
        let defaults: &[(&str, &str)] = if stage.token_table.is_some() { &[("session.force_spinning_stop", "1")] } else { &[] };
        let graph = loader.open_sized(name, &stage.graph, defaults, Some(stage.context_length))?;
        let table = open_table(loader, stage, &graph)?;
        let input = match (&stage.inputs.inputs_embeds, &stage.inputs.input_ids, &stage.embedding) {
            (Some(embeds), None, None) if table.is_some() => TokenInput::TableRows { name: embeds.clone(), dtype: graph.input_type(embeds)? },
            (Some(embeds), _, Some(embedding)) => TokenInput::Embeds {
                embedder: Box::new(TokenEmbedder::open(loader, name, embedding)?),
                name: embeds.clone(),
                dtype: graph.input_type(embeds)?,
            },
            (None, Some(ids), None) => TokenInput::Ids { name: ids.clone(), dtype: graph.input_type(ids)? },
            _ => return Err(Error::Request(format!("stage \"{name}\": invalid decoder inputs (the manifest check should have said why)"))),
        };
        let positions = PositionInputs::new(
            graph.optional_input(stage.inputs.attention_mask.as_ref())?,
            graph.optional_input(stage.inputs.position_ids.as_ref())?,
        );
        Self::assemble(graph, input, positions, table, stage)
    }

    /// Open the text decoder of an encoder-decoder model (ids in; its cross
    /// keys/values are the constants of each step, see [`Self::step_with`]).
    pub fn open_seq2seq(loader: &StageLoader<'_>, stage: &Seq2seqDecoderStage, constants: &[String]) -> Result<Self> {
        let graph = loader.open_sized(&stage.name, &stage.graph, &[], Some(stage.context_length))?;
        for c in constants {
            graph.input_type(c)?;
        }
        let input = TokenInput::Ids { name: stage.input_ids.clone(), dtype: graph.input_type(&stage.input_ids)? };
        let kv = KvLayout::open(&graph, &stage.kv_cache, stage.context_length)?;
        graph.require_output(&stage.logits)?;
        let outputs = OutputRows::new(Some(stage.logits.clone()), None);
        Ok(Self { graph, input, positions: PositionInputs::none(), kv, outputs, context_length: stage.context_length, table: None, bound: None })
    }

    /// The decoder over `graph`, its named outputs checked; without a graph
    /// `logits` output, `table` computes the logits from `hidden_states`.
    fn assemble(graph: StageGraph, input: TokenInput, positions: PositionInputs, table: Option<TokenTable>, stage: &DecoderStage) -> Result<Self> {
        let (logits, hidden) = (&stage.outputs.logits, &stage.outputs.hidden_states);
        for name in logits.iter().chain(hidden) {
            graph.require_output(name)?;
        }
        let kv = KvLayout::open(&graph, &stage.kv_cache, stage.context_length)?;
        let outputs = OutputRows::new(logits.clone(), hidden.clone());
        Ok(Self { graph, input, positions, kv, outputs, context_length: stage.context_length, table, bound: None })
    }

    /// The memory the decoder computes in (where its cache and constants belong).
    pub fn device(&self) -> crate::runtime::device::DeviceKind {
        self.graph.device()
    }

    /// The declared dimensions of input `name` (`None` for a symbolic one).
    pub fn input_dims(&self, name: &str) -> Option<Vec<Option<i64>>> {
        self.graph.input_dims(name)
    }

    /// Element type the decoder declares for `inputs_embeds`; `None` for the
    /// text-only form, which cannot take media rows.
    pub fn embeds_type(&self) -> Option<TensorElementType> {
        match &self.input {
            TokenInput::Embeds { dtype, .. } | TokenInput::TableRows { dtype, .. } => Some(*dtype),
            TokenInput::Ids { .. } => None,
        }
    }

    /// Embed token ids: `[1, n]` -> `[1, n, d_llm]` (the ids themselves for the text-only form).
    pub fn embed(&mut self, ids: &[u32]) -> Result<DynValue> {
        match &mut self.input {
            TokenInput::Embeds { embedder, .. } => embedder.embed(ids),
            TokenInput::TableRows { name, dtype } => {
                let table = self.table.as_ref().expect("a TableRows input has a table");
                let mut rows = Vec::new();
                table.embed(ids, &mut rows)?;
                let rows = ndarray::ArrayD::from_shape_vec(vec![1, ids.len(), table.width()], rows).expect("embed returns ids.len() rows of width");
                tensor::float_value(rows, *dtype, self.graph.stage(), name)
            }
            TokenInput::Ids { name, dtype } => tensor::int_value(&[1, ids.len()], ids.iter().map(|&i| i as i64).collect(), *dtype, self.graph.stage(), name),
        }
    }

    /// One forward pass over `input` following `cache`, with `constants`
    /// (name, value) lent to the graph by reference (cross keys/values).
    pub fn step_with(&mut self, input: StepInput<'_>, cache: KvCache, constants: &[(&str, &DynValue)], logits: &mut Vec<f32>) -> Result<KvCache> {
        let value = match input {
            StepInput::Ids(ids) => self.embed(ids)?,
            StepInput::Embeds(value) => value,
        };
        let (name, seq, value) = self.check_input(value)?;
        let past = cache.seq_len();
        let total = past + seq;
        self.check_room(total)?;
        let cache = self.kv.reserve(&mut self.graph, cache, total)?;
        let stage = self.graph.stage().to_string();
        let positions = self.positions.values(&stage, past, total)?;
        let feeds: Vec<(&str, &DynValue)> =
            std::iter::once((name.as_str(), &value)).chain(positions.iter().map(|(n, v)| (*n, v))).chain(constants.iter().copied()).collect();
        let values = if self.kv.shared_buffer() {
            run_in_place(&mut self.graph, &self.kv, &mut self.outputs, &feeds, cache.into_values(), &mut self.bound, self.table.as_mut(), logits)?
        } else {
            run_moved(&mut self.graph, &self.kv, &mut self.outputs, &feeds, cache.into_values(), true, self.table.as_mut(), logits)?
        };
        Ok(KvCache::new(values, total))
    }

    /// One step of a batch of beams (beam search): beam `i` takes `tokens[i]`
    /// after row `i` of `cache`, with `constants` lent as in
    /// [`Self::step_with`]; `logits` receives one row per beam. Offered for
    /// token-id graphs with separate past/present tensors and no mask or
    /// position inputs (the encoder-decoder text decoder); others are refused.
    pub fn step_beams(&mut self, tokens: &[u32], cache: KvCache, constants: &[(&str, &DynValue)], logits: &mut Vec<f32>) -> Result<KvCache> {
        let stage = self.graph.stage().to_string();
        let (name, dtype) = match &self.input {
            TokenInput::Ids { name, dtype } if !self.kv.shared_buffer() && self.positions.is_none() => (name.clone(), *dtype),
            _ => return Err(Error::Request(format!("stage \"{stage}\": beam search runs beams as one batch, which this decoder graph's form does not offer"))),
        };
        let total = cache.seq_len() + 1;
        self.check_room(total)?;
        let ids = tensor::int_value(&[tokens.len(), 1], tokens.iter().map(|&t| t as i64).collect(), dtype, &stage, &name)?;
        let feeds: Vec<(&str, &DynValue)> = std::iter::once((name.as_str(), &ids)).chain(constants.iter().copied()).collect();
        let values = run_moved(&mut self.graph, &self.kv, &mut self.outputs, &feeds, cache.into_values(), false, self.table.as_mut(), logits)?;
        Ok(KvCache::new(values, total))
    }

    /// `total` positions (cached + this step's) fit the context.
    fn check_room(&self, total: usize) -> Result<()> {
        if total > self.context_length {
            return Err(Error::PromptTooLong { tokens: total, context: self.context_length });
        }
        Ok(())
    }

    /// The input's name, sequence length and value in the declared element type.
    fn check_input(&self, value: DynValue) -> Result<(String, usize, DynValue)> {
        let dims = tensor::dims(&value);
        let stage = self.graph.stage();
        match (&self.input, dims.as_slice()) {
            (TokenInput::Embeds { name, dtype, .. } | TokenInput::TableRows { name, dtype }, [1, n, _]) if *n > 0 => Ok((name.clone(), *n as usize, tensor::cast_float(value, *dtype, stage, name)?)),
            (TokenInput::Ids { name, .. }, [1, n]) if *n > 0 => Ok((name.clone(), *n as usize, value)),
            (input, _) => {
                let (tensor, expected) = match input {
                    TokenInput::Embeds { name, .. } | TokenInput::TableRows { name, .. } => (name, "[1, seq, d_llm] with seq >= 1"),
                    TokenInput::Ids { name, .. } => (name, "[1, seq] token ids with seq >= 1"),
                };
                Err(Error::Tensor { stage: stage.into(), tensor: tensor.clone(), expected: expected.into(), found: format!("{dims:?}") })
            }
        }
    }
}

impl DecoderModel for Decoder {
    type Cache = KvCache;

    fn new_cache(&mut self) -> Result<KvCache> {
        // The last generation's binding holds its buffers: let them go before new ones are made.
        self.bound = None;
        self.kv.new_cache(&mut self.graph)
    }

    fn step(&mut self, input: StepInput<'_>, cache: KvCache, logits: &mut Vec<f32>) -> Result<KvCache> {
        self.step_with(input, cache, &[], logits)
    }

    fn truncate(&mut self, cache: KvCache, len: usize) -> Result<Option<KvCache>> {
        cache.truncate(len, self.kv.shared_buffer(), self.graph.stage()).map(Some)
    }

    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        self.outputs.last_hidden_row(self.graph.stage(), out)
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn name(&self) -> &str {
        self.graph.stage()
    }
}

/// Past tensors move into the graph; the presents come back as the new
/// cache, in the memory the stage computes in when `presents_on_device` (on
/// a GPU they then never cross to the host) and on the host otherwise (beam
/// search rearranges their rows there), while the logits and hidden rows
/// come back to the host.
#[allow(clippy::too_many_arguments)]
fn run_moved(
    graph: &mut StageGraph,
    kv: &KvLayout,
    outputs: &mut OutputRows,
    feeds: &[(&str, &DynValue)],
    past: Vec<DynValue>,
    presents_on_device: bool,
    table: Option<&mut TokenTable>,
    logits: &mut Vec<f32>,
) -> Result<Vec<DynValue>> {
    let stage = graph.stage().to_string();
    let fail = |context: &'static str| {
        let stage = stage.clone();
        move |e: ort::Error| Error::stage(&stage, context, e)
    };
    let host = graph.session().allocator().memory_info().clone();
    let device = if graph.device().is_host() || !presents_on_device { host.clone() } else { graph.device().memory_info().map_err(fail("describing the device memory"))? };
    let mut binding = graph.session().create_binding().map_err(fail("creating an IoBinding"))?;
    for (name, value) in feeds.iter().copied().chain(kv.past_names().iter().map(String::as_str).zip(&past)) {
        binding.bind_input(name, value).map_err(fail("binding an input"))?;
    }
    drop(past);
    for name in kv.present_names() {
        binding.bind_output_to_device(name.as_str(), &device).map_err(fail("binding a present KV output"))?;
    }
    outputs.bind_to(&mut binding, &host).map_err(fail("binding the logits and hidden states"))?;
    drop((host, device));
    let mut results = graph.session_mut().run_binding(&binding).map_err(fail("running the graph"))?;
    outputs.take(&mut results, &stage, table, logits)?;
    kv.present_names().iter().map(|n| super::graph::take_output(&mut results, &stage, n)).collect()
}

/// An IoBinding kept across the steps of a generation: the shared KV
/// buffers are bound once, as past inputs and present outputs (in the
/// memory the stage computes in, so on a GPU they never cross to the host);
/// each step binds only its own inputs and the outputs that come back.
pub(crate) struct KvBinding {
    binding: IoBinding,
    /// Data addresses of the bound buffers: a new or grown cache is bound anew.
    buffers: Vec<usize>,
}

/// Past and present are the same buffers, updated by the graph in place
/// through the generation's [`KvBinding`] (made or renewed here).
#[allow(clippy::too_many_arguments)]
fn run_in_place(
    graph: &mut StageGraph,
    kv: &KvLayout,
    outputs: &mut OutputRows,
    feeds: &[(&str, &DynValue)],
    mut buffers: Vec<DynValue>,
    bound: &mut Option<KvBinding>,
    table: Option<&mut TokenTable>,
    logits: &mut Vec<f32>,
) -> Result<Vec<DynValue>> {
    let stage = graph.stage().to_string();
    let fail = |context: &'static str| {
        let stage = stage.clone();
        move |e: ort::Error| Error::stage(&stage, context, e)
    };
    let addresses: Vec<usize> = buffers.iter().filter_map(tensor::data_address).collect();
    if bound.as_ref().is_none_or(|b| b.buffers != addresses) {
        let mut binding = graph.session().create_binding().map_err(fail("creating an IoBinding"))?;
        for (name, value) in kv.past_names().iter().zip(&buffers) {
            binding.bind_input(name.as_str(), value).map_err(fail("binding a past KV buffer"))?;
        }
        for (name, value) in kv.present_names().iter().zip(buffers.iter_mut()) {
            binding.bind_output(name.as_str(), value).map_err(fail("binding a present KV buffer"))?;
        }
        *bound = Some(KvBinding { binding, buffers: addresses });
    }
    let binding = &mut bound.as_mut().expect("bound above").binding;
    for (name, value) in feeds {
        binding.bind_input(*name, *value).map_err(fail("binding an input"))?;
    }
    // Rows come back to the host; bound again each step because their shape follows the step's length.
    let host = graph.session().allocator().memory_info().clone();
    outputs.bind_to(binding, &host).map_err(fail("binding the logits and hidden states"))?;
    drop(host);
    let mut results = graph.session_mut().run_binding(binding).map_err(fail("running the graph"))?;
    outputs.take(&mut results, &stage, table, logits)?;
    Ok(buffers)
}

/// The stage's token table, if it has one, checked against the graph's
/// `inputs_embeds` and `hidden_states` widths.
fn open_table(loader: &StageLoader<'_>, stage: &DecoderStage, graph: &StageGraph) -> Result<Option<TokenTable>> {
    let Some(spec) = &stage.token_table else { return Ok(None) };
    let threads = loader.threads(&stage.name).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let table = TokenTable::open(&loader.bundle.resolve(&spec.file)?, &loader.bundle.manifest_path(), spec, threads)?;
    if let Some(embeds) = &stage.inputs.inputs_embeds {
        check_width(graph, embeds, graph.input_dims(embeds), table.width())?;
    }
    if let Some(hidden) = &stage.outputs.hidden_states {
        check_width(graph, hidden, graph.output_dims(hidden), table.width())?;
    }
    Ok(Some(table))
}

/// The last declared dimension of `tensor` (when fixed) equals the token table's width.
fn check_width(graph: &StageGraph, tensor: &str, dims: Option<Vec<Option<i64>>>, width: usize) -> Result<()> {
    match dims.as_deref().and_then(|d| d.last().copied().flatten()) {
        Some(d) if d != width as i64 => Err(Error::Tensor {
            stage: graph.stage().into(),
            tensor: tensor.into(),
            expected: format!("last dimension {width}, the token table's width"),
            found: format!("{dims:?}"),
        }),
        _ => Ok(()),
    }
}
