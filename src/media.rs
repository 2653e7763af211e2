//! Generated media: the decoder graph's float tensor turned into pixels or
//! samples, and written as a file (PNG for images, 16-bit PCM WAV for audio);
//! a consistency generator's sample turned into a [`HeightMap`] (16-bit
//! grayscale PNG plus the raw float32 heights).
//!
//! Conversion follows diffusers' post-processing: map the manifest's
//! `value_range` to [0, 1], clamp, then `round(x * 255)` (ties to even, as
//! numpy rounds) for 8-bit pixels; audio is clamped to [-1, 1] and scaled to i16.

use std::path::{Path, PathBuf};

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::manifest::{HeightMapTransform, MediaOutput, Modality};

/// A generated media item, in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    /// 8-bit pixels, row-major, `channels` per pixel (1 gray, 3 RGB, 4 RGBA).
    Image {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
        /// Channels per pixel.
        channels: u8,
        /// `[height, width, channels]` bytes.
        pixels: Vec<u8>,
    },
    /// Float samples in [-1, 1], interleaved by channel.
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// Interleaved channels.
        channels: u16,
        /// `[frames, channels]` samples.
        samples: Vec<f32>,
    },
}

impl Media {
    /// Convert the decoder output (batch 1) as the manifest's `output` describes:
    /// images `[1, channels, height, width]`, audio `[1, samples]` or `[1, channels, samples]`.
    pub fn from_tensor(output: &MediaOutput, tensor: &ArrayD<f32>, stage: &str, name: &str) -> Result<Media> {
        let shape = tensor.shape().to_vec();
        let bad = |expected: &str| Error::Tensor {
            stage: stage.into(),
            tensor: name.into(),
            expected: expected.into(),
            found: format!("shape {shape:?}"),
        };
        match output {
            MediaOutput::Image(o) => {
                let [1, c, h, w] = shape[..] else { return Err(bad("[1, channels, height, width]")) };
                if !matches!(c, 1 | 3 | 4) || h == 0 || w == 0 {
                    return Err(bad("[1, 1|3|4 channels, height > 0, width > 0]"));
                }
                let [lo, hi] = o.value_range;
                let mut pixels = vec![0u8; c * h * w];
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let v = ((tensor[[0, ch, y, x]] - lo) / (hi - lo)).clamp(0.0, 1.0);
                            pixels[(y * w + x) * c + ch] = (v * 255.0).round_ties_even() as u8;
                        }
                    }
                }
                Ok(Media::Image { width: w as u32, height: h as u32, channels: c as u8, pixels })
            }
            MediaOutput::Audio(o) => {
                let (channels, frames) = match shape[..] {
                    [1, n] => (1, n),
                    [1, c, n] => (c, n),
                    _ => return Err(bad("[1, samples] or [1, channels, samples]")),
                };
                if channels == 0 || channels > u16::MAX as usize {
                    return Err(bad("1 to 65535 channels"));
                }
                let [lo, hi] = o.value_range;
                let flat: Vec<f32> = tensor.iter().copied().collect();
                let mut samples = vec![0.0f32; channels * frames];
                for ch in 0..channels {
                    for i in 0..frames {
                        let v = (flat[ch * frames + i] - lo) / (hi - lo) * 2.0 - 1.0;
                        samples[i * channels + ch] = v.clamp(-1.0, 1.0);
                    }
                }
                Ok(Media::Audio { sample_rate: o.sample_rate, channels: channels as u16, samples })
            }
        }
    }

    /// The modality of this item.
    pub fn modality(&self) -> Modality {
        match self {
            Media::Image { .. } => Modality::Image,
            Media::Audio { .. } => Modality::Audio,
        }
    }

    /// File extension of the format it is written in.
    pub fn extension(&self) -> &'static str {
        match self {
            Media::Image { .. } => "png",
            Media::Audio { .. } => "wav",
        }
    }

    /// Write the item to `path` (PNG or WAV by kind).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = match self {
            Media::Image { width, height, channels, pixels } => encode_png(*width, *height, *channels, pixels)?,
            Media::Audio { sample_rate, channels, samples } => encode_wav(*sample_rate, *channels, samples),
        };
        std::fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
    }
}

fn encode_png(width: u32, height: u32, channels: u8, pixels: &[u8]) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let color = match channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        _ => image::ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, width, height, color)
        .map_err(|e| Error::Request(format!("encoding a {width}x{height} PNG: {e}")))?;
    Ok(out)
}

/// RIFF/WAVE, 16-bit PCM, little endian; floats rounded to the nearest step.
fn encode_wav(sample_rate: u32, channels: u16, samples: &[f32]) -> Vec<u8> {
    let pcm: Vec<i16> = samples.iter().map(|&s| (s * i16::MAX as f32).round() as i16).collect();
    encode_wav_pcm16(sample_rate, channels, &pcm)
}

/// RIFF/WAVE of 16-bit PCM samples (interleaved by channel), little endian.
pub fn encode_wav_pcm16(sample_rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * block_align as u32).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A generated height field: `heights [height, width]`, row-major, in the
/// model's units within `[0, height_range]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeightMap {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `[height, width]` heights.
    pub heights: Vec<f32>,
    /// The largest height the transform allows (the PNG's 65535).
    pub height_range: f64,
}

