//! Audio preprocessing for the audio modality encoder (Whisper-style):
//! waveform → resample to the encoder's rate → split into windows of
//! `chunk_seconds` → per window, the log-mel spectrogram `[n_mels, frames]`
//! that the encoder's `input_features [n, n_mels, frames]` expects.
//!
//! Pure functions, no ONNX Runtime. The reference is `transformers`'
//! `WhisperFeatureExtractor` (numpy path), reproduced step by step:
//! 1. the window's samples are zero-padded (or cut) to `chunk_seconds * sample_rate`;
//! 2. reflect-pad `n_fft / 2` on both sides, frames every `hop_length` samples,
//!    periodic Hann window of `n_fft`, power spectrum (`|rfft|²`);
//! 3. Slaney-normalized mel filter bank on the Slaney mel scale, `0 ..= rate / 2` Hz;
//! 4. `log10(max(mel, 1e-10))`, the last frame dropped, then
//!    `max(x, max(x) - 8)` and `(x + 4) / 4`.
//!
//! Resampling uses `rubato`'s synchronous FFT resampler (band-limited, exact
//! rational ratio), delay-compensated so output sample 0 is input time 0.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::manifest::AudioPreprocess;

/// Why audio could not be read or preprocessed. [`crate::Error::Audio`] adds the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The bytes are not a RIFF/WAVE file.
    #[error("not a WAV file: found {found}")]
    NotWav {
        /// What the leading bytes are.
        found: String,
    },
    /// The header is damaged.
    #[error("corrupt WAV data: {0}")]
    Corrupt(String),
    /// The data chunk ends before the samples the header declares.
    #[error("truncated WAV: the header declares {declared} samples but the file holds {found}")]
    Truncated {
        /// Samples (all channels) the header declares.
        declared: usize,
        /// Complete samples present.
        found: usize,
    },
    /// An encoding or layout this reader does not handle.
    #[error("unsupported WAV encoding: {0}")]
    Unsupported(String),
    /// No samples at all.
    #[error("the audio holds no samples (zero length); expected speech")]
    Empty,
    /// The header declares more audio than [`crate::limits::max_audio_seconds`] allows.
    #[error(
        "the header declares {seconds:.1} s of audio ({frames} samples at {rate} Hz), longer than the limit of {max_seconds} s \
         (limits::MAX_AUDIO_SECONDS; split the file, or raise the limit with MMRT_MAX_AUDIO_SECONDS=<seconds>)"
    )]
    TooLong {
        /// Declared duration.
        seconds: f64,
        /// Declared samples per channel.
        frames: u64,
        /// Declared sample rate.
        rate: u32,
        /// The limit in force.
        max_seconds: f64,
    },
    /// A sample is NaN, infinite or beyond [`crate::limits::MAX_AUDIO_SAMPLE_ABS`]
    /// (float WAV); such data is refused, not passed on.
    #[error("sample {index} is {value}: audio samples must be finite numbers within ±{} (limits::MAX_AUDIO_SAMPLE_ABS)", crate::limits::MAX_AUDIO_SAMPLE_ABS)]
    NonFinite {
        /// Index of the sample (interleaved, all channels) in the data.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// The resampler refused the rates.
    #[error("cannot resample from {from} Hz to {to} Hz: {message}")]
    Resample {
        /// Source rate.
        from: u32,
        /// Target rate.
        to: u32,
        /// The resampler's message.
        message: String,
    },
    /// The manifest's audio settings cannot describe a spectrogram.
    #[error("invalid audio preprocessing: {0}")]
    Settings(String),
}

