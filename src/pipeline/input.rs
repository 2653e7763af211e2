//! One media input of a request: a file, or data already in memory (an
//! upload to the server, an encoded image handed over the C ABI, a camera
//! frame, a microphone buffer). Every form goes through the same checks as a
//! file: the decoders' size limits before any pixel buffer is allocated,
//! sample rates and sample values within [`crate::limits`].

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::preprocess::{audio, image as image_pre, wav};

/// A media item of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaInput {
    /// A file: an image (PNG, JPEG, ...) or a WAV.
    File(PathBuf),
    /// The bytes of an encoded image or WAV; `name` labels it in errors.
    Encoded {
        /// What to call it in errors (an upload's file name, "image 1 of message 2").
        name: String,
        /// The file's bytes.
        bytes: Vec<u8>,
    },
    /// Raw 8-bit RGB pixels, `height` rows `stride` bytes apart.
    Rgb {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes from one row's start to the next (at least `width * 3`).
        stride: usize,
        /// The pixels.
        pixels: Vec<u8>,
    },
    /// Decoded video frames in display order (a live stream's latest window).
    Frames {
        /// What to call them in errors ("camera window 12").
        name: String,
        /// The frames, with their indices and times.
        frames: Vec<crate::video::VideoFrame>,
    },
    /// Mono audio samples in `[-1, 1]` at `sample_rate`.
    Pcm {
        /// Samples per second.
        sample_rate: u32,
        /// The samples.
        samples: Vec<f32>,
    },
}

impl MediaInput {
    /// What errors call this input: the file's path, or a description of the in-memory data.
    pub fn label(&self) -> PathBuf {
        match self {
            MediaInput::File(path) => path.clone(),
            MediaInput::Encoded { name, bytes } => PathBuf::from(format!("{name} ({} bytes in memory)", bytes.len())),
            MediaInput::Rgb { width, height, .. } => PathBuf::from(format!("raw RGB buffer {width}x{height}")),
            MediaInput::Pcm { sample_rate, samples } => PathBuf::from(format!("PCM buffer ({} samples at {sample_rate} Hz)", samples.len())),
            MediaInput::Frames { name, frames } => PathBuf::from(format!("{name} ({} frames)", frames.len())),
        }
    }

    /// The input as 8-bit RGB (images).
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let image_error = |source| Error::Image { path: self.label(), source };
        match self {
            MediaInput::File(path) => image_pre::load_image(path),
            MediaInput::Encoded { bytes, .. } => image_pre::decode_image(bytes).map_err(image_error),
            MediaInput::Rgb { width, height, stride, pixels } => image_pre::rgb_from_buffer(*width, *height, *stride, pixels).map_err(image_error),
            MediaInput::Pcm { .. } => Err(Error::Request(format!("{} is audio, given where an image is expected", self.label().display()))),
            MediaInput::Frames { .. } => Err(Error::Request(format!("{} is video, given where an image is expected", self.label().display()))),
        }
    }

    /// The input as mono samples resampled to `rate` (audio).
    pub fn to_samples(&self, rate: u32) -> Result<Vec<f32>> {
        let audio_error = |source| Error::Audio { path: self.label(), source };
        let wave = match self {
            MediaInput::File(path) => wav::read_wav(path).map_err(audio_error)?,
            MediaInput::Encoded { bytes, .. } => wav::decode_wav(bytes.as_slice()).map_err(audio_error)?,
            MediaInput::Pcm { sample_rate, samples } => {
                check_pcm(*sample_rate, samples).map_err(audio_error)?;
                wav::Waveform { samples: samples.clone(), sample_rate: *sample_rate }
            }
            MediaInput::Rgb { .. } => return Err(Error::Request(format!("{} is an image, given where audio is expected", self.label().display()))),
            MediaInput::Frames { .. } => return Err(Error::Request(format!("{} is video, given where audio is expected", self.label().display()))),
        };
        audio::resample(&wave.samples, wave.sample_rate, rate).map_err(audio_error)
    }
}

