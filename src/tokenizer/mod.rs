//! The text tokenizer: a bundle's `tokenizer.json` through the `tokenizers`
//! crate, or, where the bundle ships one, mmrt's compact form of the same
//! tokenizer (`compact_tokenizer` in the manifest), mapped and used in place.
//!
//! Both give the same ids and text; the compact form only changes what
//! start-up costs (Gemma 3: ~0.45 s and ~100 MiB of heap through
//! `tokenizer.json`, a few milliseconds and the pages touched when compact).

mod bpe;
pub mod compact;
pub mod json;

use std::path::Path;

pub use compact::CompactTokenizer;

use crate::bundle::Bundle;
use crate::error::{Error, Result};

/// The bundle's tokenizer: its compact form when the manifest names one, else `tokenizer.json`.
pub fn open(bundle: &Bundle) -> Result<TextTokenizer> {
    let manifest = &bundle.manifest;
    // The readers' own errors, without the path: the context below names it.
    let (path, read): (_, fn(&Path) -> std::result::Result<TextTokenizer, String>) = match &manifest.compact_tokenizer {
        Some(file) => (bundle.resolve(file)?, |p| CompactTokenizer::open(p).map(TextTokenizer::Compact)),
        None => (bundle.resolve(&manifest.tokenizer)?, TextTokenizer::from_json),
    };
    read(&path).map_err(|message| Error::Tokenizer { context: format!("loading {}", path.display()), message })
}

/// A loaded tokenizer, whichever form it came from.
pub enum TextTokenizer {
    /// `tokenizer.json`, read by [`json::load`] into the `tokenizers` crate.
    Json(Box<tokenizers::Tokenizer>),
    /// mmrt's compact form ([`compact`]).
    Compact(CompactTokenizer),
}

impl TextTokenizer {
    /// Read `tokenizer.json` at `path` (the `tokenizers` crate).
    pub fn from_json(path: &Path) -> std::result::Result<Self, String> {
        json::load(path).map(|t| Self::Json(Box::new(t)))
    }

    /// Map the compact tokenizer at `path`, an error naming the file.
    pub fn from_compact(path: &Path) -> std::result::Result<Self, String> {
        CompactTokenizer::open(path).map(Self::Compact).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Token ids of `text`; `add_special` adds the post-processor's tokens (e.g. BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> std::result::Result<Vec<u32>, String> {
        match self {
            Self::Json(t) => t.encode(text, add_special).map(|e| e.get_ids().to_vec()).map_err(|e| e.to_string()),
            Self::Compact(t) => Ok(t.encode(text, add_special)),
        }
    }

    /// The text of `ids`, special tokens left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> std::result::Result<String, String> {
        match self {
            Self::Json(t) => t.decode(ids, skip_special).map_err(|e| e.to_string()),
            Self::Compact(t) => Ok(t.decode(ids, skip_special)),
        }
    }

    /// The id of the token written `token` (added tokens included).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Json(t) => t.token_to_id(token),
            Self::Compact(t) => t.id_of(token),
        }
    }

    /// The text of token `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Self::Json(t) => t.id_to_token(id),
            Self::Compact(t) => t.token(id).map(str::to_string),
        }
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Json(t) => t.get_vocab_size(true),
            Self::Compact(t) => t.vocab_size(),
        }
    }

    /// Which form was loaded, for logs and `inspect`.
    pub fn form(&self) -> &'static str {
        match self {
            Self::Json(_) => "tokenizer.json",
            Self::Compact(_) => "compact",
        }
    }
}

impl From<tokenizers::Tokenizer> for TextTokenizer {
    fn from(t: tokenizers::Tokenizer) -> Self {
        Self::Json(Box::new(t))
    }
}
