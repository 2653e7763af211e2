//! Text to speech: the modality generator of a voice bundle (a Piper VITS
//! voice). Text -> espeak-ng clauses -> Piper's sentences of phoneme ids ->
//! one graph call per sentence -> waveform, sentence by sentence so audio can
//! start before the whole text is synthesized (or even known: see
//! [`sentences::SentenceSplitter`]).
//!
//! Each sentence's audio is peak-normalized as Piper does by default; joins
//! between sentences get a short raised-cosine fade so no step in the waveform
//! clicks (the first sentence's start and the last one's end are left as the
//! graph made them, so one sentence equals Piper's output).

pub mod espeak;
pub mod sentences;
pub mod voice_config;

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use ort::session::Session;
use ort::value::TensorElementType;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::limits;
use crate::manifest::TextToSpeechStage;
use crate::runtime::{session, OrtRuntime, ProviderReport, SessionPlan};
use crate::stages::graph::StageLoader;
use crate::tensor;
pub use voice_config::{PhonemeSentence, VoiceConfig};

/// Piper's graph inputs and output.
const INPUT_IDS: &str = "input";
const INPUT_LENGTHS: &str = "input_lengths";
const INPUT_SCALES: &str = "scales";
const INPUT_SPEAKER: &str = "sid";
/// Length of the fade at a join between two sentences.
const JOIN_FADE_SECONDS: f32 = 0.004;

/// Per-request settings; `None` takes the voice's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeechSettings {
    /// Noise of the flow (0: no variation; the voice's default otherwise).
    pub noise_scale: Option<f32>,
    /// Phoneme duration factor (> 1 slower).
    pub length_scale: Option<f32>,
    /// Noise of the duration predictor.
    pub noise_w: Option<f32>,
    /// Speaker of a multi-speaker voice.
    pub speaker: Option<i64>,
    /// Keep the graph's amplitude instead of peak-normalizing each sentence.
    pub raw_amplitude: bool,
}

/// One synthesized sentence.
#[derive(Debug, Clone)]
pub struct SpeechChunk {
    /// Position among the text's sentences.
    pub index: usize,
    /// Its phonemes and ids.
    pub sentence: PhonemeSentence,
    /// Samples in [-1, 1] at [`Voice::sample_rate`].
    pub samples: Vec<f32>,
    /// Milliseconds in the graph.
    pub synth_ms: f64,
}

/// A voice's text front end: espeak-ng with the voice's data and phoneme ids
/// (no graph: phonemizing needs no ONNX Runtime).
pub struct Phonemizer {
    name: String,
    config: VoiceConfig,
    espeak_data: PathBuf,
}

impl Phonemizer {
    /// The phonemizer of a voice bundle's `text_to_speech` stage.
    pub fn open(bundle: &Bundle) -> Result<Phonemizer> {
        let stage = voice_stage(bundle)?;
        let config = read_config(bundle, stage)?;
        let espeak_data = bundle.resolve_dir(&stage.espeak_data)?;
        Ok(Phonemizer { name: stage.name.clone(), config, espeak_data })
    }

    /// The voice config.
    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    /// Text -> Piper's sentences of phonemes and ids.
    pub fn phonemize(&self, text: &str) -> Result<Vec<PhonemeSentence>> {
        check_text(text)?;
        let clauses = espeak::phonemize(&self.espeak_data, &self.config.espeak.voice, text)?;
        let sentences = self.config.sentences(&clauses);
        for s in &sentences {
            if !s.unknown.is_empty() {
                log::warn!("voice {}: no id for phonemes {:?} (skipped, as Piper does)", self.name, s.unknown);
            }
            if s.ids.len() > limits::MAX_PHONEME_IDS {
                return Err(Error::Request(format!(
                    "a sentence of {} phoneme ids is longer than the {} a voice takes (limits::MAX_PHONEME_IDS); \
                     split it with punctuation",
                    s.ids.len(),
                    limits::MAX_PHONEME_IDS
                )));
            }
        }
        Ok(sentences)
    }
}