/// A PCM buffer's rate, length and values, held to the limits a WAV header's are.
fn check_pcm(sample_rate: u32, samples: &[f32]) -> std::result::Result<(), audio::AudioError> {
    use crate::limits::{max_audio_seconds, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(audio::AudioError::Unsupported(format!(
            "sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz (limits::MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)"
        )));
    }
    if samples.is_empty() {
        return Err(audio::AudioError::Empty);
    }
    let seconds = samples.len() as f64 / sample_rate as f64;
    let max_seconds = max_audio_seconds();
    if seconds > max_seconds {
        return Err(audio::AudioError::TooLong { seconds, frames: samples.len() as u64, rate: sample_rate, max_seconds });
    }
    if let Some(at) = samples.iter().position(|&x| !audio::sample_ok(x)) {
        return Err(audio::AudioError::Unsupported(format!(
            "sample {at} is {}; samples must be finite, within ±{} (limits::MAX_AUDIO_SAMPLE_ABS)",
            samples[at],
            crate::limits::MAX_AUDIO_SAMPLE_ABS
        )));
    }
    Ok(())
}

impl From<PathBuf> for MediaInput {
    fn from(path: PathBuf) -> Self {
        MediaInput::File(path)
    }
}

impl From<&Path> for MediaInput {
    fn from(path: &Path) -> Self {
        MediaInput::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for MediaInput {
    fn from(path: &PathBuf) -> Self {
        MediaInput::File(path.clone())
    }
}

impl From<&str> for MediaInput {
    fn from(path: &str) -> Self {
        MediaInput::File(PathBuf::from(path))
    }
}

impl From<String> for MediaInput {
    fn from(path: String) -> Self {
        MediaInput::File(PathBuf::from(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_buffer_with_stride_drops_padding() {
        // 2x2 pixels, rows padded to 8 bytes.
        let pixels: Vec<u8> = vec![1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12];
        let input = MediaInput::Rgb { width: 2, height: 2, stride: 8, pixels };
        assert_eq!(input.to_rgb().unwrap().into_raw(), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn short_or_narrow_rgb_buffers_are_refused() {
        let short = MediaInput::Rgb { width: 4, height: 4, stride: 12, pixels: vec![0; 47] };
        assert!(short.to_rgb().unwrap_err().to_string().contains("48 bytes needed"), "{}", short.to_rgb().unwrap_err());
        let narrow = MediaInput::Rgb { width: 4, height: 1, stride: 11, pixels: vec![0; 64] };
        assert!(narrow.to_rgb().unwrap_err().to_string().contains("stride 11"));
        let huge = MediaInput::Rgb { width: 1 << 20, height: 1, stride: 3 << 20, pixels: vec![] };
        assert!(huge.to_rgb().is_err());
    }

    #[test]
    fn pcm_is_checked_like_a_wav() {
        let bad_rate = MediaInput::Pcm { sample_rate: 10, samples: vec![0.0; 10] };
        assert!(bad_rate.to_samples(16_000).unwrap_err().to_string().contains("sample rate 10 Hz"));
        let nan = MediaInput::Pcm { sample_rate: 16_000, samples: vec![0.0, f32::NAN] };
        assert!(nan.to_samples(16_000).unwrap_err().to_string().contains("sample 1"));
        let ok = MediaInput::Pcm { sample_rate: 16_000, samples: vec![0.25; 160] };
        assert_eq!(ok.to_samples(16_000).unwrap().len(), 160);
    }

    #[test]
    fn encoded_garbage_names_the_input() {
        let input = MediaInput::Encoded { name: "upload.png".into(), bytes: b"not an image".to_vec() };
        let message = input.to_rgb().unwrap_err().to_string();
        assert!(message.contains("upload.png"), "{message}");
    }
}
