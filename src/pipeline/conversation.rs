//! A multi-turn chat with the decoder's KV cache kept across turns.
//!
//! Each turn renders the *whole* conversation through the bundle's Jinja chat
//! template (generation prompt on), tokenizes it, and compares the ids with
//! the ids already in the cache: only the part after their longest common
//! prefix is fed to the prefill pass. Usually that is the end of the previous
//! answer's turn (its stop token, which generation never feeds, and the
//! template's closing text) and the new user turn.
//!
//! When the rendered ids leave the cached ones before their end (the template
//! re-renders an earlier turn differently, or the answer's text re-tokenizes
//! to other ids), the cache is cut back to the common prefix
//! ([`crate::generate::DecoderModel::truncate`]: separate K/V tensors are
//! copied shorter, a shared buffer just forgets the tail); a model that cannot
//! cut its cache starts from an empty one and prefills everything.
//!
//! Text-only: media inputs are refused (use a single request with
//! [`crate::Request::with_chat`] for one turn with media). A conversation
//! whose rendered ids fill the context is an error naming both numbers; the
//! caller starts over ([`Conversation::reset`]).

use std::time::Instant;

use super::request::{Output, Request, StageTimings};
use super::{Backbone, Pipeline};
use crate::chat::Message;
use crate::error::{Error, Result};
use crate::generate::{self, Decoding, DecoderModel, Detokenizer, GenerationConfig, StepInput};
use crate::stages::io::KvCache;

/// The messages of one chat and the decoder state that goes with them.
/// Used with one [`Pipeline`] (its cache belongs to that pipeline's decoder).
#[derive(Default)]
pub struct Conversation {
    /// Kept through [`Self::reset`].
    system: Option<String>,
    messages: Vec<Message>,
    /// The decoder's cache after the last turn (`None`: nothing cached).
    cache: Option<KvCache>,
    /// The ids whose keys/values `cache` holds, in order.
    cached_ids: Vec<u32>,
}

impl Conversation {
    /// An empty conversation (the template's default system prompt, if it has one, applies).
    pub fn new() -> Self {
        Self::default()
    }

    /// Start every conversation (also after [`Self::reset`]) with this system message.
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// The messages so far, the system message first when set.
    pub fn messages(&self) -> Vec<Message> {
        self.system.iter().map(|s| Message::system(s.as_str())).chain(self.messages.iter().cloned()).collect()
    }

    /// Append a message without generating (e.g. restoring a saved chat). The
    /// cache is kept; the next turn reuses what of it still matches.
    pub fn push(&mut self, message: Message) {
        self.messages.push(message);
    }

    /// Forget every turn and the cache (the system message stays).
    pub fn reset(&mut self) {
        self.messages.clear();
        self.cache = None;
        self.cached_ids.clear();
    }

    /// Token positions held by the kept cache.
    pub fn cached_tokens(&self) -> usize {
        self.cached_ids.len()
    }
}

/// Length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

