//! The settings of text generation, as one type: a bundle's defaults (the
//! manifest's `generation` block) and, with a request's overrides applied,
//! what one run uses.

use serde::{Deserialize, Serialize};

use super::sampler::Sampling;
use crate::error::{Error, Result};

/// How much to generate and how each token is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GenerationKnobs", into = "GenerationKnobs")]
pub struct GenerationConfig {
    /// New tokens at most (clamped to the context at run time).
    pub max_new_tokens: usize,
    /// Greedy or random sampling.
    pub sampling: Sampling,
    /// CTRL-style penalty on tokens already seen; 1.0 disables.
    pub repetition_penalty: f32,
    /// Beam width; 1 decodes one sequence (greedy or sampled).
    pub num_beams: usize,
    /// Seed of random sampling (and of media-generation noise).
    pub seed: u64,
}

impl Default for GenerationConfig {
    /// Greedy decoding of up to 128 tokens, no penalty, one beam, seed 0: the
    /// deterministic choice, matching `transformers`' `generate()` defaults
    /// except for the token budget.
    fn default() -> Self {
        Self { max_new_tokens: 128, sampling: Sampling::Greedy, repetition_penalty: 1.0, num_beams: 1, seed: 0 }
    }
}

impl GenerationConfig {
    /// Reject values with no meaning, and sizes above [`crate::limits`] (the
    /// manifest's defaults and every request's overrides pass here).
    pub fn validate(&self) -> Result<()> {
        use crate::limits::{MAX_BEAMS, MAX_NEW_TOKENS};
        self.sampling.validate()?;
        if self.max_new_tokens > MAX_NEW_TOKENS {
            return Err(Error::Request(format!(
                "`max_new_tokens` {} is above the limit of {MAX_NEW_TOKENS} (limits::MAX_NEW_TOKENS)",
                self.max_new_tokens
            )));
        }
        if self.num_beams > MAX_BEAMS {
            return Err(Error::Request(format!("`num_beams` {} is above the limit of {MAX_BEAMS} (limits::MAX_BEAMS)", self.num_beams)));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::Request(format!("repetition penalty must be > 0, got {}", self.repetition_penalty)));
        }
        if self.num_beams == 0 {
            return Err(Error::Request("the beam count must be at least 1 (1 is greedy decoding)".into()));
        }
        if self.num_beams > 1 && self.sampling != Sampling::Greedy {
            return Err(Error::Request("beam search is deterministic: use greedy sampling (temperature 0) with beams".into()));
        }
        Ok(())
    }

    /// These settings with `overrides` applied (each `Some` replaces the default).
    pub fn with_overrides(&self, overrides: &GenerationOverrides) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: overrides.max_new_tokens.unwrap_or(self.max_new_tokens),
            sampling: overrides.sampling.unwrap_or(self.sampling),
            repetition_penalty: overrides.repetition_penalty.unwrap_or(self.repetition_penalty),
            num_beams: overrides.num_beams.unwrap_or(self.num_beams),
            seed: overrides.seed.unwrap_or(self.seed),
        }
    }
}

/// A request's changes to a bundle's [`GenerationConfig`]; `None` keeps the bundle's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOverrides {
    /// New tokens at most.
    pub max_new_tokens: Option<usize>,
    /// Greedy or random sampling.
    pub sampling: Option<Sampling>,
    /// Repetition penalty.
    pub repetition_penalty: Option<f32>,
    /// Beam width.
    pub num_beams: Option<usize>,
    /// Sampling seed.
    pub seed: Option<u64>,
}

/// The manifest's flat spelling (format v1): temperature 0 means greedy,
/// top-k 0 keeps all tokens.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GenerationKnobs {
    max_new_tokens: usize,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    repetition_penalty: f32,
    #[serde(skip_serializing_if = "is_one")]
    num_beams: usize,
    #[serde(skip_serializing_if = "is_zero")]
    seed: u64,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for GenerationKnobs {
    fn default() -> Self {
        GenerationConfig::default().into()
    }
}

impl TryFrom<GenerationKnobs> for GenerationConfig {
    type Error = String;

    fn try_from(k: GenerationKnobs) -> std::result::Result<Self, String> {
        let sampling = Sampling::from_knobs(k.temperature, k.top_k, k.top_p).map_err(|e| format!("generation: {e}"))?;
        let config = GenerationConfig {
            max_new_tokens: k.max_new_tokens,
            sampling,
            repetition_penalty: k.repetition_penalty,
            num_beams: k.num_beams,
            seed: k.seed,
        };
        config.validate().map_err(|e| format!("generation: {e}"))?;
        Ok(config)
    }
}

impl From<GenerationConfig> for GenerationKnobs {
    fn from(c: GenerationConfig) -> Self {
        let (temperature, top_k, top_p) = c.sampling.knobs();
        Self {
            max_new_tokens: c.max_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty: c.repetition_penalty,
            num_beams: c.num_beams,
            seed: c.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_v1_block_reads_and_writes_back() {
        let text = r#"{"max_new_tokens": 24, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0}"#;
        let c: GenerationConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c, GenerationConfig { max_new_tokens: 24, ..Default::default() });
        let back: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap());
    }

    #[test]
    fn bad_blocks_are_errors() {
        let over = [format!(r#"{{"max_new_tokens": {}}}"#, crate::limits::MAX_NEW_TOKENS + 1), format!(r#"{{"num_beams": {}}}"#, crate::limits::MAX_BEAMS + 1)];
        for bad in [r#"{"temperature": -1}"#, r#"{"top_p": 0}"#, r#"{"repetition_penalty": 0}"#, r#"{"num_beams": 0}"#, r#"{"temp": 1}"#].into_iter().chain(over.iter().map(String::as_str)) {
            assert!(serde_json::from_str::<GenerationConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = GenerationConfig { max_new_tokens: 10, ..Default::default() };
        let o = GenerationOverrides { seed: Some(5), ..Default::default() };
        assert_eq!(base.with_overrides(&o), GenerationConfig { seed: 5, ..base.clone() });
    }
}
