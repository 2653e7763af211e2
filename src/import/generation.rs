//! Generation defaults of an inferred manifest from the sampling settings a
//! folder's config states (onnxruntime-genai's `search` block, transformers'
//! `generation_config.json`): `do_sample` false or absent is greedy, as in
//! both tools; otherwise `temperature` (default 1.0), `top_k` (0 or absent:
//! all tokens), `top_p` (default 1.0). `repetition_penalty` carries over; the
//! token budget is mmrt's default. Every value passes
//! [`GenerationConfig::validate`].

use serde::Deserialize;

use crate::generate::{GenerationConfig, Sampling};

/// The sampling keys both layouts spell the same way.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingConfig {
    /// Random sampling when true.
    #[serde(default)]
    pub do_sample: Option<bool>,
    /// Softmax temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0: all).
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Nucleus mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// CTRL-style penalty (1.0: none).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
}

/// The generation defaults `config` (in file `origin`) states; a line for `inspect` goes to `notes`.
pub fn defaults(config: &SamplingConfig, origin: &str, notes: &mut Vec<String>) -> Result<GenerationConfig, String> {
    let sampling = if config.do_sample == Some(true) {
        let top_k = config.top_k.unwrap_or(0);
        let top_k = usize::try_from(top_k).map_err(|_| format!("{origin}: top_k must be >= 0, found {top_k}"))?;
        let temperature = config.temperature.unwrap_or(1.0);
        if temperature == 0.0 {
            return Err(format!("{origin}: do_sample is true with temperature 0"));
        }
        Sampling::from_knobs(temperature, top_k, config.top_p.unwrap_or(1.0)).map_err(|e| format!("{origin}: {e}"))?
    } else {
        Sampling::Greedy
    };
    let generation = GenerationConfig { sampling, repetition_penalty: config.repetition_penalty.unwrap_or(1.0), ..GenerationConfig::default() };
    generation.validate().map_err(|e| format!("{origin}: {e}"))?;
    let (temperature, top_k, top_p) = generation.sampling.knobs();
    notes.push(match generation.sampling {
        Sampling::Greedy => format!("generation: greedy (do_sample is not true in {origin}), {} new tokens at most", generation.max_new_tokens),
        Sampling::Random { .. } => format!(
            "generation: sampling with temperature {temperature}, top_k {top_k}, top_p {top_p} (do_sample in {origin}), {} new tokens at most",
            generation.max_new_tokens
        ),
    });
    if generation.repetition_penalty != 1.0 {
        notes.push(format!("generation: repetition penalty {} ({origin})", generation.repetition_penalty));
    }
    Ok(generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_unless_do_sample_and_bad_values_are_errors() {
        let mut notes = Vec::new();
        let greedy = SamplingConfig { temperature: Some(0.7), top_k: Some(50), ..Default::default() };
        assert_eq!(defaults(&greedy, "c", &mut notes).unwrap().sampling, Sampling::Greedy);
        let random = SamplingConfig { do_sample: Some(true), temperature: Some(0.7), top_k: Some(50), top_p: Some(0.9), repetition_penalty: Some(1.1) };
        let g = defaults(&random, "c", &mut notes).unwrap();
        assert_eq!(g.sampling, Sampling::Random { temperature: 0.7, top_k: Some(50), top_p: 0.9 });
        assert_eq!(g.repetition_penalty, 1.1);
        for bad in [
            SamplingConfig { do_sample: Some(true), top_p: Some(1.5), ..Default::default() },
            SamplingConfig { do_sample: Some(true), top_k: Some(-1), ..Default::default() },
            SamplingConfig { do_sample: Some(true), temperature: Some(0.0), ..Default::default() },
            SamplingConfig { repetition_penalty: Some(-1.0), ..Default::default() },
        ] {
            assert!(defaults(&bad, "c", &mut notes).unwrap_err().starts_with("c: "));
        }
    }
}
