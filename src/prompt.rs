//! From a user prompt and media to token ids: apply the bundle's template,
//! tokenize, and expand each media placeholder token into one token per
//! projected embedding row (the rows that replace them before prefill).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};

use crate::manifest::Modality;

/// How a request becomes token ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFormat {
    /// Prompt template (raw completion for a base model); `{content}` is replaced by
    /// media placeholders + the user prompt.
    pub template: String,
    /// Chat-turn template used instead of `template` when a request asks for chat
    /// (`mmrt run --chat`), e.g. Gemma's `<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// A Jinja chat template in a bundle file, rendered as transformers'
    /// `apply_chat_template` does ([`crate::chat::ChatTemplate`]); exclusive with
    /// `chat_template`. The rendered text is tokenized without `bos_token_id`
    /// prepended: the template writes its BOS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatTemplateFile>,
    /// Per modality, the placeholder string written in prompts (e.g. `<image>`).
    #[serde(default)]
    pub placeholders: BTreeMap<Modality, String>,
    /// Per modality, the token id the placeholder tokenizes to; it is expanded to one
    /// token per projected embedding row.
    #[serde(default)]
    pub media_token_ids: BTreeMap<Modality, u32>,
    /// Prepended to every prompt when set.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Generation stops after emitting any of these.
    pub eos_token_ids: Vec<u32>,
    /// Padding id (unused for batch 1; kept for completeness).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// User prompt used when a request gives none (`mmrt run` without `--prompt`),
    /// e.g. the instruction a captioning bundle was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_prompt: Option<String>,
}

impl Default for PromptFormat {
    /// The prompt of a bundle without a text decoder (a voice bundle): the text as it is.
    fn default() -> Self {
        PromptFormat {
            template: "{content}".into(),
            chat_template: None,
            chat: None,
            placeholders: BTreeMap::new(),
            media_token_ids: BTreeMap::new(),
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            default_prompt: None,
        }
    }
}

/// The manifest's `prompt.chat` block: where the Jinja chat template is and the
/// special-token strings transformers passes to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatTemplateFile {
    /// Bundle-relative file holding the template text, exactly as a GGUF's
    /// `tokenizer.chat_template` or transformers' `chat_template.jinja`.
    pub file: String,
    /// The template's `bos_token` variable (left undefined when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token: Option<String>,
    /// The template's `eos_token` variable (left undefined when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token: Option<String>,
}

/// Where one media item's embedding rows go in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSlot {
    /// The item's modality.
    pub modality: Modality,
    /// Index of the item among the request's inputs of that modality.
    pub item: usize,
    /// First position in [`EncodedPrompt::ids`].
    pub position: usize,
    /// Rows (expanded placeholder tokens).
    pub len: usize,
}

/// Token ids of a prompt and where each media item's embeddings go.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrompt {
    /// Prompt ids after placeholder expansion.
    pub ids: Vec<u32>,
    /// Every media item, in the order its placeholder appears in the prompt.
    pub slots: Vec<MediaSlot>,
}

/// Render the template. For each modality (in [`Modality`] order: image, then
/// audio), the user text places the items with the bundle's placeholder (one per
/// item, counted), or, when it has none, one placeholder per item (each
/// followed by a newline) is put before the user text.
pub fn render(format: &PromptFormat, user_prompt: &str, counts: &BTreeMap<Modality, usize>) -> Result<String> {
    render_with(format, user_prompt, counts, false)
}

/// [`render`], with the manifest's chat template instead of the plain one when
/// `chat` is set (an error if the bundle has none).
///
/// A bundle with a Jinja template (`prompt.chat`) renders chats through
/// [`crate::chat::ChatTemplate`] instead, with [`content`] as the user turn.
pub fn render_with(format: &PromptFormat, user_prompt: &str, counts: &BTreeMap<Modality, usize>, chat: bool) -> Result<String> {
    let template = match (chat, &format.chat_template) {
        (false, _) => &format.template,
        (true, Some(t)) => t,
        (true, None) => {
            return Err(Error::Request("this bundle has no chat template (`prompt.chat_template` or `prompt.chat`); drop --chat".into()))
        }
    };
    Ok(template.replace("{content}", &content(format, user_prompt, counts)?))
}

