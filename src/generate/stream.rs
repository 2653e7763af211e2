//! Streaming detokenization: turn token ids into text as they arrive, never
//! emitting half of a multi-byte character.
//!
//! Byte-level BPE splits characters across tokens, so decoding one token alone
//! can yield U+FFFD. We decode a short window of recent ids and emit only the
//! text that grew past the previously emitted prefix, holding back while the
//! window ends in an incomplete character.

use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

/// Incremental decoder state for one generation.
#[derive(Debug, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Start of the window re-decoded for context.
    prefix_offset: usize,
    /// End of the text already emitted.
    read_offset: usize,
}

impl Detokenizer {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a token; returns the newly completed text, if any.
    pub fn push(&mut self, tokenizer: &TextTokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = decode(tokenizer, &self.ids[self.prefix_offset..self.read_offset])?;
        let full = decode(tokenizer, &self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.is_char_boundary(prefix.len()) {
            let new = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            return Ok(Some(new));
        }
        Ok(None)
    }

    /// Text still held back at the end (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self, tokenizer: &TextTokenizer) -> Result<Option<String>> {
        let prefix = decode(tokenizer, &self.ids[self.prefix_offset..self.read_offset])?;
        let full = decode(tokenizer, &self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        if full.len() > prefix.len() && full.is_char_boundary(prefix.len()) {
            return Ok(Some(full[prefix.len()..].to_string()));
        }
        Ok(None)
    }
}

fn decode(tokenizer: &TextTokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| Error::Tokenizer { context: "decoding generated ids".into(), message: e.to_string() })
}