impl HeightMap {
    /// Model-space sample `[height, width]` (C order) -> heights, as the
    /// `adaptive-terrain-diffusion` package's `_from_model_space` computes them
    /// (see [`HeightMapTransform`]): the unit value in f32, the asinh expansion
    /// in f64 rounded once to f32 (numpy 2 promotes by the f64 normalizer), the
    /// floor subtracted in f32.
    pub fn from_sample(t: &HeightMapTransform, sample: &[f32], width: u32, height: u32) -> HeightMap {
        let [lo, hi] = t.value_range;
        let (lo, span) = (lo as f32, (hi - lo) as f32);
        let normalizer = t.normalizer();
        let mut heights: Vec<f32> = sample
            .iter()
            .map(|&x| {
                let unit = ((x - lo) / span).clamp(0.0, 1.0);
                (t.asinh_scale * (unit as f64 * normalizer).sinh()).clamp(0.0, t.height_range) as f32
            })
            .collect();
        if t.zero_floor {
            let floor = heights.iter().copied().fold(f32::INFINITY, f32::min);
            heights.iter_mut().for_each(|h| *h -= floor);
        }
        HeightMap { width, height, heights, height_range: t.height_range }
    }

    /// 16-bit gray levels: `round(h / height_range * 65535)`, so 0 is height 0
    /// and 65535 the transform's `height_range` (not the sample's maximum: maps
    /// of one bundle share a scale).
    pub fn gray16(&self) -> Vec<u16> {
        self.heights.iter().map(|&h| (h as f64 / self.height_range * 65535.0).round().clamp(0.0, 65535.0) as u16).collect()
    }

    /// The lowest and highest height.
    pub fn extent(&self) -> (f32, f32) {
        self.heights.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &h| (lo.min(h), hi.max(h)))
    }

    /// Write the 16-bit grayscale PNG ([`Self::gray16`]).
    pub fn write_png16(&self, path: &Path) -> Result<()> {
        use image::ImageEncoder;
        // The encoder takes 16-bit samples in native byte order and writes PNG's big-endian.
        let bytes: Vec<u8> = self.gray16().iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&bytes, self.width, self.height, image::ExtendedColorType::L16)
            .map_err(|e| Error::Request(format!("encoding a {}x{} 16-bit PNG: {e}", self.width, self.height)))?;
        std::fs::write(path, out).map_err(|source| Error::Write { path: path.to_path_buf(), source })
    }

    /// Write the heights as raw float32, little-endian, row-major (`[height, width]`, no header).
    pub fn write_f32(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self.heights.iter().flat_map(|h| h.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
    }
}

/// Create `dir` if needed and check a file can be written there, so an
/// unwritable output directory is reported before any model runs.
pub fn prepare_out_dir(dir: &Path) -> Result<PathBuf> {
    let fail = |message: String| Error::OutputDir { path: dir.to_path_buf(), message };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot be created: {e}")))?;
    let probe = dir.join(format!(".mmrt-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail(format!("is not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{AudioOutput, ImageOutput};

    #[test]
    fn image_values_map_like_diffusers_postprocess() {
        let out = MediaOutput::Image(ImageOutput { format: Default::default(), value_range: [-1.0, 1.0] });
        // x / 2 + 0.5, clamp, * 255, round half to even: -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128, 2 -> 255.
        let t = ArrayD::from_shape_vec(vec![1, 1, 1, 4], vec![-1.0, 1.0, 0.0, 2.0]).unwrap();
        let Media::Image { pixels, .. } = Media::from_tensor(&out, &t, "s", "image").unwrap() else { panic!() };
        assert_eq!(pixels, vec![0, 255, 128, 255]);
        let bad = ArrayD::from_shape_vec(vec![1, 2, 1, 1], vec![0.0; 2]).unwrap();
        assert!(Media::from_tensor(&out, &bad, "s", "image").unwrap_err().to_string().contains("channels"));
    }

    #[test]
    fn height_map_follows_the_package_transform() {
        let t = HeightMapTransform { value_range: [-1.0, 1.0], asinh_scale: 0.1, height_range: 22.16864013671875, zero_floor: false };
        // -1 and below: height 0; 1 and above: height_range; 0: 0.1 * sinh(asinh(221.69) / 2).
        let map = HeightMap::from_sample(&t, &[-2.0, -1.0, 0.0, 1.0, 3.0, 0.5], 3, 2);
        let mid = (0.1 * ((22.16864013671875f64 / 0.1).asinh() / 2.0).sinh()) as f32;
        let top = 22.16864013671875f64 as f32;
        assert_eq!(map.heights[..5], [0.0, 0.0, mid, top, top]);
        assert_eq!(map.gray16()[..5], [0, 0, (mid as f64 / 22.16864013671875 * 65535.0).round() as u16, 65535, 65535]);
        let floored = HeightMap::from_sample(&HeightMapTransform { zero_floor: true, ..t }, &[0.0, 0.5], 2, 1);
        assert_eq!(floored.heights[0], 0.0);
        assert_eq!(floored.extent().1, map.heights[5] - mid);
    }

    #[test]
    fn wav_header_and_samples() {
        let out = MediaOutput::Audio(AudioOutput { format: Default::default(), sample_rate: 8000, value_range: [-1.0, 1.0] });
        let t = ArrayD::from_shape_vec(vec![1, 3], vec![0.0, 1.0, -2.0]).unwrap();
        let media = Media::from_tensor(&out, &t, "s", "waveform").unwrap();
        let Media::Audio { samples, .. } = &media else { panic!() };
        assert_eq!(samples, &vec![0.0, 1.0, -1.0]);
        let wav = encode_wav(8000, 1, samples);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + 6);
        assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), i16::MAX);
    }
}