fn voice_stage(bundle: &Bundle) -> Result<&TextToSpeechStage> {
    bundle.manifest.text_to_speech().ok_or_else(|| Error::Manifest {
        path: bundle.manifest_path(),
        message: "not a voice bundle: it has no `text_to_speech` stage".into(),
    })
}

/// A loaded voice.
pub struct Voice {
    name: String,
    session: Session,
    /// The graph's audio output (its first).
    output: String,
    phonemizer: Phonemizer,
    has_speaker_input: bool,
    provider: ProviderReport,
}

impl Voice {
    /// Open the `text_to_speech` stage of a voice bundle.
    pub fn open(runtime: &OrtRuntime, bundle: &Bundle, sessions: &SessionPlan) -> Result<Voice> {
        let phonemizer = Phonemizer::open(bundle)?;
        let stage = voice_stage(bundle)?;
        let plan = sessions.for_manifest(&bundle.manifest)?;
        let loader = StageLoader::new(runtime, bundle, &plan);
        let graph = loader.open(&stage.name, &stage.graph)?;
        let provider = loader.provider_report();
        let session = graph.into_session();
        let has_speaker_input = check_graph(&session, &stage.name, &phonemizer.config)?;
        let output = session.outputs()[0].name().to_string();
        Ok(Voice { name: stage.name.clone(), session, output, phonemizer, has_speaker_input, provider })
    }

