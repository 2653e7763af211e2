//! From a user prompt and media to token ids: apply the bundle's template,
//! tokenize, and expand each media placeholder token into one token per
//! projected embedding row (the rows that replace them before prefill).

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::manifest::{Modality, PromptFormat};

/// Token ids of a prompt and where each media item's embeddings go.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrompt {
    /// Prompt ids after placeholder expansion.
    pub ids: Vec<u32>,
    /// For each media item, in prompt order: its first position in `ids`.
    pub media_positions: Vec<usize>,
}

/// Render the template: one placeholder per media item (each followed by a
/// newline) then the user text, unless the user text already places them.
pub fn render(format: &PromptFormat, modality: Modality, user_prompt: &str, media_count: usize) -> Result<String> {
    render_with(format, modality, user_prompt, media_count, false)
}

/// [`render`], with the manifest's chat template instead of the plain one when
/// `chat` is set (an error if the bundle has none).
pub fn render_with(
    format: &PromptFormat,
    modality: Modality,
    user_prompt: &str,
    media_count: usize,
    chat: bool,
) -> Result<String> {
    let template = match (chat, &format.chat_template) {
        (false, _) => &format.template,
        (true, Some(t)) => t,
        (true, None) => return Err(Error::Request("this bundle has no chat template (`prompt.chat_template`); drop --chat".into())),
    };
    let placeholder = format.placeholders.get(&modality).map(String::as_str);
    let content = match placeholder {
        Some(p) if user_prompt.contains(p) => {
            let written = user_prompt.matches(p).count();
            if written != media_count {
                return Err(Error::Request(format!(
                    "the prompt contains {written} \"{p}\" placeholder(s) but {media_count} {modality} input(s) were given"
                )));
            }
            user_prompt.to_string()
        }
        Some(p) => format!("{}{user_prompt}", format!("{p}\n").repeat(media_count)),
        None if media_count > 0 => {
            return Err(Error::Request(format!("this bundle takes no {modality} input (no placeholder in its prompt format)")))
        }
        None => user_prompt.to_string(),
    };
    Ok(template.replace("{content}", &content))
}

/// Tokenize rendered text, prepend BOS, and expand each media token into
/// `tokens_per_item[i]` copies for the i-th media item.
pub fn encode(
    tokenizer: &Tokenizer,
    format: &PromptFormat,
    modality: Modality,
    text: &str,
    tokens_per_item: &[usize],
) -> Result<EncodedPrompt> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer { context: "encoding the prompt".into(), message: e.to_string() })?;
    let media_token = format.media_token_ids.get(&modality).copied();
    let mut ids = Vec::with_capacity(encoding.len() + tokens_per_item.iter().sum::<usize>() + 1);
    ids.extend(format.bos_token_id);
    let mut media_positions = Vec::with_capacity(tokens_per_item.len());
    for &id in encoding.get_ids() {
        if Some(id) != media_token {
            ids.push(id);
            continue;
        }
        let Some(&n) = tokens_per_item.get(media_positions.len()) else {
            return Err(Error::Request(format!(
                "the prompt has more {modality} placeholders than the {} {modality} input(s) given",
                tokens_per_item.len()
            )));
        };
        media_positions.push(ids.len());
        ids.extend(std::iter::repeat_n(id, n));
    }
    if media_positions.len() != tokens_per_item.len() {
        return Err(Error::Request(format!(
            "{} {modality} input(s) given but the tokenized prompt has {} placeholder token(s); does the tokenizer know the placeholder as a special token?",
            tokens_per_item.len(),
            media_positions.len()
        )));
    }
    Ok(EncodedPrompt { ids, media_positions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn format() -> PromptFormat {
        PromptFormat {
            template: "USER: {content} ASSISTANT:".into(),
            placeholders: BTreeMap::from([(Modality::Image, "<image>".into())]),
            media_token_ids: BTreeMap::from([(Modality::Image, 3)]),
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            pad_token_id: Some(0),
            chat_template: Some("<u>{content}</u><a>".into()),
            default_prompt: None,
        }
    }

    #[test]
    fn chat_uses_the_chat_template_and_needs_one() {
        let mut f = format();
        assert_eq!(render_with(&f, Modality::Image, "Hi.", 0, true).unwrap(), "<u>Hi.</u><a>");
        assert_eq!(render_with(&f, Modality::Image, "Hi.", 0, false).unwrap(), "USER: Hi. ASSISTANT:");
        f.chat_template = None;
        let err = render_with(&f, Modality::Image, "Hi.", 0, true).unwrap_err().to_string();
        assert!(err.contains("no chat template"), "{err}");
    }

    #[test]
    fn placeholders_are_prepended_per_image() {
        let text = render(&format(), Modality::Image, "Hi.", 2).unwrap();
        assert_eq!(text, "USER: <image>\n<image>\nHi. ASSISTANT:");
    }

    #[test]
    fn written_placeholders_are_kept_and_counted() {
        let f = format();
        assert_eq!(render(&f, Modality::Image, "a <image> b", 1).unwrap(), "USER: a <image> b ASSISTANT:");
        let err = render(&f, Modality::Image, "a <image> b", 2).unwrap_err().to_string();
        assert!(err.contains("1 \"<image>\" placeholder(s) but 2"), "{err}");
    }

    #[test]
    fn text_only_has_no_placeholder() {
        assert_eq!(render(&format(), Modality::Image, "Hi.", 0).unwrap(), "USER: Hi. ASSISTANT:");
    }
}
