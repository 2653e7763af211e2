//! Preprocessing settings as the manifest spells them (`preprocess` of a
//! modality encoder), next to their implementations ([`super::image`],
//! [`super::audio`]), with the checks that bound them before they size work.

use serde::{Deserialize, Serialize};

use crate::limits;

/// Native preprocessing of a modality, before its encoder graph. Tagged by
/// `kind` like every tagged object of the manifest (format v1's `type` is read too).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
pub enum Preprocess {
    /// Decode, resize, crop, normalize to a tensor.
    Image(ImagePreprocess),
    /// Resample and log-mel spectrogram.
    Audio(AudioPreprocess),
    /// Sample frames, then image preprocessing per frame.
    Video(VideoPreprocess),
}

crate::manifest::kind_tagged!(Preprocess);

/// Image preprocessing, CLIP-style: resize, center crop, rescale, normalize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePreprocess {
    /// How to resize before cropping.
    pub resize: Resize,
    /// Center crop after resizing; `None` keeps the resized image.
    #[serde(default)]
    pub crop: Option<Size>,
    /// Multiplier from u8 to float (usually 1/255).
    pub rescale_factor: f32,
    /// Per-channel mean subtracted after rescaling (RGB order).
    pub mean: [f32; 3],
    /// Per-channel std dividing after the mean.
    pub std: [f32; 3],
    /// Tensor layout.
    pub layout: Layout,
    /// Tensor element type fed to the encoder.
    pub dtype: TensorDtype,
}

/// Resize rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Scale so the shorter edge has this length (aspect kept).
    #[serde(default)]
    pub shortest_edge: Option<u32>,
    /// Resize to exactly this size (aspect not kept).
    #[serde(default)]
    pub exact: Option<Size>,
    /// Resampling filter.
    pub filter: ResizeFilter,
}

/// Width × height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// Resampling filters (names as in PIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle) filter.
    Bilinear,
    /// Bicubic, a = -0.5 (Catmull-Rom), as PIL's BICUBIC.
    Bicubic,
    /// Lanczos3.
    Lanczos,
}

/// Tensor layout of image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `[n, channels, height, width]`.
    Nchw,
    /// `[n, height, width, channels]`.
    Nhwc,
}

/// Element types a stage can declare for its float inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorDtype {
    /// 32-bit float.
    Float32,
    /// 16-bit float.
    Float16,
}

/// Whisper-style audio preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPreprocess {
    /// Encoder sample rate in Hz.
    pub sample_rate: u32,
    /// FFT window size.
    pub n_fft: usize,
    /// Hop between frames, in samples.
    pub hop_length: usize,
    /// Mel bins.
    pub n_mels: usize,
    /// Window length the encoder expects, seconds (pad / trim).
    pub chunk_seconds: f32,
}

/// Video preprocessing: frames sampled from the clip (see [`crate::video::Sampling`]
/// for the rule), each preprocessed as an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoPreprocess {
    /// Frames sampled uniformly over the clip; with `fps`, the most frames sampled.
    pub frames: usize,
    /// Sample at this rate (frames per second of clip time) instead, up to `frames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Per-frame image preprocessing.
    pub image: ImagePreprocess,
}

/// Audio preprocessing values that size the spectrogram, within [`limits`].
pub(crate) fn validate_audio_preprocess(a: &AudioPreprocess) -> std::result::Result<(), String> {
    check_sample_rate("sample_rate", a.sample_rate)?;
    if a.n_fft < 2 || a.n_fft > limits::MAX_N_FFT {
        return Err(format!("`n_fft` must be in 2..={} (limits::MAX_N_FFT), found {}", limits::MAX_N_FFT, a.n_fft));
    }
    if a.hop_length == 0 || a.hop_length > a.n_fft {
        return Err(format!("`hop_length` must be in 1..=n_fft ({}), found {}", a.n_fft, a.hop_length));
    }
    if a.n_mels == 0 || a.n_mels > limits::MAX_N_MELS {
        return Err(format!("`n_mels` must be in 1..={} (limits::MAX_N_MELS), found {}", limits::MAX_N_MELS, a.n_mels));
    }
    if !(a.chunk_seconds.is_finite() && a.chunk_seconds > 0.0 && a.chunk_seconds <= limits::MAX_AUDIO_WINDOW_SECONDS) {
        return Err(format!(
            "`chunk_seconds` must be in (0, {}] (limits::MAX_AUDIO_WINDOW_SECONDS), found {}",
            limits::MAX_AUDIO_WINDOW_SECONDS,
            a.chunk_seconds
        ));
    }
    let window = (a.chunk_seconds as f64 * a.sample_rate as f64).round();
    if window < a.n_fft as f64 {
        return Err(format!("a window of {window} samples (chunk_seconds x sample_rate) is shorter than n_fft {}", a.n_fft));
    }
    limits::check_log_mel(limits::log_mel_frames(a.chunk_seconds, a.sample_rate, a.hop_length), a.n_mels, a.n_fft)
}

/// A sample rate a manifest may declare: within [`limits::MIN_SAMPLE_RATE`] and [`limits::MAX_SAMPLE_RATE`].
pub(crate) fn check_sample_rate(field: &str, rate: u32) -> std::result::Result<(), String> {
    if !(limits::MIN_SAMPLE_RATE..=limits::MAX_SAMPLE_RATE).contains(&rate) {
        return Err(format!(
            "`{field}` must be in {}..={} Hz (limits::MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), found {rate}",
            limits::MIN_SAMPLE_RATE,
            limits::MAX_SAMPLE_RATE
        ));
    }
    Ok(())
}

pub(crate) fn validate_image_preprocess(p: &ImagePreprocess) -> std::result::Result<(), String> {
    match (&p.resize.shortest_edge, &p.resize.exact) {
        (Some(0), _) => return Err("`resize.shortest_edge` must be positive".into()),
        (Some(_), Some(_)) => return Err("`resize` takes either `shortest_edge` or `exact`, not both".into()),
        (None, None) => return Err("`resize` needs `shortest_edge` or `exact`".into()),
        _ => {}
    }
    let max = limits::MAX_PREPROCESS_SIDE;
    for size in p.resize.exact.iter().chain(p.crop.iter()) {
        if size.width == 0 || size.height == 0 {
            return Err(format!("sizes must be positive, found {}x{}", size.width, size.height));
        }
        if size.width > max || size.height > max {
            return Err(format!("sizes must be at most {max}x{max} (limits::MAX_PREPROCESS_SIDE), found {}x{}", size.width, size.height));
        }
    }
    if let Some(s) = p.resize.shortest_edge {
        if s > max {
            return Err(format!("`resize.shortest_edge` must be at most {max} (limits::MAX_PREPROCESS_SIDE), found {s}"));
        }
    }
    if p.mean.iter().any(|m| !m.is_finite()) {
        return Err(format!("`mean` must be finite, found {:?}", p.mean));
    }
    if p.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!("`std` must be positive, found {:?}", p.std));
    }
    if !(p.rescale_factor.is_finite() && p.rescale_factor > 0.0) {
        return Err(format!("`rescale_factor` must be positive, found {}", p.rescale_factor));
    }
    Ok(())
}