    /// Output samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.phonemizer.config.audio.sample_rate
    }

    /// The voice config.
    pub fn config(&self) -> &VoiceConfig {
        &self.phonemizer.config
    }

    /// Which execution provider runs the graph.
    pub fn provider(&self) -> &ProviderReport {
        &self.provider
    }

    /// Text -> Piper's sentences of phonemes and ids.
    pub fn phonemize(&self, text: &str) -> Result<Vec<PhonemeSentence>> {
        self.phonemizer.phonemize(text)
    }

    /// The scales `[noise, length, noise_w]` and speaker a request resolves to.
    pub fn resolve(&self, settings: &SpeechSettings) -> Result<([f32; 3], Option<i64>)> {
        let config = self.config();
        let d = &config.inference;
        let scales = [
            settings.noise_scale.unwrap_or(d.noise_scale),
            settings.length_scale.unwrap_or(d.length_scale),
            settings.noise_w.unwrap_or(d.noise_w),
        ];
        for (name, v) in ["noise scale", "length scale", "noise_w scale"].iter().zip(scales) {
            voice_config::check_scale(name, v).map_err(Error::Request)?;
        }
        if scales[1] == 0.0 {
            return Err(Error::Request("length scale must be above 0 (it multiplies every phoneme's duration)".into()));
        }
        let speaker = match (settings.speaker, config.num_speakers) {
            (None, 1) => None,
            (None, _) => Some(config.default_speaker_id),
            (Some(s), n) if n > 1 && (0..n as i64).contains(&s) => Some(s),
            (Some(s), n) => {
                return Err(Error::Request(format!("speaker {s} does not exist: the voice has {n} speaker(s)")));
            }
        };
        Ok((scales, speaker))
    }

    /// One sentence's ids -> the graph's raw samples (before normalization).
    pub fn synthesize_ids(&mut self, ids: &[i64], settings: &SpeechSettings) -> Result<Vec<f32>> {
        let (scales, speaker) = self.resolve(settings)?;
        self.run_graph(ids, scales, speaker)
    }

    /// The graph on one sentence's ids with resolved scales and speaker.
    fn run_graph(&mut self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>) -> Result<Vec<f32>> {
        let stage = self.name.as_str();
        let ids_value = tensor::int_value(&[1, ids.len()], ids.to_vec(), TensorElementType::Int64, stage, INPUT_IDS)?;
        let lengths = tensor::int_value(&[1], vec![ids.len() as i64], TensorElementType::Int64, stage, INPUT_LENGTHS)?;
        let scales = tensor::float_value(ArrayD::from_shape_vec(IxDyn(&[3]), scales.to_vec()).expect("3"), TensorElementType::Float32, stage, INPUT_SCALES)?;
        let mut inputs = vec![(INPUT_IDS.into(), ids_value.into()), (INPUT_LENGTHS.into(), lengths.into()), (INPUT_SCALES.into(), scales.into())];
        if self.has_speaker_input {
            let sid = speaker.unwrap_or(self.config().default_speaker_id);
            inputs.push((INPUT_SPEAKER.into(), tensor::int_value(&[1], vec![sid], TensorElementType::Int64, stage, INPUT_SPEAKER)?.into()));
        }
        let mut out = crate::stages::graph::run_named(&mut self.session, stage, inputs, &[&self.output])?;
        let audio = tensor::to_f32_array(&out.remove(0), stage, &self.output)?;
        if audio.len() > limits::MAX_AUDIO_SECONDS as usize * self.sample_rate() as usize {
            return Err(Error::stage(stage, "checking the output", format!("{} samples is more than limits::MAX_AUDIO_SECONDS", audio.len())));
        }
        Ok(audio.into_raw_vec_and_offset().0)
    }

    /// Synthesize `text` sentence by sentence, handing each chunk to `on_chunk`
    /// as soon as it is ready (joins already faded); returns the sentence count.
    pub fn speak(&mut self, text: &str, settings: &SpeechSettings, mut on_chunk: impl FnMut(SpeechChunk) -> Result<()>) -> Result<usize> {
        let (scales, speaker) = self.resolve(settings)?;
        let sentences = self.phonemize(text)?;
        if sentences.is_empty() {
            return Err(Error::Request(format!("the text {:?} has nothing to say (espeak-ng found no phonemes in it)", preview(text))));
        }
        let count = sentences.len();
        let fade = (JOIN_FADE_SECONDS * self.sample_rate() as f32) as usize;
        for (index, sentence) in sentences.into_iter().enumerate() {
            let start = Instant::now();
            let mut samples = self.run_graph(&sentence.ids, scales, speaker)?;
            if !settings.raw_amplitude {
                peak_normalize(&mut samples);
            }
            if index > 0 {
                fade_in(&mut samples, fade);
            }
            if index + 1 < count {
                fade_out(&mut samples, fade);
            }
            let synth_ms = start.elapsed().as_secs_f64() * 1e3;
            on_chunk(SpeechChunk { index, sentence, samples, synth_ms })?;
        }
        Ok(count)
    }
}

fn read_config(bundle: &Bundle, stage: &TextToSpeechStage) -> Result<VoiceConfig> {
    let path = bundle.resolve(&stage.voice)?;
    let bytes = limits::read_bounded(&path, limits::MAX_SMALL_JSON_BYTES, "voice config").map_err(|e| Error::io(&path, e))?;
    let config: VoiceConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Manifest { path: path.clone(), message: format!("voice config: {e}") })?;
    config.validate().map_err(|message| Error::Manifest { path, message: format!("voice config: {message}") })?;
    Ok(config)
}

