//! WAV decoding for the audio modality: a RIFF/WAVE file → mono `f32` samples
//! in `[-1, 1]` plus the file's sample rate. PCM 8/16/24/32-bit integer and
//! 32-bit float, any channel count (channels are averaged), `WAVE_FORMAT_PCM`,
//! `WAVE_FORMAT_IEEE_FLOAT` and `WAVE_FORMAT_EXTENSIBLE` headers (via `hound`).
//!
//! Untrusted headers are bounded before any sample is read: the sample rate
//! must lie in [`limits::MIN_SAMPLE_RATE`]`..=`[`limits::MAX_SAMPLE_RATE`], the
//! channel count within [`limits::MAX_AUDIO_CHANNELS`], and the declared
//! duration within [`limits::max_audio_seconds`] (one hour unless
//! `MMRT_MAX_AUDIO_SECONDS` says otherwise). Float samples must be finite and
//! within [`limits::MAX_AUDIO_SAMPLE_ABS`]: a NaN, an infinity or a huge value
//! is an error naming its position, never passed on to the resampler or the
//! spectrogram. The file must be a regular file.
//!
//! Every failure is an [`AudioError`] saying what was expected and found;
//! [`crate::Error::Audio`] adds the file.

use std::io::Read;
use std::path::Path;

use super::audio::AudioError;
use crate::limits;

/// Decoded audio: mono samples and their rate.
#[derive(Debug, Clone)]
pub struct Waveform {
    /// Mono samples in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl Waveform {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Read a WAV file (see the module docs for what is accepted).
pub fn read_wav(path: &Path) -> Result<Waveform, AudioError> {
    let file = limits::open_regular(path, "a WAV input").map_err(|e| AudioError::Io(e.to_string()))?;
    decode_wav(std::io::BufReader::new(file))
}

/// Check a WAV file as [`read_wav`] would read it (header, limits, every
/// sample finite and present) without keeping the samples: a cheap way to
/// refuse bad audio before any model is loaded. Returns the duration in seconds.
pub fn validate_wav(path: &Path) -> Result<f64, AudioError> {
    let file = limits::open_regular(path, "a WAV input").map_err(|e| AudioError::Io(e.to_string()))?;
    decode(std::io::BufReader::new(file), false).map(|(_, seconds)| seconds)
}

/// Decode WAV bytes from any reader.
pub fn decode_wav<R: Read>(reader: R) -> Result<Waveform, AudioError> {
    decode(reader, true).map(|(wave, _)| wave)
}

/// Decode (`keep`: keep the mono samples) and return the waveform and its duration in seconds.
fn decode<R: Read>(mut reader: R, keep: bool) -> Result<(Waveform, f64), AudioError> {
    // Look at the magic ourselves so "not a WAV" is reported as such, not as a parser detail.
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(AudioError::Io(e.to_string())),
        }
    }
    if got == 0 {
        return Err(AudioError::NotWav { found: "an empty file (0 bytes)".into() });
    }
    if got < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(AudioError::NotWav { found: describe_bytes(&head[..got]) });
    }
    let wav = hound::WavReader::new(std::io::Cursor::new(head).chain(reader)).map_err(header_error)?;
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(AudioError::Unsupported("the header declares 0 channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(AudioError::Unsupported("the header declares a sample rate of 0 Hz".into()));
    }
    check_rate(spec.sample_rate)?;
    if spec.channels > limits::MAX_AUDIO_CHANNELS {
        return Err(AudioError::Unsupported(format!(
            "{} channels (at most {}, limits::MAX_AUDIO_CHANNELS)",
            spec.channels,
            limits::MAX_AUDIO_CHANNELS
        )));
    }
    let channels = spec.channels as usize;
    let declared = wav.len() as usize;
    let seconds = wav.duration() as f64 / spec.sample_rate as f64;
    let max_seconds = limits::max_audio_seconds();
    if seconds > max_seconds {
        return Err(AudioError::TooLong { seconds, frames: wav.duration() as u64, rate: spec.sample_rate, max_seconds });
    }
    let samples = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            downmix(wav.into_samples::<f32>(), declared, channels, keep, |s, i| {
                if super::audio::sample_ok(s) {
                    Ok(s)
                } else {
                    Err(AudioError::NonFinite { index: i, value: s })
                }
            })?
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            downmix(wav.into_samples::<i32>(), declared, channels, keep, |s, _| Ok((s as f64 * scale) as f32))?
        }
        (format, bits) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit {} samples (supported: PCM 8/16/24/32-bit integer and 32-bit float)",
                if format == hound::SampleFormat::Float { "float" } else { "integer" }
            )))
        }
    };
    if declared / channels == 0 {
        return Err(AudioError::Empty);
    }
    Ok((Waveform { samples, sample_rate: spec.sample_rate }, seconds))
}