/// The user turn's text: `user_prompt` with one placeholder per media item
/// put before it (each followed by a newline) for every modality whose items
/// the prompt does not place itself; placeholder counts are checked.
pub fn content(format: &PromptFormat, user_prompt: &str, counts: &BTreeMap<Modality, usize>) -> Result<String> {
    let mut prefix = String::new();
    // Every modality the bundle or the request knows: a placeholder written
    // for a modality without inputs is an error too.
    let modalities: std::collections::BTreeSet<Modality> = counts.keys().chain(format.placeholders.keys()).copied().collect();
    for modality in modalities {
        let count = counts.get(&modality).copied().unwrap_or(0);
        match format.placeholders.get(&modality) {
            Some(p) if user_prompt.contains(p.as_str()) => {
                let written = user_prompt.matches(p.as_str()).count();
                if written != count {
                    return Err(Error::Request(format!(
                        "the prompt contains {written} \"{p}\" placeholder(s) but {count} {modality} input(s) were given"
                    )));
                }
            }
            Some(p) => prefix.push_str(&format!("{p}\n").repeat(count)),
            None if count > 0 => {
                return Err(Error::Request(format!("this bundle takes no {modality} input (no placeholder in its prompt format)")))
            }
            None => {}
        }
    }
    Ok(format!("{prefix}{user_prompt}"))
}

/// Tokenize rendered text, prepend BOS, and expand the i-th media token of each
/// modality into `rows[modality][i]` copies (the item's embedding rows).
pub fn encode(tokenizer: &TextTokenizer, format: &PromptFormat, text: &str, rows: &BTreeMap<Modality, Vec<usize>>) -> Result<EncodedPrompt> {
    encode_with(tokenizer, format, text, rows, true)
}

/// [`encode`], prepending `bos_token_id` only when `add_bos` is set (text
/// rendered by a Jinja chat template carries its own BOS, as with
/// transformers' `apply_chat_template`).
pub fn encode_with(tokenizer: &TextTokenizer, format: &PromptFormat, text: &str, rows: &BTreeMap<Modality, Vec<usize>>, add_bos: bool) -> Result<EncodedPrompt> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer { context: "encoding the prompt".into(), message: e.to_string() })?;
    let media_of: BTreeMap<u32, Modality> = format.media_token_ids.iter().map(|(&m, &id)| (id, m)).collect();
    let total: usize = rows.values().flatten().sum();
    let mut ids = Vec::with_capacity(encoding.len() + total + 1);
    ids.extend(format.bos_token_id.filter(|_| add_bos));
    let mut slots = Vec::with_capacity(rows.values().map(Vec::len).sum());
    let mut seen: BTreeMap<Modality, usize> = BTreeMap::new();
    for &id in &encoding {
        let Some(&modality) = media_of.get(&id) else {
            ids.push(id);
            continue;
        };
        let item = seen.entry(modality).or_default();
        let given = rows.get(&modality).map_or(&[][..], Vec::as_slice);
        let Some(&len) = given.get(*item) else {
            return Err(Error::Request(format!(
                "the prompt has more {modality} placeholders than the {} {modality} input(s) given",
                given.len()
            )));
        };
        slots.push(MediaSlot { modality, item: *item, position: ids.len(), len });
        ids.extend(std::iter::repeat_n(id, len));
        *item += 1;
    }
    for (modality, given) in rows {
        let found = seen.get(modality).copied().unwrap_or(0);
        if found != given.len() {
            return Err(Error::Request(format!(
                "{} {modality} input(s) given but the tokenized prompt has {found} placeholder token(s); does the tokenizer know the placeholder as a special token?",
                given.len()
            )));
        }
    }
    Ok(EncodedPrompt { ids, slots })
}

