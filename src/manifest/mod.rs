//! The bundle manifest (`bundle.json`, format version 1): plain serde structs
//! describing every stage of an MM-LLM, the tensors the runtime touches, the
//! preprocessing, the prompt format and generation defaults.
//!
//! Parsing is strict (`deny_unknown_fields`, tagged enums) so a typo in a
//! manifest is an error naming the field, not a silently ignored setting.
//! [`Manifest::validate`] checks what serde cannot: cross references, value
//! ranges and that every path stays inside the bundle.
//!
//! One file per part of the schema, each next to its validation: [`stage`]
//! (the tagged `Stage` enum, encoder and projector stages), [`decoder`] (LLM
//! and encoder-decoder text decoders, KV cache names), [`output`] (output
//! projector and modality generator, text to speech), [`consistency`] (the
//! consistency generator); preprocessing settings live with their
//! implementation in [`crate::preprocess::config`], the prompt format in
//! [`crate::prompt`].

/// Serialize and deserialize a `#[serde(remote = "Self", tag = "kind")]`
/// enum with the manifest's one tag key, `kind`; format v1 spelled the tag of
/// preprocessing and media outputs `type`, which is read as `kind`.
macro_rules! kind_tagged {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                use serde::de::Error as _;
                let mut map = serde_json::Map::deserialize(d)?;
                if let Some(tag) = map.remove("type") {
                    if map.contains_key("kind") {
                        return Err(D::Error::custom("both `kind` and `type` (its format v1 spelling) are given; keep `kind`"));
                    }
                    map.insert("kind".into(), tag);
                }
                <$t>::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)
            }
        }
    };
}
pub(crate) use kind_tagged;

mod consistency;
mod decoder;
mod output;
mod stage;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use crate::preprocess::config::*;
pub use crate::prompt::{ChatTemplateFile, PromptFormat};
pub use consistency::*;
pub use decoder::*;
pub use output::*;
pub use stage::*;

/// The `format` string every manifest carries.
pub const FORMAT: &str = "mmrt.bundle";
/// The manifest version this runtime reads.
pub const VERSION: u32 = 1;

/// A parsed `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this runtime.
    pub version: u32,
    /// Short bundle name (shown by `inspect` and benchmarks).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Hugging Face `tokenizer.json`, relative to the bundle (absent in a voice
    /// bundle, whose phonemizer is espeak-ng).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tokenizer: String,
    /// mmrt's compact form of the same tokenizer (`tokenizer.bin`), read in
    /// place instead of `tokenizer.json` when present (see [`crate::tokenizer::compact`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_tokenizer: Option<String>,
    /// The model's stages, in no particular order; each kind is found by its tag.
    pub stages: Vec<Stage>,
    /// How a request becomes token ids (absent in a voice bundle).
    #[serde(default)]
    pub prompt: PromptFormat,
    /// Generation defaults, overridable per request.
    #[serde(default)]
    pub generation: crate::generate::GenerationConfig,
    /// Session settings per stage name (execution provider, threads, ONNX
    /// Runtime options), applied before the command line's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sessions: BTreeMap<String, crate::runtime::StageSession>,
    /// sha256 (hex) of bundle files, verified on load. Keys are bundle-relative paths.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// The media a modality stage handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Still images.
    Image,
    /// Waveforms.
    Audio,
    /// Frame sequences.
    Video,
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Modality::Image => "image",
            Modality::Audio => "audio",
            Modality::Video => "video",
        })
    }
}

