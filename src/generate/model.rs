//! The one seam between the generation loop and a decoder: [`DecoderModel`].
//!
//! A decoder-only LLM and the decoder of an encoder-decoder model (Whisper,
//! its cross-attention keys/values bound as constant inputs for the window)
//! both implement it, so greedy decoding, sampling, signal tokens and beam
//! search are written once. Tests drive the loop with [`ScriptedModel`], which
//! needs no ONNX Runtime.

use ort::value::DynValue;

use crate::error::Result;

/// What one forward pass consumes.
pub enum StepInput<'a> {
    /// Token ids `[1, n]`; the model embeds them (through its embedding graph,
    /// or inside the decoder graph).
    Ids(&'a [u32]),
    /// Ready embeddings `[1, n, d_model]` (text rows with media rows merged in).
    Embeds(DynValue),
}

/// The per-sequence state a decoder carries between steps (its KV cache).
pub trait DecoderCache {
    /// Positions already cached (the next token's position id).
    fn seq_len(&self) -> usize;
}

/// One autoregressive decoder, as the generation loop and beam search see it.
pub trait DecoderModel {
    /// State carried from step to step; moved into each step, never copied.
    type Cache: DecoderCache;

    /// A cache holding no positions.
    fn new_cache(&mut self) -> Result<Self::Cache>;

    /// One forward pass over `input` following `cache`. The cache is consumed
    /// (moved into the graph) and the new one returned; the last position's
    /// logits `[vocab]` are written to `logits`.
    fn step(&mut self, input: StepInput<'_>, cache: Self::Cache, logits: &mut Vec<f32>) -> Result<Self::Cache>;

    /// Beam search: `cache`, a batch of beams, rearranged so that its row `i`
    /// is the old row `parents[i]` (rows may repeat: two continuations of one
    /// beam; or be dropped). The default: the model does not batch beams.
    fn select_beams(&mut self, cache: Self::Cache, parents: &[usize]) -> Result<Self::Cache> {
        let _ = (cache, parents);
        Err(no_beams(self.name()))
    }

    /// Beam search: one forward pass of every beam of `cache` as one batch,
    /// beam `i` taking `tokens[i]`; its next-token logits become row `i` of
    /// `logits` (`tokens.len() * vocab` values).
    fn step_beams(&mut self, tokens: &[u32], cache: Self::Cache, logits: &mut Vec<f32>) -> Result<Self::Cache> {
        let _ = (tokens, cache, logits);
        Err(no_beams(self.name()))
    }

    /// `cache` cut to its first `len` positions (a chat whose new prompt shares
    /// only that much with what is cached), or `Ok(None)` when the model cannot
    /// cut a cache: the caller then starts from an empty one. The default cannot.
    fn truncate(&mut self, cache: Self::Cache, len: usize) -> Result<Option<Self::Cache>> {
        let _ = (cache, len);
        Ok(None)
    }

    /// Copy the last position's hidden state `[d_model]` of the latest
    /// [`Self::step`] into `out`; `Ok(false)` when the model returns no hidden states.
    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        let _ = out;
        Ok(false)
    }

    /// Positions the cache can hold (prompt + generated).
    fn context_length(&self) -> usize;

    /// Stage name for errors.
    fn name(&self) -> &str;
}

fn no_beams(stage: &str) -> crate::error::Error {
    crate::error::Error::Request(format!("stage \"{stage}\": this decoder does not run beams as a batch, so beam search is not offered"))
}

/// A fake decoder for tests and examples: its logits follow a script, its
/// cache is the list of consumed ids, its "hidden state" after a step is
/// `[id, id]` for the last id it consumed. Embeddings inputs are refused (the
/// loop's tests feed ids).
#[derive(Debug, Clone)]
pub struct ScriptedModel {
    /// The token whose logit is highest at step `i` (then `fallback` forever).
    pub script: Vec<u32>,
    /// Token favoured once the script is exhausted.
    pub fallback: u32,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Whether [`DecoderModel::last_hidden_state`] answers.
    pub with_hidden: bool,
    /// Every step's input ids, in order (what the loop fed).
    pub fed: Vec<Vec<u32>>,
    /// Every step's incoming cache length.
    pub cache_lens: Vec<usize>,
}

/// The cache of a [`ScriptedModel`]: the ids consumed so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptedCache(pub Vec<u32>);

impl DecoderCache for ScriptedCache {
    fn seq_len(&self) -> usize {
        self.0.len()
    }
}

impl ScriptedModel {
    /// A model that emits `script`, then `fallback`, over `vocab` tokens.
    pub fn new(script: Vec<u32>, fallback: u32, vocab: usize, context: usize) -> Self {
        Self { script, fallback, vocab, context, with_hidden: false, fed: Vec::new(), cache_lens: Vec::new() }
    }

    /// Answer [`DecoderModel::last_hidden_state`].
    pub fn with_hidden(mut self) -> Self {
        self.with_hidden = true;
        self
    }
}

impl DecoderModel for ScriptedModel {
    type Cache = ScriptedCache;

    fn new_cache(&mut self) -> Result<ScriptedCache> {
        Ok(ScriptedCache::default())
    }

    fn step(&mut self, input: StepInput<'_>, mut cache: ScriptedCache, logits: &mut Vec<f32>) -> Result<ScriptedCache> {
        let StepInput::Ids(ids) = input else {
            return Err(crate::error::Error::Request("ScriptedModel takes token ids only".into()));
        };
        self.cache_lens.push(cache.0.len());
        self.fed.push(ids.to_vec());
        cache.0.extend_from_slice(ids);
        let step = self.fed.len() - 1;
        let next = self.script.get(step).copied().unwrap_or(self.fallback);
        logits.clear();
        logits.resize(self.vocab, 0.0);
        if let Some(l) = logits.get_mut(next as usize) {
            *l = 1.0;
        }
        Ok(cache)
    }

    fn truncate(&mut self, mut cache: ScriptedCache, len: usize) -> Result<Option<ScriptedCache>> {
        cache.0.truncate(len);
        Ok(Some(cache))
    }

    fn last_hidden_state(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        if !self.with_hidden {
            return Ok(false);
        }
        let id = self.fed.last().and_then(|ids| ids.last()).copied().unwrap_or(0) as f32;
        out.clear();
        out.extend([id, id]);
        Ok(true)
    }

    fn context_length(&self) -> usize {
        self.context
    }

    fn name(&self) -> &str {
        "scripted"
    }
}