/// Check a prompt format against the bundle's tokenizer, once at load time:
///
/// * each placeholder is a token of the tokenizer whose id is the modality's
///   `media_token_ids` entry, and tokenizing the placeholder text yields that id
///   exactly once (otherwise [`encode`] could never find the place of a media item);
/// * every media, BOS, stop and pad id is an id of the tokenizer's vocabulary.
///
/// The error says which field, which token and what the tokenizer has instead.
/// [`crate::manifest::Manifest::validate`] already checked what needs no
/// tokenizer (non-empty, distinct placeholders; at least one stop token).
pub fn check_tokenizer(format: &PromptFormat, tokenizer: &TextTokenizer) -> std::result::Result<(), String> {
    for (modality, placeholder) in &format.placeholders {
        let Some(&id) = format.media_token_ids.get(modality) else {
            return Err(format!("`prompt.placeholders.{modality}` has no `prompt.media_token_ids.{modality}`"));
        };
        match tokenizer.token_to_id(placeholder) {
            Some(found) if found == id => {}
            Some(found) => {
                return Err(format!(
                    "`prompt.placeholders.{modality}` \"{placeholder}\" is token {found} of the tokenizer, but `prompt.media_token_ids.{modality}` says {id}"
                ))
            }
            None => {
                return Err(format!(
                    "`prompt.placeholders.{modality}` \"{placeholder}\" is not a token of the tokenizer (expected the token with id {id})"
                ))
            }
        }
        let encoding = tokenizer
            .encode(placeholder.as_str(), false)
            .map_err(|e| format!("tokenizing `prompt.placeholders.{modality}` \"{placeholder}\": {e}"))?;
        let hits = encoding.iter().filter(|&&t| t == id).count();
        if hits != 1 {
            return Err(format!(
                "`prompt.placeholders.{modality}` \"{placeholder}\" tokenizes to {:?}, not to its media token {id} once; \
                 the tokenizer must know it as an added (special) token",
                encoding
            ));
        }
    }
    let vocab = tokenizer.vocab_size();
    let named = format
        .media_token_ids
        .iter()
        .map(|(m, &id)| (format!("media_token_ids.{m}"), id))
        .chain(format.bos_token_id.map(|id| ("bos_token_id".to_string(), id)))
        .chain(format.pad_token_id.map(|id| ("pad_token_id".to_string(), id)))
        .chain(format.eos_token_ids.iter().map(|&id| ("eos_token_ids".to_string(), id)));
    for (field, id) in named {
        if tokenizer.id_to_token(id).is_none() {
            return Err(format!("`prompt.{field}` {id} is not an id of the tokenizer (its vocabulary has {vocab} tokens)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> PromptFormat {
        PromptFormat {
            template: "USER: {content} ASSISTANT:".into(),
            placeholders: BTreeMap::from([(Modality::Image, "<image>".into()), (Modality::Audio, "<audio>".into())]),
            media_token_ids: BTreeMap::from([(Modality::Image, 3), (Modality::Audio, 4)]),
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            pad_token_id: Some(0),
            chat_template: Some("<u>{content}</u><a>".into()),
            chat: None,
            default_prompt: None,
        }
    }

    fn images(n: usize) -> BTreeMap<Modality, usize> {
        BTreeMap::from([(Modality::Image, n)])
    }

    #[test]
    fn images_then_audio_are_prepended_when_not_placed() {
        let counts = BTreeMap::from([(Modality::Audio, 2), (Modality::Image, 1)]);
        assert_eq!(render(&format(), "Hi.", &counts).unwrap(), "USER: <image>\n<audio>\n<audio>\nHi. ASSISTANT:");
        // Placed audio, prepended image.
        let counts = BTreeMap::from([(Modality::Audio, 1), (Modality::Image, 1)]);
        assert_eq!(render(&format(), "a <audio> b", &counts).unwrap(), "USER: <image>\na <audio> b ASSISTANT:");
    }

    #[test]
    fn a_placeholder_without_inputs_is_an_error() {
        let err = render(&format(), "hear <audio>", &images(0)).unwrap_err().to_string();
        assert!(err.contains("1 \"<audio>\" placeholder(s) but 0 audio input(s)"), "{err}");
        let mut f = format();
        f.placeholders.remove(&Modality::Audio);
        let err = render(&f, "Hi.", &BTreeMap::from([(Modality::Audio, 1)])).unwrap_err().to_string();
        assert!(err.contains("takes no audio input"), "{err}");
    }

    #[test]
    fn chat_uses_the_chat_template_and_needs_one() {
        let mut f = format();
        assert_eq!(render_with(&f, "Hi.", &images(0), true).unwrap(), "<u>Hi.</u><a>");
        assert_eq!(render_with(&f, "Hi.", &images(0), false).unwrap(), "USER: Hi. ASSISTANT:");
        f.chat_template = None;
        let err = render_with(&f, "Hi.", &images(0), true).unwrap_err().to_string();
        assert!(err.contains("no chat template"), "{err}");
    }

    #[test]
    fn placeholders_are_prepended_per_image() {
        let text = render(&format(), "Hi.", &images(2)).unwrap();
        assert_eq!(text, "USER: <image>\n<image>\nHi. ASSISTANT:");
    }

    #[test]
    fn written_placeholders_are_kept_and_counted() {
        let f = format();
        assert_eq!(render(&f, "a <image> b", &images(1)).unwrap(), "USER: a <image> b ASSISTANT:");
        let err = render(&f, "a <image> b", &images(2)).unwrap_err().to_string();
        assert!(err.contains("1 \"<image>\" placeholder(s) but 2"), "{err}");
    }

    #[test]
    fn text_only_has_no_placeholder() {
        assert_eq!(render(&format(), "Hi.", &images(0)).unwrap(), "USER: Hi. ASSISTANT:");
    }
}