pub(super) fn turn(p: &mut Pipeline, conv: &mut Conversation, request: &Request, config: &GenerationConfig, mut on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
    let request_start = Instant::now();
    let name = p.bundle.name().to_string();
    if !request.inputs.is_empty() {
        return Err(Error::Request(format!(
            "a conversation is text only; for media use one request (`mmrt run --chat` with --image/--audio) with bundle \"{name}\""
        )));
    }
    if config.num_beams > 1 {
        return Err(Error::Request(format!("bundle \"{name}\": beam search is offered for speech-recognition bundles only")));
    }
    let chat = p.chat.as_ref().ok_or_else(|| {
        Error::Request(format!(
            "bundle \"{name}\" has no Jinja chat template (`prompt.chat` in bundle.json); a conversation needs one to render its turns"
        ))
    })?;
    let mut messages = conv.messages();
    messages.push(Message::user(request.prompt.as_str()));
    let mut timings = StageTimings::default();
    let start = Instant::now();
    let text = chat.render(&messages, true)?;
    let format = &p.bundle.manifest.prompt;
    let ids = crate::prompt::encode_with(&p.tokenizer, format, &text, &Default::default(), false)?.ids;
    timings.push("render", start.elapsed());
    let Backbone::DecoderOnly { decoder, .. } = &mut p.backbone else {
        return Err(Error::Request(format!("bundle \"{name}\" is a speech-recognition bundle; it cannot chat")));
    };
    if ids.is_empty() {
        return Err(Error::Request(format!("chat template \"{}\" rendered the conversation to no tokens", chat.origin())));
    }
    let context = decoder.context_length();
    if ids.len() >= context {
        return Err(Error::Request(format!(
            "the conversation is {} tokens with this message, and the context length of bundle \"{name}\" is {context}; \
             start over (/reset in `mmrt chat`, Conversation::reset) or send a shorter message",
            ids.len()
        )));
    }

    // Reuse the cached prefix; at least the last position is fed, for its logits.
    let keep = common_prefix(&conv.cached_ids, &ids).min(ids.len() - 1);
    let cached = conv.cache.take();
    conv.cached_ids.clear();
    let (cache, reused) = match cached {
        Some(cache) if keep == cache.seq_len() => (cache, keep),
        Some(cache) if keep > 0 => match decoder.truncate(cache, keep)? {
            Some(cut) => (cut, keep),
            None => (decoder.new_cache()?, 0),
        },
        _ => (decoder.new_cache()?, 0),
    };

    let stop_tokens = if request.ignore_stop_tokens { &[][..] } else { &format.eos_token_ids[..] };
    let mut decoding = Decoding::new(config, stop_tokens);
    let mut stream = Detokenizer::new();
    let mut answer = String::new();
    let tokenizer = &p.tokenizer;
    let mut time_to_first_token = None;
    let (generation, cache) = generate::generate_after(decoder, cache, StepInput::Ids(&ids[reused..]), &ids, &mut decoding, |id| {
        time_to_first_token.get_or_insert_with(|| request_start.elapsed());
        if let Some(piece) = stream.push(tokenizer, id)? {
            on_text(&piece)?;
            answer.push_str(&piece);
        }
        Ok(())
    })?;
    if let Some(piece) = stream.finish(tokenizer)? {
        on_text(&piece)?;
        answer.push_str(&piece);
    }
    timings.push("prefill", generation.prefill);
    timings.push("decode", generation.decode);

    // The cache holds the rendered ids, then the generated ones but the last.
    let mut held: Vec<u32> = ids.iter().chain(&generation.ids).copied().collect();
    held.truncate(generate::DecoderCache::seq_len(&cache));
    conv.cached_ids = held;
    conv.cache = Some(cache);
    conv.messages.push(Message::user(request.prompt.as_str()));
    conv.messages.push(Message::assistant(answer.as_str()));
    let token_gaps_ms = generation.token_gaps_ms();
    Ok(Output {
        token_ids: generation.ids,
        text: answer,
        prefill_tokens: ids.len() - reused,
        prompt_ids: ids,
        stop_reason: generation.stop_reason,
        timings,
        media: Vec::new(),
        windows: Vec::new(),
        audio_seconds: 0.0,
        time_to_first_token,
        input_report: Default::default(),
        token_gaps_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{ScriptedModel, DecoderCache};

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }

    #[test]
    fn a_continued_generation_feeds_only_the_new_ids_and_returns_the_cache() {
        // What a turn does, through the seam: the cache of turn 1 continues into turn 2.
        let mut model = ScriptedModel::new(vec![7, 8, 3, 9, 3], 3, 16, 64);
        let config = GenerationConfig { max_new_tokens: 5, ..Default::default() };
        let cache = model.new_cache().unwrap();
        let (g, cache) = generate::generate_after(&mut model, cache, StepInput::Ids(&[1, 2]), &[1, 2], &mut Decoding::new(&config, &[3]), |_| Ok(())).unwrap();
        assert_eq!(g.ids, vec![7, 8, 3]);
        assert_eq!(cache.0, vec![1, 2, 7, 8], "the stop token is not fed");
        let history = [1, 2, 7, 8, 3, 5];
        let (g, cache) = generate::generate_after(&mut model, cache, StepInput::Ids(&history[4..]), &history, &mut Decoding::new(&config, &[3]), |_| Ok(())).unwrap();
        assert_eq!(g.ids, vec![9, 3]);
        assert_eq!(model.fed[3], vec![3, 5], "only the ids after the cached prefix");
        assert_eq!(cache.seq_len(), 7);
        let cut = model.truncate(cache, 3).unwrap().unwrap();
        assert_eq!(cut.0, vec![1, 2, 7]);
    }
}
