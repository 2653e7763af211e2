//! A Piper voice's configuration (`<voice>.onnx.json`, as Piper's training
//! writes it) and its phoneme -> id rules.
//!
//! Ids follow Piper: `^` (BOS), then each phoneme followed by `_` (PAD), then
//! `$` (EOS). A phoneme missing from the map is skipped (as Piper does) and
//! counted, so callers can say so.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::espeak::Clause;
use crate::limits;

/// Padding, beginning and end of sentence, as Piper names them.
const PAD: &str = "_";
const BOS: &str = "^";
const EOS: &str = "$";

/// The fields of a Piper voice config mmrt reads (unknown fields are Piper's own).
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    /// Output rate.
    pub audio: AudioConfig,
    /// espeak-ng voice.
    pub espeak: EspeakConfig,
    /// Default synthesis scales.
    #[serde(default)]
    pub inference: InferenceConfig,
    /// `espeak` (the only kind mmrt phonemizes) or `text`.
    #[serde(default = "espeak_kind")]
    pub phoneme_type: String,
    /// Phoneme (one or more characters) -> ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    /// Size of the graph's phoneme embedding: every id must be below it.
    pub num_symbols: usize,
    /// Speakers (1: the graph has no `sid` input).
    #[serde(default = "one")]
    pub num_speakers: usize,
    /// Speaker for multi-speaker voices when none is asked for.
    #[serde(default)]
    pub default_speaker_id: i64,
}

fn espeak_kind() -> String {
    "espeak".into()
}

fn one() -> usize {
    1
}

/// `audio` of a voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    /// Samples per second of the graph's output.
    pub sample_rate: u32,
}

/// `espeak` of a voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    /// espeak-ng voice name, e.g. `en-us`.
    pub voice: String,
}

/// `inference` of a voice config: the scales the voice was tuned for.
#[derive(Debug, Clone, Deserialize)]
pub struct InferenceConfig {
    /// Noise of the flow (variation in the voice).
    #[serde(default = "noise_scale")]
    pub noise_scale: f32,
    /// Phoneme duration factor (> 1 slower).
    #[serde(default = "length_scale")]
    pub length_scale: f32,
    /// Noise of the duration predictor (variation in rhythm).
    #[serde(default = "noise_w")]
    pub noise_w: f32,
}

fn noise_scale() -> f32 {
    0.667
}
fn length_scale() -> f32 {
    1.0
}
fn noise_w() -> f32 {
    0.8
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig { noise_scale: noise_scale(), length_scale: length_scale(), noise_w: noise_w() }
    }
}

/// A sentence's phonemes (NFD code points, punctuation kept) and model ids.
#[derive(Debug, Clone, PartialEq)]
pub struct PhonemeSentence {
    /// Phonemes, one string each (one code point after NFD).
    pub phonemes: Vec<String>,
    /// Ids with BOS, PAD and EOS.
    pub ids: Vec<i64>,
    /// Phonemes the voice has no id for (skipped).
    pub unknown: Vec<String>,
}

