//! Voice activity detection (Silero VAD, ONNX) as an optional gate before the
//! speech encoder: speech probabilities per window of samples, hysteresis into
//! speech segments (trimming silence), then packing of segments into encoder
//! windows that break at pauses.
//!
//! The model's facts (window and context lengths, tensor names, rate) come from
//! `vad.json` beside the graph (the graph is copied from the `silero-vad` wheel by `exporters/whisper/build.sh`); the
//! recurrent state's shape comes from the graph's input metadata.

use std::path::Path;

use ort::session::Session;

use crate::error::{Error, Result};
use crate::runtime::session::{self, OpenedSession, SessionConfig};
use crate::runtime::OrtRuntime;

/// `vad.json`: how to drive the VAD graph.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadModelSpec {
    /// ONNX graph, relative to the VAD directory.
    pub graph: String,
    /// Rate the model runs at, Hz.
    pub sample_rate: u32,
    /// New samples per model call.
    pub window_samples: usize,
    /// Samples of the previous window prepended to each call.
    pub context_samples: usize,
    /// Audio input `[1, context + window]`.
    pub input: String,
    /// Recurrent state input.
    pub state: String,
    /// Sample-rate input (int64 scalar).
    pub sample_rate_input: String,
    /// Speech probability output `[1, 1]`.
    pub output: String,
    /// Next-state output.
    pub state_output: String,
}

/// Segmentation settings (defaults: Silero's `get_speech_timestamps`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VadConfig {
    /// Probability at or above which speech starts.
    pub threshold: f32,
    /// Speech ends below `threshold - neg_threshold_offset` (hysteresis).
    pub neg_threshold_offset: f32,
    /// Shorter speech segments are dropped, ms.
    pub min_speech_ms: u32,
    /// Silence needed to end a segment, ms.
    pub min_silence_ms: u32,
    /// Padding added on both sides of a segment, ms.
    pub speech_pad_ms: u32,
}

impl Default for VadConfig {
    /// Silero VAD 6.2.3's `get_speech_timestamps` defaults.
    fn default() -> Self {
        Self { threshold: 0.5, neg_threshold_offset: 0.15, min_speech_ms: 250, min_silence_ms: 100, speech_pad_ms: 30 }
    }
}

/// A loaded Silero VAD.
pub struct SileroVad {
    spec: VadModelSpec,
    /// `input [1, context + window], state, sr` -> `output [1, 1], stateN`
    session: Session,
    state_shape: Vec<usize>,
}

impl SileroVad {
    /// Open `dir/vad.json` and its graph; `rate` is the audio's rate, which must match the model's.
    pub fn open(runtime: &OrtRuntime, dir: &Path, rate: u32) -> Result<Self> {
        let spec_path = dir.join("vad.json");
        let bytes = crate::limits::read_bounded(&spec_path, crate::limits::MAX_SMALL_JSON_BYTES, "vad.json")
            .map_err(|e| Error::io(&spec_path, e))?;
        let spec: VadModelSpec = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Manifest { path: spec_path.clone(), message: e.to_string() })?;
        if spec.sample_rate != rate {
            return Err(Error::Manifest {
                path: spec_path,
                message: format!("the VAD runs at {} Hz but the speech encoder's audio is {rate} Hz", spec.sample_rate),
            });
        }
        if spec.window_samples == 0 {
            return Err(Error::Manifest { path: spec_path, message: "`window_samples` must be positive".into() });
        }
        let config = SessionConfig { threads: Some(1), ..SessionConfig::default() };
        let graph = dir.join(&spec.graph);
        let meta = std::fs::metadata(&graph).map_err(|e| Error::io(&graph, e))?;
        crate::limits::check_regular(&meta, "the VAD graph").map_err(|e| Error::io(&graph, e))?;
        let OpenedSession { session, .. } = session::open(runtime, &graph, "vad", &config)?;
        let dims = session::input_dims(&session, &spec.state).unwrap_or_default();
        // Symbolic dimensions of the state are the batch (1 here).
        let state_shape: Vec<usize> = dims.iter().map(|d| d.map_or(1, |d| d as usize)).collect();
        if state_shape.is_empty() {
            return Err(Error::Tensor { stage: "vad".into(), tensor: spec.state.clone(), expected: "a tensor input".into(), found: format!("{dims:?}") });
        }
        session::require_output(&session, "vad", &spec.output)?;
        session::require_output(&session, "vad", &spec.state_output)?;
        Ok(Self { spec, session, state_shape })
    }

    /// Speech probability of every window of `samples` (the last one zero-padded).
    pub fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        use ort::value::Tensor;
        let (win, ctx) = (self.spec.window_samples, self.spec.context_samples);
        let err = |e: ort::Error| Error::stage("vad", "running the graph", e);
        let mut state = Tensor::<f32>::from_array((self.state_shape.clone(), vec![0.0f32; self.state_shape.iter().product()]))
            .map_err(err)?
            .into_dyn();
        let sr = Tensor::<i64>::from_array((Vec::<usize>::new(), vec![self.spec.sample_rate as i64])).map_err(err)?;
        let mut buf = vec![0.0f32; ctx + win];
        let mut probs = Vec::with_capacity(samples.len() / win + 1);
        for chunk in samples.chunks(win) {
            // Slide: the last `ctx` samples of the previous input become this one's context.
            buf.copy_within(win.., 0);
            buf[ctx..ctx + chunk.len()].copy_from_slice(chunk);
            buf[ctx + chunk.len()..].fill(0.0);
            let input = Tensor::<f32>::from_array(([1usize, ctx + win], buf.clone())).map_err(err)?;
            let mut out = self
                .session
                .run(ort::inputs![self.spec.input.as_str() => input, self.spec.state.as_str() => state, self.spec.sample_rate_input.as_str() => &sr])
                .map_err(err)?;
            let p = out.remove(&self.spec.output).ok_or_else(|| Error::stage("vad", "reading output", &self.spec.output))?;
            let (_, data) = p.try_extract_tensor::<f32>().map_err(err)?;
            probs.push(data.first().copied().unwrap_or(0.0));
            state = out.remove(&self.spec.state_output).ok_or_else(|| Error::stage("vad", "reading output", &self.spec.state_output))?;
        }
        Ok(probs)
    }

    /// Speech segments `(start, end)` in samples, padded, in order, non-overlapping.
    pub fn speech_segments(&mut self, samples: &[f32], config: &VadConfig) -> Result<Vec<(usize, usize)>> {
        let probs = self.probabilities(samples)?;
        Ok(segments_from_probs(&probs, samples.len(), self.spec.window_samples, self.spec.sample_rate, config))
    }
}