/// A WAV header's sample rate within [`limits::MIN_SAMPLE_RATE`]..=[`limits::MAX_SAMPLE_RATE`].
fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (limits::MIN_SAMPLE_RATE..=limits::MAX_SAMPLE_RATE).contains(&rate) {
        return Ok(());
    }
    Err(AudioError::Unsupported(format!(
        "a sample rate of {rate} Hz (accepted: {}..={} Hz, limits::MIN_SAMPLE_RATE / MAX_SAMPLE_RATE)",
        limits::MIN_SAMPLE_RATE,
        limits::MAX_SAMPLE_RATE
    )))
}

/// Read all `declared` interleaved samples, converting each with `f` (which
/// may refuse one), and average every frame of `channels` samples into one
/// mono sample as they arrive (the interleaved data is never held whole).
/// The sum runs in f32 in channel order, then one division, so the result is
/// the same as summing a whole frame at once. With `keep` false nothing is stored.
fn downmix<S, I: Iterator<Item = hound::Result<S>>>(
    iter: I,
    declared: usize,
    channels: usize,
    keep: bool,
    f: impl Fn(S, usize) -> Result<f32, AudioError>,
) -> Result<Vec<f32>, AudioError> {
    // The header's count is only a hint until the samples are there: grow from a modest start.
    let mut out = Vec::with_capacity(if keep { (declared / channels).min(1 << 20) } else { 0 });
    // -0.0, as `Iterator::sum` of f32 starts (so all -0.0 stays -0.0).
    let (mut sum, mut in_frame) = (-0.0f32, 0);
    let mut read = 0;
    for (i, s) in iter.enumerate() {
        let v = match s {
            Ok(v) => f(v, i)?,
            // A read failure inside the data chunk means the file ends early.
            Err(hound::Error::IoError(_)) => return Err(AudioError::Truncated { declared, found: i }),
            Err(e) => return Err(sample_error(e, declared, i)),
        };
        read = i + 1;
        if !keep {
            continue;
        }
        if channels == 1 {
            out.push(v);
            continue;
        }
        sum += v;
        in_frame += 1;
        if in_frame == channels {
            out.push(sum / channels as f32);
            (sum, in_frame) = (-0.0, 0);
        }
    }
    if read < declared {
        return Err(AudioError::Truncated { declared, found: read });
    }
    Ok(out)
}

fn header_error(e: hound::Error) -> AudioError {
    match e {
        hound::Error::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt("the header is cut short (file truncated)".into())
        }
        hound::Error::Unsupported => AudioError::Unsupported(
            "an encoding other than PCM or IEEE float (e.g. A-law, mu-law, ADPCM, MP3-in-WAV)".into(),
        ),
        hound::Error::FormatError(m) => AudioError::Corrupt(m.into()),
        other => AudioError::Corrupt(other.to_string()),
    }
}

fn sample_error(e: hound::Error, declared: usize, at: usize) -> AudioError {
    match e {
        hound::Error::UnfinishedSample => AudioError::Truncated { declared, found: at },
        other => AudioError::Corrupt(format!("at sample {at}: {other}")),
    }
}

fn describe_bytes(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let text: String = bytes.iter().take(8).map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
    format!("bytes {} (\"{text}\"), not \"RIFF....WAVE\"", hex.join(" "))
}