/// Resample mono `samples` from `from` Hz to `to` Hz (identity when equal).
/// The output has `round(len * to / from)` samples.
///
/// Both rates must lie within [`crate::limits::MIN_SAMPLE_RATE`]`..=`
/// [`crate::limits::MAX_SAMPLE_RATE`] and every sample must pass [`sample_ok`]
/// (checked here before the resampler sees anything: its FFT panics on NaN,
/// and huge finite values overflow into NaN).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    use rubato::{FftFixedIn, Resampler};
    if let Some(index) = samples.iter().position(|x| !sample_ok(*x)) {
        return Err(AudioError::NonFinite { index, value: samples[index] });
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| AudioError::Resample { from, to, message: e.to_string() };
    let range = crate::limits::MIN_SAMPLE_RATE..=crate::limits::MAX_SAMPLE_RATE;
    if !range.contains(&from) || !range.contains(&to) {
        return Err(err(&format!(
            "rates must lie within {}..={} Hz (limits::MIN_SAMPLE_RATE / MAX_SAMPLE_RATE)",
            range.start(),
            range.end()
        )));
    }
    let ratio = to as f64 / from as f64;
    const CHUNK: usize = 4096;
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).map_err(|e| err(&e))?;
    let delay = resampler.output_delay();
    let want = (samples.len() as f64 * ratio).round() as usize;
    let mut out: Vec<f32> = Vec::with_capacity(want + delay + 2 * CHUNK);
    let mut pos = 0;
    while samples.len() - pos >= resampler.input_frames_next() {
        let n = resampler.input_frames_next();
        let chunk = resampler.process(&[&samples[pos..pos + n]], None).map_err(|e| err(&e))?;
        out.extend_from_slice(&chunk[0]);
        pos += n;
    }
    if pos < samples.len() {
        let chunk = resampler.process_partial(Some(&[&samples[pos..]]), None).map_err(|e| err(&e))?;
        out.extend_from_slice(&chunk[0]);
    }
    while out.len() < delay + want {
        let chunk = resampler.process_partial::<&[f32]>(None, None).map_err(|e| err(&e))?;
        if chunk[0].is_empty() {
            break;
        }
        out.extend_from_slice(&chunk[0]);
    }
    out.truncate(delay + want);
    out.drain(..delay.min(out.len()));
    out.resize(want, 0.0);
    Ok(out)
}

/// Whether an audio sample is acceptable input: finite, within
/// [`crate::limits::MAX_AUDIO_SAMPLE_ABS`] (NaN fails the comparison).
pub fn sample_ok(x: f32) -> bool {
    x.abs() <= crate::limits::MAX_AUDIO_SAMPLE_ABS
}

/// Split samples into consecutive windows of at most `window` samples (the
/// last one shorter); at least one window for non-empty input.
pub fn windows(samples: &[f32], window: usize) -> Vec<&[f32]> {
    samples.chunks(window.max(1)).collect()
}

