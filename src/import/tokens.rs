//! The prompt format of an inferred manifest: raw completion (`{content}`),
//! BOS as the tokenizer itself adds it, stop ids from the configs, each id
//! checked against the tokenizer's vocabulary.
//!
//! BOS is what `tokenizer.json`'s post-processor puts in front when special
//! tokens are added (what transformers' and onnxruntime-genai's `encode` do),
//! not the config's `bos_token_id`, which many models never prepend.

use std::path::Path;

use serde::Deserialize;

use super::folder::Folder;
use crate::prompt::{ChatTemplateFile, PromptFormat};

/// A token id or a list of them, as configs write `eos_token_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Ids {
    /// One id.
    One(i64),
    /// Several ids.
    Many(Vec<i64>),
}

impl Ids {
    /// The ids, in order.
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            Ids::One(i) => vec![*i],
            Ids::Many(v) => v.clone(),
        }
    }
}

/// Special ids a config states.
#[derive(Debug, Clone, Default)]
pub struct SpecialIds {
    /// Stop ids (`eos_token_id`).
    pub eos: Vec<i64>,
    /// Padding id.
    pub pad: Option<i64>,
    /// BOS as the config states it (only compared with the tokenizer's).
    pub bos: Option<i64>,
}

/// The prompt format for a folder whose tokenizer is at `tokenizer` and
/// whose config (`origin`) states `ids`. Notes for `inspect` are pushed to `notes`.
pub fn prompt_format(tokenizer: &Path, ids: &SpecialIds, origin: &str, notes: &mut Vec<String>) -> Result<PromptFormat, String> {
    let len = std::fs::metadata(tokenizer).map(|m| m.len()).unwrap_or(0);
    if len > crate::limits::MAX_TOKENIZER_BYTES {
        return Err(format!("tokenizer.json is {len} bytes, above the limit of {} (limits::MAX_TOKENIZER_BYTES)", crate::limits::MAX_TOKENIZER_BYTES));
    }
    let tok = crate::tokenizer::json::load(tokenizer).map_err(|e| format!("tokenizer.json cannot be read: {e}"))?;
    let vocab = tok.get_vocab_size(true);
    let check = |what: &str, id: i64| -> Result<u32, String> {
        u32::try_from(id)
            .ok()
            .filter(|&i| (i as usize) < vocab)
            .ok_or_else(|| format!("{origin}: {what} {id} is not a token of tokenizer.json ({vocab} tokens)"))
    };
    if ids.eos.is_empty() {
        return Err(format!("{origin} states no eos_token_id: mmrt needs the model's stop token(s)"));
    }
    let eos = ids.eos.iter().map(|&i| check("eos_token_id", i)).collect::<Result<Vec<_>, _>>()?;
    let pad = ids.pad.map(|i| check("pad_token_id", i)).transpose()?;
    let bos = added_prefix(&tok)?;
    match (bos, ids.bos) {
        (Some(b), Some(c)) if i64::from(b) != c => {
            notes.push(format!("BOS: the tokenizer prepends id {b}, {origin} says bos_token_id {c}; the tokenizer's is used"))
        }
        (None, Some(c)) => notes.push(format!("BOS: the tokenizer prepends nothing (bos_token_id {c} in {origin} is not added), as transformers and onnxruntime-genai encode")),
        (Some(b), _) => notes.push(format!("BOS: id {b}, prepended by the tokenizer's post-processor")),
        (None, None) => {}
    }
    Ok(PromptFormat {
        template: "{content}".into(),
        chat_template: None,
        chat: None,
        placeholders: Default::default(),
        media_token_ids: Default::default(),
        bos_token_id: bos,
        eos_token_ids: eos,
        pad_token_id: pad,
        default_prompt: None,
    })
}

/// The one token the tokenizer adds before the text when asked for special
/// tokens; an error when it adds more than mmrt's one BOS id can express.
fn added_prefix(tok: &tokenizers::Tokenizer) -> Result<Option<u32>, String> {
    let encode = |special| tok.encode("a", special).map(|e| e.get_ids().to_vec()).map_err(|e| format!("tokenizer.json cannot encode: {e}"));
    let (plain, special) = (encode(false)?, encode(true)?);
    if special == plain {
        return Ok(None);
    }
    match special.split_first() {
        Some((&bos, rest)) if rest == plain.as_slice() => Ok(Some(bos)),
        _ => Err(format!("tokenizer.json's post-processor turns the text {plain:?} into {special:?}; mmrt can prepend one BOS id only")),
    }
}

/// The folder's Jinja chat template as the manifest's `prompt.chat`: `chat_template.jinja`
/// (transformers' file) with the `bos_token` / `eos_token` strings of `tokenizer_config.json`.
/// A template only inline in `tokenizer_config.json` is noted, not used (`prompt.chat` names a
/// file; `mmrt import onnx` writes a bundle.json beside which it can be saved).
pub fn chat_template(folder: &Folder, notes: &mut Vec<String>) -> Option<ChatTemplateFile> {
    const FILE: &str = "chat_template.jinja";
    let config = folder.read_json::<serde_json::Value>("tokenizer_config.json").ok();
    if !folder.has(FILE) {
        if config.as_ref().is_some_and(|c| c.get("chat_template").is_some_and(|t| !t.is_null())) {
            notes.push(format!(
                "chat template: only inline in tokenizer_config.json, not used (save it as {FILE} beside the model for --chat / mmrt chat)"
            ));
        }
        return None;
    }
    // transformers writes special tokens as strings or as {"content": ...} objects
    let token = |key: &str| {
        let value = config.as_ref()?.get(key)?;
        value.as_str().or_else(|| value.get("content")?.as_str()).map(str::to_owned)
    };
    notes.push(format!("chat template: {FILE} (Jinja), used by --chat and mmrt chat"));
    Some(ChatTemplateFile { file: FILE.into(), bos_token: token("bos_token"), eos_token: token("eos_token") })
}
