//! WAV decoding for the audio modality: a RIFF/WAVE file → mono `f32` samples
//! in `[-1, 1]` plus the file's sample rate. PCM 8/16/24/32-bit integer and
//! 32-bit float, any channel count (channels are averaged), `WAVE_FORMAT_PCM`,
//! `WAVE_FORMAT_IEEE_FLOAT` and `WAVE_FORMAT_EXTENSIBLE` headers (via `hound`).
//!
//! Every failure is an [`AudioError`] saying what was expected and found;
//! [`crate::Error::Audio`] adds the file.

use std::io::Read;
use std::path::Path;

use super::audio::AudioError;

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
    let file = std::fs::File::open(path).map_err(|e| AudioError::Io(e.to_string()))?;
    decode_wav(std::io::BufReader::new(file))
}

/// Decode WAV bytes from any reader.
pub fn decode_wav<R: Read>(mut reader: R) -> Result<Waveform, AudioError> {
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
    let channels = spec.channels as usize;
    let declared = wav.len() as usize;
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => collect(wav.into_samples::<f32>(), declared, |s| s)?,
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            collect(wav.into_samples::<i32>(), declared, |s| (s as f64 * scale) as f32)?
        }
        (format, bits) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit {} samples (supported: PCM 8/16/24/32-bit integer and 32-bit float)",
                if format == hound::SampleFormat::Float { "float" } else { "integer" }
            )))
        }
    };
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect()
    };
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(Waveform { samples, sample_rate: spec.sample_rate })
}

fn collect<S, I: Iterator<Item = hound::Result<S>>>(iter: I, declared: usize, f: impl Fn(S) -> f32) -> Result<Vec<f32>, AudioError> {
    let mut out = Vec::with_capacity(declared.min(1 << 28));
    for (i, s) in iter.enumerate() {
        match s {
            Ok(v) => out.push(f(v)),
            // A read failure inside the data chunk means the file ends early.
            Err(hound::Error::IoError(_)) => return Err(AudioError::Truncated { declared, found: i }),
            Err(e) => return Err(sample_error(e, declared, i)),
        }
    }
    if out.len() < declared {
        return Err(AudioError::Truncated { declared, found: out.len() });
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