/// The graph must take Piper's inputs; returns whether it has a speaker input,
/// which must agree with the config's speaker count.
fn check_graph(session: &Session, stage: &str, config: &VoiceConfig) -> Result<bool> {
    for name in [INPUT_IDS, INPUT_LENGTHS] {
        let t = session::input_type(session, stage, name)?;
        if t != TensorElementType::Int64 {
            return Err(Error::Tensor { stage: stage.into(), tensor: name.into(), expected: "int64".into(), found: format!("{t:?}") });
        }
    }
    let t = session::input_type(session, stage, INPUT_SCALES)?;
    if t != TensorElementType::Float32 {
        return Err(Error::Tensor { stage: stage.into(), tensor: INPUT_SCALES.into(), expected: "float32".into(), found: format!("{t:?}") });
    }
    let has_speaker = session.inputs().iter().any(|i| i.name() == INPUT_SPEAKER);
    if has_speaker != (config.num_speakers > 1) {
        return Err(Error::Tensor {
            stage: stage.into(),
            tensor: INPUT_SPEAKER.into(),
            expected: format!("a speaker input exactly when the voice config has several speakers (num_speakers {})", config.num_speakers),
            found: if has_speaker { "a `sid` input".into() } else { "no `sid` input".into() },
        });
    }
    if session.outputs().is_empty() {
        return Err(Error::stage(stage, "opening the voice", "the graph has no output"));
    }
    Ok(has_speaker)
}

fn check_text(text: &str) -> Result<()> {
    if text.len() > limits::MAX_TTS_TEXT_BYTES {
        return Err(Error::Request(format!(
            "the text is {} bytes, more than the {} one request may speak (limits::MAX_TTS_TEXT_BYTES); send it in parts",
            text.len(),
            limits::MAX_TTS_TEXT_BYTES
        )));
    }
    if text.trim().is_empty() {
        return Err(Error::Request("there is no text to speak".into()));
    }
    Ok(())
}

fn preview(text: &str) -> String {
    let mut p: String = text.chars().take(40).collect();
    if p.len() < text.len() {
        p.push('…');
    }
    p
}

/// Divide by the largest magnitude (silence stays silence), as Piper's `normalize_audio`.
fn peak_normalize(samples: &mut [f32]) {
    let peak = samples.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if peak < 1e-8 {
        samples.iter_mut().for_each(|x| *x = 0.0);
    } else {
        samples.iter_mut().for_each(|x| *x = (*x / peak).clamp(-1.0, 1.0));
    }
}

/// Raised-cosine gain from 0 to 1 over `i / n`.
fn ramp(i: usize, n: usize) -> f32 {
    0.5 - 0.5 * (std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos()
}

fn fade_in(samples: &mut [f32], n: usize) {
    let n = n.min(samples.len());
    for (i, x) in samples[..n].iter_mut().enumerate() {
        *x *= ramp(i, n);
    }
}

fn fade_out(samples: &mut [f32], n: usize) {
    let len = samples.len();
    let n = n.min(len);
    for i in 0..n {
        samples[len - 1 - i] *= ramp(i, n);
    }
}

/// Append `next` to `samples`, fading both sides of the join (the voice's
/// sentences run separately: a step between them would click).
pub fn append_joined(samples: &mut Vec<f32>, mut next: Vec<f32>, sample_rate: u32) {
    let fade = (JOIN_FADE_SECONDS * sample_rate as f32) as usize;
    if !samples.is_empty() {
        fade_out(samples, fade);
        fade_in(&mut next, fade);
    }
    samples.extend_from_slice(&next);
}

/// Samples -> 16-bit PCM as Piper writes it: `clip(x * 32767)` truncated toward zero.
pub fn to_pcm16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|&x| (x * 32767.0).clamp(-32767.0, 32767.0) as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fades_reach_zero_at_the_join_and_keep_the_middle() {
        let mut s = vec![1.0f32; 100];
        fade_in(&mut s, 10);
        fade_out(&mut s, 10);
        assert!(s[0] < 0.03 && s[99] < 0.03);
        assert_eq!(s[50], 1.0);
        assert!(s.windows(2).take(10).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn normalization_and_pcm_follow_piper() {
        let mut s = vec![0.25f32, -0.5, 0.1];
        peak_normalize(&mut s);
        assert_eq!(s, [0.5, -1.0, 0.2]);
        assert_eq!(to_pcm16(&s), [16383, -32767, 6553]);
        let mut quiet = vec![1e-9f32; 3];
        peak_normalize(&mut quiet);
        assert_eq!(quiet, [0.0; 3]);
    }
}