/// Hertz → mel on the Slaney scale (linear below 1 kHz, logarithmic above).
pub fn hz_to_mel_slaney(hz: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 27.0 / 6.4f64.ln();
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

/// Mel → hertz on the Slaney scale.
pub fn mel_to_hz_slaney(mel: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * ((mel - MIN_LOG_MEL) * logstep).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// Slaney-normalized triangular mel filters, `[n_mels][n_fft / 2 + 1]`,
/// spanning 0 Hz to `sample_rate / 2` (as `transformers.audio_utils.mel_filter_bank`
/// with `norm="slaney", mel_scale="slaney"`).
pub fn mel_filters(n_fft: usize, n_mels: usize, sample_rate: u32) -> Vec<Vec<f64>> {
    let n_freqs = n_fft / 2 + 1;
    let nyquist = (sample_rate / 2) as f64;
    let (mel_min, mel_max) = (hz_to_mel_slaney(0.0), hz_to_mel_slaney(nyquist));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz_slaney(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_freqs: Vec<f64> = (0..n_freqs).map(|i| nyquist * i as f64 / (n_freqs - 1) as f64).collect();
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let enorm = 2.0 / (hi - lo);
            fft_freqs
                .iter()
                .map(|&f| {
                    let down = (f - lo) / (mid - lo);
                    let up = (hi - f) / (hi - mid);
                    down.min(up).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}

/// Log-mel spectrogram computer for one [`AudioPreprocess`] setting; holds the
/// FFT plan, window and filter bank so windows are processed without re-planning.
pub struct LogMel {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    window_samples: usize,
    frames: usize,
    hann: Vec<f64>,
    /// Per mel bin: first nonzero frequency bin and the weights from there.
    filters: Vec<(usize, Vec<f64>)>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl LogMel {
    /// Plan for `settings`; errors when the settings cannot describe a spectrogram.
    pub fn new(settings: &AudioPreprocess) -> Result<Self, AudioError> {
        let bad = |m: String| Err(AudioError::Settings(m));
        if settings.n_fft < 2 || settings.hop_length == 0 || settings.n_mels == 0 || settings.sample_rate == 0 {
            return bad(format!(
                "n_fft {} (>= 2), hop_length {} (>= 1), n_mels {} (>= 1) and sample_rate {} (>= 1) are required",
                settings.n_fft, settings.hop_length, settings.n_mels, settings.sample_rate
            ));
        }
        if !(settings.chunk_seconds.is_finite() && settings.chunk_seconds > 0.0) {
            return bad(format!("chunk_seconds must be positive, found {}", settings.chunk_seconds));
        }
        use crate::limits::{MAX_AUDIO_WINDOW_SECONDS, MAX_N_FFT, MAX_N_MELS, MAX_SAMPLE_RATE};
        if settings.n_fft > MAX_N_FFT
            || settings.n_mels > MAX_N_MELS
            || settings.sample_rate > MAX_SAMPLE_RATE
            || settings.chunk_seconds > MAX_AUDIO_WINDOW_SECONDS
        {
            return bad(format!(
                "n_fft {} (<= {MAX_N_FFT}), n_mels {} (<= {MAX_N_MELS}), sample_rate {} (<= {MAX_SAMPLE_RATE}) and \
                 chunk_seconds {} (<= {MAX_AUDIO_WINDOW_SECONDS}) must lie within the limits (see limits.rs)",
                settings.n_fft, settings.n_mels, settings.sample_rate, settings.chunk_seconds
            ));
        }
        let window_samples = (settings.chunk_seconds as f64 * settings.sample_rate as f64).round() as usize;
        if window_samples < settings.n_fft {
            return bad(format!("a window of {window_samples} samples is shorter than n_fft {}", settings.n_fft));
        }
        let n = settings.n_fft;
        let frames_per_window = window_samples / settings.hop_length;
        if let Err(m) = crate::limits::check_log_mel(frames_per_window, settings.n_mels, n) {
            return bad(m);
        }
        // Periodic Hann, as numpy's hanning(n + 1)[:-1].
        let hann = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect();
        let filters = mel_filters(n, settings.n_mels, settings.sample_rate)
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        // Frames of the padded window: 1 + window / hop after centering, minus the dropped last one.
        let frames = window_samples / settings.hop_length;
        Ok(Self {
            n_fft: n,
            hop: settings.hop_length,
            n_mels: settings.n_mels,
            window_samples,
            frames,
            hann,
            filters,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(n),
        })
    }

    /// Samples per window (`chunk_seconds * sample_rate`).
    pub fn window_samples(&self) -> usize {
        self.window_samples
    }

    /// Frames per window (the encoder's `frames` axis).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel features of one window of at most [`Self::window_samples`]
    /// samples (zero-padded; longer input is cut), written row-major as
    /// `[n_mels, frames]` into `out` (cleared first).
    pub fn compute_into(&self, samples: &[f32], out: &mut Vec<f32>) {
        let (n, half) = (self.n_fft, self.n_fft / 2);
        let len = self.window_samples;
        let used = samples.len().min(len);
        // Padded window sample at index i (may be out of range: reflect, then zero).
        let at = |i: isize| -> f64 {
            let j = if i < 0 { -i } else if i as usize >= len { 2 * (len as isize - 1) - i } else { i } as usize;
            if j < used { samples[j] as f64 } else { 0.0 }
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; spectrum.len()];
        let mut mel = vec![0.0f64; self.n_mels * self.frames];
        for frame in 0..self.frames {
            let start = (frame * self.hop) as isize - half as isize;
            for (k, x) in input.iter_mut().enumerate() {
                *x = at(start + k as isize) * self.hann[k];
            }
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).expect("buffers from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let e: f64 = weights.iter().zip(&power[*first..]).map(|(w, p)| w * p).sum();
                mel[m * self.frames + frame] = e.max(1e-10).log10();
            }
        }
        let _ = n;
        let max = mel.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        out.clear();
        out.extend(mel.iter().map(|&x| ((x.max(max - 8.0) + 4.0) / 4.0) as f32));
    }

    /// Log-mel features of one window as a new `[n_mels * frames]` vector.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n_mels * self.frames);
        self.compute_into(samples, &mut out);
        out
    }
}