impl VoiceConfig {
    /// Check what sizes buffers and what the graph will index with.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.phoneme_type != "espeak" {
            return Err(format!("phoneme_type \"{}\" is not supported (mmrt phonemizes with espeak-ng)", self.phoneme_type));
        }
        if !(limits::MIN_SAMPLE_RATE..=limits::MAX_SAMPLE_RATE).contains(&self.audio.sample_rate) {
            return Err(format!(
                "audio.sample_rate {} is outside {}..={} Hz",
                self.audio.sample_rate,
                limits::MIN_SAMPLE_RATE,
                limits::MAX_SAMPLE_RATE
            ));
        }
        if self.num_symbols == 0 || self.num_symbols > limits::MAX_PHONEME_SYMBOLS {
            return Err(format!("num_symbols {} is outside 1..={}", self.num_symbols, limits::MAX_PHONEME_SYMBOLS));
        }
        if self.num_speakers == 0 || self.num_speakers > limits::MAX_SPEAKERS {
            return Err(format!("num_speakers {} is outside 1..={}", self.num_speakers, limits::MAX_SPEAKERS));
        }
        for key in [PAD, BOS, EOS] {
            if self.phoneme_id_map.get(key).is_none_or(Vec::is_empty) {
                return Err(format!("phoneme_id_map has no id for \"{key}\" (Piper's padding / sentence markers)"));
            }
        }
        for (phoneme, ids) in &self.phoneme_id_map {
            if let Some(id) = ids.iter().find(|&&id| id < 0 || id as usize >= self.num_symbols) {
                return Err(format!("phoneme_id_map[\"{phoneme}\"] has id {id}, outside 0..{} (num_symbols)", self.num_symbols));
            }
        }
        if !(0..self.num_speakers as i64).contains(&self.default_speaker_id) {
            return Err(format!("default_speaker_id {} is outside 0..{}", self.default_speaker_id, self.num_speakers));
        }
        for (name, v) in [
            ("noise_scale", self.inference.noise_scale),
            ("length_scale", self.inference.length_scale),
            ("noise_w", self.inference.noise_w),
        ] {
            check_scale(name, v)?;
        }
        Ok(())
    }

    /// Clauses -> sentences of phonemes and ids, as Piper groups and numbers them.
    pub fn sentences(&self, clauses: &[Clause]) -> Vec<PhonemeSentence> {
        let mut sentences = Vec::new();
        let mut current: Vec<String> = Vec::new();
        for clause in clauses {
            let mut text = strip_language_flags(&clause.phonemes);
            // Punctuation alone ("?!... ,") is not spoken: Piper's fork reports no terminator for it.
            if let Some(t) = clause.terminator.filter(|_| !text.trim().is_empty()) {
                text.push(t);
                if matches!(t, ',' | ':' | ';') {
                    text.push(' ');
                }
            }
            current.extend(text.nfd().map(String::from));
            if clause.ends_sentence {
                sentences.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            sentences.push(current);
        }
        sentences.into_iter().filter(|s| !s.is_empty()).map(|phonemes| self.ids(phonemes)).collect()
    }

    fn ids(&self, phonemes: Vec<String>) -> PhonemeSentence {
        let map = &self.phoneme_id_map;
        let (pad, bos, eos) = (&map[PAD], &map[BOS], &map[EOS]);
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        let mut unknown = Vec::new();
        ids.extend(bos);
        ids.extend(pad);
        for p in &phonemes {
            match map.get(p) {
                Some(id) => {
                    ids.extend(id);
                    ids.extend(pad);
                }
                None => unknown.push(p.clone()),
            }
        }
        ids.extend(eos);
        PhonemeSentence { phonemes, ids, unknown }
    }
}

/// A synthesis scale: finite, >= 0, and at most a sane bound.
pub fn check_scale(name: &str, v: f32) -> std::result::Result<(), String> {
    if !(v.is_finite() && (0.0..=limits::MAX_TTS_SCALE).contains(&v)) {
        return Err(format!("{name} must be within 0..={}, got {v}", limits::MAX_TTS_SCALE));
    }
    Ok(())
}

/// Drop espeak-ng's language-switch flags, e.g. `(fr)` around a French word.
fn strip_language_flags(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut rest = ipa;
    while let Some(open) = rest.find('(') {
        match rest[open..].find(')') {
            Some(close) if close > 1 => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VoiceConfig {
        serde_json::from_str(
            r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"}, "num_symbols": 10,
                "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "a": [4], ",": [5], ".": [6], "c": [7], "̧": [8]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn ids_follow_piper_bos_pad_eos_and_nfd() {
        let c = config();
        c.validate().unwrap();
        let clauses = [
            Clause { phonemes: "a(fr)ç(en)".into(), terminator: Some(','), ends_sentence: false },
            Clause { phonemes: "a".into(), terminator: Some('.'), ends_sentence: true },
            Clause { phonemes: "x".into(), terminator: None, ends_sentence: false },
        ];
        let s = c.sentences(&clauses);
        assert_eq!(s.len(), 2);
        // "aç, a." -> a c ̧ , ' ' a .
        assert_eq!(s[0].phonemes, ["a", "c", "\u{327}", ",", " ", "a", "."]);
        assert_eq!(s[0].ids, [1, 0, 4, 0, 7, 0, 8, 0, 5, 0, 3, 0, 4, 0, 6, 0, 2]);
        assert_eq!(s[1].unknown, ["x"]);
        assert_eq!(s[1].ids, [1, 0, 2]);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field() {
        let mut c = config();
        c.phoneme_id_map.insert("b".into(), vec![99]);
        assert!(c.validate().unwrap_err().contains("num_symbols"));
        let mut c = config();
        c.phoneme_id_map.remove("^");
        assert!(c.validate().unwrap_err().contains("\"^\""));
        let mut c = config();
        c.audio.sample_rate = 7;
        assert!(c.validate().unwrap_err().contains("sample_rate"));
    }
}