impl Manifest {
    /// Parse `bundle.json` text; `origin` names the file in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| Error::Manifest {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        manifest.validate().map_err(|message| Error::Manifest { path: origin.to_path_buf(), message })?;
        Ok(manifest)
    }

    /// Checks serde cannot express. Returns the first problem found.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("`format` must be \"{FORMAT}\", found \"{}\"", self.format));
        }
        if self.version != VERSION {
            return Err(format!("`version` {} is not supported (this runtime reads version {VERSION})", self.version));
        }
        for path in self.files() {
            check_relative_path(path)?;
        }
        for path in self.checksums.keys() {
            check_relative_path(path)?;
        }
        if self.stages.iter().any(Stage::is_standalone) {
            return self.validate_standalone();
        }
        if self.tokenizer.trim().is_empty() {
            return Err("`tokenizer` is required (a tokenizer.json in the bundle)".into());
        }
        let decoders =
            self.stages.iter().filter(|s| matches!(s, Stage::LlmDecoder(_) | Stage::Seq2seqDecoder(_))).count();
        if decoders != 1 {
            return Err(format!("exactly one `llm_decoder` or `seq2seq_decoder` stage is required, found {decoders}"));
        }
        let mut names = std::collections::BTreeSet::new();
        for stage in &self.stages {
            if !names.insert(stage.name()) {
                return Err(format!("stage name \"{}\" is used twice", stage.name()));
            }
            validate_stage(stage)?;
        }
        self.validate_one_stage_per_modality()?;
        self.validate_prompt_tokens()?;
        for stage in &self.stages {
            if let Stage::InputProjector(p) = stage {
                if self.encoder(p.modality).is_none() {
                    return Err(format!("input_projector \"{}\" has no modality_encoder for {}", p.name, p.modality));
                }
            }
        }
        if let Some(d) = self.seq2seq_decoder() {
            if self.encoders().count() != 1 || self.encoder(Modality::Audio).is_none() {
                return Err(format!("seq2seq_decoder \"{}\" needs exactly one modality_encoder, for audio", d.name));
            }
            return self.generation.validate().map_err(|e| format!("`generation`: {e}"));
        }
        for (modality, _) in self.encoders() {
            if self.projector(modality).is_none() {
                return Err(format!("modality_encoder for {modality} has no input_projector"));
            }
            if !self.prompt.placeholders.contains_key(&modality) || !self.prompt.media_token_ids.contains_key(&modality)
            {
                return Err(format!("`prompt` needs a placeholder and a media token id for {modality}"));
            }
        }
        for stage in &self.stages {
            match stage {
                Stage::OutputProjector(o) => {
                    if self.generator(o.modality).is_none() {
                        return Err(format!("output_projector \"{}\" has no modality_generator for {}", o.name, o.modality));
                    }
                    if self.decoder().outputs.hidden_states.is_none() {
                        return Err(format!(
                            "output_projector \"{}\" needs the decoder's last hidden state: set `outputs.hidden_states` of the llm_decoder stage",
                            o.name
                        ));
                    }
                }
                Stage::ModalityGenerator(g) if self.output_projector(g.modality).is_none() => {
                    return Err(format!("modality_generator \"{}\" has no output_projector for {}", g.name, g.modality));
                }
                _ => {}
            }
        }
        if !self.prompt.template.contains("{content}") {
            return Err("`prompt.template` must contain {content}".into());
        }
        if self.prompt.chat_template.as_ref().is_some_and(|t| !t.contains("{content}")) {
            return Err("`prompt.chat_template` must contain {content}".into());
        }
        if self.prompt.chat_template.is_some() && self.prompt.chat.is_some() {
            return Err(
                "`prompt.chat_template` and `prompt.chat` are both given; keep one (`chat` names a Jinja template file, \
                 `chat_template` is the older {content} form)"
                    .into(),
            );
        }
        self.generation.validate().map_err(|e| format!("`generation`: {e}"))
    }

    /// At most one stage of each modality-specific kind per modality: a second
    /// encoder (or projector, output projector, generator) for the same
    /// modality would be loaded and never used, or used instead of the first.
    fn validate_one_stage_per_modality(&self) -> std::result::Result<(), String> {
        let mut seen: BTreeMap<(&str, Modality), &str> = BTreeMap::new();
        for stage in &self.stages {
            let (kind, modality) = match stage {
                Stage::ModalityEncoder(s) => ("modality_encoder", s.modality),
                Stage::InputProjector(s) => ("input_projector", s.modality),
                Stage::OutputProjector(s) => ("output_projector", s.modality),
                Stage::ModalityGenerator(s) => ("modality_generator", s.modality),
                Stage::LlmDecoder(_) | Stage::Seq2seqDecoder(_) | Stage::TextToSpeech(_) | Stage::ConsistencyGenerator(_) => continue,
            };
            if let Some(first) = seen.insert((kind, modality), stage.name()) {
                return Err(format!(
                    "two {kind} stages for {modality} (\"{first}\" and \"{}\"); a bundle has at most one per modality",
                    stage.name()
                ));
            }
        }
        Ok(())
    }

    /// The prompt's special tokens, as far as the manifest alone can tell:
    /// placeholders non-empty and distinct, media token ids distinct, at least
    /// one stop token (neither decoder kind has another way to end a
    /// generation before its budget). That each placeholder is one token of the
    /// tokenizer is [`crate::prompt::check_tokenizer`]'s part.
    fn validate_prompt_tokens(&self) -> std::result::Result<(), String> {
        let p = &self.prompt;
        let mut placeholders = BTreeMap::new();
        for (modality, placeholder) in &p.placeholders {
            if placeholder.trim().is_empty() {
                return Err(format!(
                    "`prompt.placeholders.{modality}` is empty; it must be the tokenizer's {modality} token (e.g. \"<{modality}>\")"
                ));
            }
            if placeholder.contains("{content}") {
                return Err(format!("`prompt.placeholders.{modality}` must not contain {{content}}"));
            }
            if let Some(other) = placeholders.insert(placeholder.as_str(), modality) {
                return Err(format!("`prompt.placeholders`: {other} and {modality} share the placeholder \"{placeholder}\""));
            }
        }
        let mut ids = BTreeMap::new();
        for (modality, id) in &p.media_token_ids {
            if let Some(other) = ids.insert(id, modality) {
                return Err(format!("`prompt.media_token_ids`: {other} and {modality} share the token id {id}"));
            }
            if p.eos_token_ids.contains(id) {
                return Err(format!("`prompt.media_token_ids.{modality}` {id} is also a stop token (`eos_token_ids`)"));
            }
        }
        if p.eos_token_ids.is_empty() {
            return Err(
                "`prompt.eos_token_ids` is empty: generation could only stop at the token budget or the context; \
                 list the model's end-of-sequence token id(s)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Every file the manifest references (tokenizer, chat template and graphs).
    pub fn files(&self) -> Vec<&str> {
        std::iter::once(self.tokenizer.as_str())
            .filter(|t| !t.is_empty())
            .chain(self.compact_tokenizer.as_deref())
            .chain(self.prompt.chat.as_ref().map(|c| c.file.as_str()))
            .chain(self.stages.iter().flat_map(|s| s.files()))
            .collect()
    }

    /// The (single) decoder stage. Validation guarantees it exists unless the
    /// bundle is an encoder-decoder one (see [`Self::seq2seq_decoder`]).
    pub fn decoder(&self) -> &DecoderStage {
        self.llm_decoder().expect("validated manifest without a seq2seq_decoder has an llm_decoder")
    }

    /// The decoder-only LLM stage, if the bundle has one.
    pub fn llm_decoder(&self) -> Option<&DecoderStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::LlmDecoder(d) => Some(d),
            _ => None,
        })
    }

    /// The encoder-decoder text decoder, if the bundle is a speech-recognition bundle.
    pub fn seq2seq_decoder(&self) -> Option<&Seq2seqDecoderStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::Seq2seqDecoder(d) => Some(d),
            _ => None,
        })
    }

    /// Encoder stages keyed by modality.
    pub fn encoders(&self) -> impl Iterator<Item = (Modality, &EncoderStage)> {
        self.stages.iter().filter_map(|s| match s {
            Stage::ModalityEncoder(e) => Some((e.modality, e)),
            _ => None,
        })
    }

    /// Output projector stages, in manifest order.
    pub fn output_projectors(&self) -> impl Iterator<Item = &OutputProjectorStage> {
        self.stages.iter().filter_map(|s| match s {
            Stage::OutputProjector(o) => Some(o),
            _ => None,
        })
    }

    /// The encoder for a modality, if the bundle has one.
    pub fn encoder(&self, modality: Modality) -> Option<&EncoderStage> {
        self.encoders().find(|(m, _)| *m == modality).map(|(_, e)| e)
    }

    /// The output projector for a modality, if the bundle has one.
    pub fn output_projector(&self, modality: Modality) -> Option<&OutputProjectorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::OutputProjector(o) if o.modality == modality => Some(o),
            _ => None,
        })
    }

    /// The text-to-speech stage of a voice bundle.
    pub fn text_to_speech(&self) -> Option<&TextToSpeechStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::TextToSpeech(t) => Some(t),
            _ => None,
        })
    }

    /// The consistency generator of a standalone generator bundle (e.g. models/terrain).
    pub fn consistency_generator(&self) -> Option<&ConsistencyGeneratorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::ConsistencyGenerator(c) => Some(c),
            _ => None,
        })
    }

    /// A standalone generator bundle (a voice, a consistency generator) is its
    /// one stage alone: no tokenizer, prompt or decoder. A voice joins an LLM
    /// bundle at run time (`mmrt assist`); a consistency generator needs none.
    fn validate_standalone(&self) -> std::result::Result<(), String> {
        let [stage] = &self.stages[..] else {
            let (kind, hint) = match self.stages.iter().find(|s| s.is_standalone()) {
                Some(Stage::TextToSpeech(_)) => ("text_to_speech", "a voice bundle; join it to an LLM bundle with `mmrt assist --tts`"),
                _ => ("consistency_generator", "a standalone generator bundle"),
            };
            return Err(format!("a `{kind}` stage stands alone in its bundle ({hint}), found {} stages", self.stages.len()));
        };
        if !self.tokenizer.is_empty() || self.compact_tokenizer.is_some() {
            return Err(match stage {
                Stage::TextToSpeech(_) => "a voice bundle has no `tokenizer` (espeak-ng phonemizes the text)".into(),
                _ => "a consistency generator bundle has no `tokenizer` (it takes no text)".into(),
            });
        }
        validate_stage(stage)
    }

    /// The modality generator for a modality, if the bundle has one.
    pub fn generator(&self, modality: Modality) -> Option<&GeneratorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::ModalityGenerator(g) if g.modality == modality => Some(g),
            _ => None,
        })
    }

    /// The input projector for a modality, if the bundle has one.
    pub fn projector(&self, modality: Modality) -> Option<&ProjectorStage> {
        self.stages.iter().find_map(|s| match s {
            Stage::InputProjector(p) if p.modality == modality => Some(p),
            _ => None,
        })
    }
}

/// A manifest path must be relative and must not climb out of the bundle.
pub fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("an empty file path".into());
    }
    for component in p.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("path \"{path}\" points outside the bundle (only relative paths inside it are allowed)"))
            }
        }
    }
    Ok(())
}