/// Hysteresis segmentation of per-window probabilities, following Silero's
/// `get_speech_timestamps_from_probs` (without its maximum segment length):
/// speech starts at a window with `p >= threshold`; it ends where `p` first fell
/// below `threshold - offset` once that silence has lasted `min_silence_ms`;
/// segments not longer than `min_speech_ms` are dropped; then each segment is
/// padded by `speech_pad_ms` (or half the gap, when neighbours are closer).
pub fn segments_from_probs(probs: &[f32], len: usize, window: usize, rate: u32, config: &VadConfig) -> Vec<(usize, usize)> {
    let ms = |v: u32| (v as u64 * rate as u64 / 1000) as usize;
    let (min_speech, min_silence, pad) = (ms(config.min_speech_ms), ms(config.min_silence_ms), ms(config.speech_pad_ms));
    let neg = (config.threshold - config.neg_threshold_offset).max(0.01);
    let mut speeches: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut temp_end: Option<usize> = None;
    for (i, &p) in probs.iter().enumerate() {
        let at = i * window;
        if p >= config.threshold {
            temp_end = None;
            if start.is_none() {
                start = Some(at);
                continue;
            }
        }
        if let (true, Some(s)) = (p < neg, start) {
            let end = *temp_end.get_or_insert(at);
            if at - end >= min_silence {
                if end - s > min_speech {
                    speeches.push((s, end));
                }
                start = None;
                temp_end = None;
            }
        }
    }
    if let Some(s) = start {
        if len.saturating_sub(s) > min_speech {
            speeches.push((s, len));
        }
    }
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].0 = speeches[0].0.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = speeches[i + 1].0.saturating_sub(speeches[i].1);
            let shift = if gap < 2 * pad { gap / 2 } else { pad };
            speeches[i].1 = (speeches[i].1 + shift).min(len);
            speeches[i + 1].0 = speeches[i + 1].0.saturating_sub(shift);
        } else {
            speeches[i].1 = (speeches[i].1 + pad).min(len);
        }
    }
    speeches
}

/// Pack speech segments into spans of at most `window` samples that start and
/// end at segment boundaries (pauses); a segment longer than a window is cut
/// into window-sized pieces.
pub fn pack_segments(segments: &[(usize, usize)], window: usize) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in segments {
        let mut s = s;
        while e - s > window {
            spans.push((s, s + window));
            s += window;
        }
        match spans.last_mut() {
            Some(last) if e - last.0 <= window && s >= last.1 && last.1 - last.0 < window => last.1 = e,
            _ => spans.push((s, e)),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_trims_silence_and_drops_blips() {
        let cfg = VadConfig::default();
        // 16 kHz, 512-sample windows (32 ms): silence, 20 windows of speech, silence, a 2-window blip.
        let mut probs = vec![0.0; 10];
        probs.extend(vec![0.9; 20]);
        probs.extend(vec![0.0; 10]);
        probs.extend(vec![0.9; 2]);
        probs.extend(vec![0.0; 10]);
        let segs = segments_from_probs(&probs, probs.len() * 512, 512, 16000, &cfg);
        assert_eq!(segs, vec![(10 * 512 - 480, 30 * 512 + 480)]);
        assert!(segments_from_probs(&[0.0; 100], 51200, 512, 16000, &cfg).is_empty());
    }

    #[test]
    fn packing_breaks_at_pauses_and_cuts_long_segments() {
        assert_eq!(pack_segments(&[(0, 10), (20, 30), (40, 70)], 35), vec![(0, 30), (40, 70)]);
        assert_eq!(pack_segments(&[(0, 100)], 40), vec![(0, 40), (40, 80), (80, 100)]);
    }
}
