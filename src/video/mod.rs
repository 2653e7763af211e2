//! Frames in: video files (FFmpeg, through mmrt's plug-in), a directory of images,
//! an animated GIF/WebP, and raw live streams (RGB24, YUV420p, MJPEG) on stdin,
//! a FIFO or a device path — all behind one [`FrameSource`], plus the sampling
//! that picks which frames a model sees ([`Sampling`]).
//!
//! Frames are streamed: a source holds one decoded frame at a time, so a 4K or
//! ten-minute clip costs the decoder's own buffers, not the clip.
//! [`read_sampled`] converts only the frames sampling picks, stops after the
//! last one, and seeks over long gaps where the container has an index.
//!
//! Broken input: a frame the decoder rejects mid-stream is skipped with a
//! warning and counted ([`FrameSource::skipped`]); a stream that ends inside a
//! frame drops that partial frame with a warning; a clip that ends before a
//! sampled frame (a truncated file) is an error naming the file.

mod images;
mod plugin;
mod raw;
mod sampling;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use raw::RawFormat;
pub use sampling::{sample_indices, Sampling};

use crate::error::{Error, Result};

/// One decoded frame, RGB, in display order.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Position in the clip's display order (0-based).
    pub index: u64,
    /// Presentation time, seconds (the container's timestamp).
    pub seconds: f64,
    /// The pixels.
    pub image: image::RgbImage,
}

/// A frame as a source yields it: pixels only when asked for.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    /// Display-order index.
    pub index: u64,
    /// Presentation time, seconds.
    pub seconds: f64,
    /// The pixels, when the caller kept the frame.
    pub image: Option<image::RgbImage>,
}

/// What a source is, as far as it is known before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipInfo {
    /// Frame width in pixels (of the delivered frames).
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames in the clip, when known (declared by the container, or counted).
    pub frames: Option<u64>,
    /// Frames per second, when known.
    pub fps: Option<f64>,
    /// Duration, seconds, when known.
    pub duration_seconds: Option<f64>,
    /// Container and codec, for reports.
    pub format: String,
}

/// Where frames come from.
#[derive(Debug, Clone)]
pub enum VideoSpec {
    /// A video file, a directory of images, or an animated GIF/WebP.
    File(PathBuf),
    /// Raw frames from a stream (`-` is stdin; a FIFO or device path works too).
    Raw {
        /// The stream.
        path: PathBuf,
        /// Pixel layout.
        format: RawFormat,
        /// Frame width (ignored for MJPEG, whose frames carry their size; 0 = unknown).
        width: u32,
        /// Frame height.
        height: u32,
        /// Frame rate, for timestamps.
        fps: f64,
    },
}

impl VideoSpec {
    /// The source as errors name it.
    pub fn path(&self) -> &Path {
        match self {
            VideoSpec::File(p) | VideoSpec::Raw { path: p, .. } => p,
        }
    }
}

/// Options of an opened source.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Deliver frames scaled to `(width, height)` (bilinear, in the decoder's
    /// converter) instead of the source size.
    pub size: Option<(u32, u32)>,
}

/// A stream of frames in display order.
pub trait FrameSource: Send {
    /// What is known about the clip.
    fn info(&self) -> &ClipInfo;
    /// The next frame; its pixels are converted only when its index is at
    /// least `keep_from` (0 keeps every frame, `u64::MAX` none).
    /// `Ok(None)` at the end of the stream.
    fn advance(&mut self, keep_from: u64) -> Result<Option<SourceFrame>>;
    /// Corrupt frames skipped so far.
    fn skipped(&self) -> u64;
    /// Jump to a point before frame `index` when that is cheaper than decoding
    /// up to it (a file with a seek index); `false` when the source cannot.
    fn seek_before(&mut self, _index: u64) -> Result<bool> {
        Ok(false)
    }
    /// The next frame with its pixels.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>> {
        Ok(self.advance(0)?.map(|f| VideoFrame { index: f.index, seconds: f.seconds, image: f.image.expect("kept frame has pixels") }))
    }
}

/// Open a source at its own frame size.
pub fn open(spec: &VideoSpec) -> Result<Box<dyn FrameSource>> {
    open_with(spec, OpenOptions::default())
}

/// Open a source: a raw stream, a directory of images, an animated image, or a video file.
pub fn open_with(spec: &VideoSpec, options: OpenOptions) -> Result<Box<dyn FrameSource>> {
    if let Some((w, h)) = options.size {
        check_size(spec.path(), w, h)?;
    }
    match spec {
        VideoSpec::Raw { path, format, width, height, fps } => Ok(Box::new(raw::RawSource::open(path, *format, *width, *height, *fps, options)?)),
        VideoSpec::File(path) if path.is_dir() => Ok(Box::new(images::ImageSequence::open_dir(path, options)?)),
        VideoSpec::File(path) if images::is_animated_image(path) => Ok(Box::new(images::ImageSequence::open_animation(path, options)?)),
        VideoSpec::File(path) => open_file(path, options),
    }
}

fn open_file(path: &Path, options: OpenOptions) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(plugin::FileSource::open(path, options)?))
}

/// What [`read_sampled`] read.
#[derive(Debug, Clone)]
pub struct SampleReport {
    /// The source.
    pub info: ClipInfo,
    /// Indices of the frames delivered, in order (repeats when sampling repeats a frame).
    pub indices: Vec<u64>,
    /// Time spent opening, decoding, seeking and converting.
    pub decode_time: Duration,
    /// Frames decoded, kept or not.
    pub frames_decoded: u64,
    /// Corrupt frames skipped.
    pub frames_skipped: u64,
}

/// Decode `spec` and hand each sampled frame to `on_frame` as soon as it is decoded.
pub fn read_sampled(spec: &VideoSpec, sampling: &Sampling, on_frame: &mut dyn FnMut(VideoFrame) -> Result<()>) -> Result<SampleReport> {
    read_sampled_with(spec, sampling, OpenOptions::default(), on_frame)
}

/// [`read_sampled`] with [`OpenOptions`] (frames scaled in the decoder).
pub fn read_sampled_with(spec: &VideoSpec, sampling: &Sampling, options: OpenOptions, on_frame: &mut dyn FnMut(VideoFrame) -> Result<()>) -> Result<SampleReport> {
    sampling.validate()?;
    let start = Instant::now();
    let mut source = open_with(spec, options)?;
    let mut reader = SampledReader { source: source.as_mut(), decoded: 0, busy: start.elapsed(), path: spec.path() };
    let indices = match reader.source.info().frames {
        Some(total) => reader.read_indices(&sample_indices(sampling, total, reader.source.info().fps)?, on_frame)?,
        None => reader.read_by_rate(sampling, on_frame)?,
    };
    let (decode_time, frames_decoded) = (reader.busy, reader.decoded);
    Ok(SampleReport { info: source.info().clone(), indices, decode_time, frames_decoded, frames_skipped: source.skipped() })
}

/// Gaps (in frames) above which a seek is tried rather than decoding through.
const SEEK_GAP_SECONDS: f64 = 4.0;
const SEEK_GAP_MIN_FRAMES: u64 = 96;

struct SampledReader<'a> {
    source: &'a mut dyn FrameSource,
    decoded: u64,
    /// Decoder time only (the callback's time is the consumer's).
    busy: Duration,
    path: &'a Path,
}

impl SampledReader<'_> {
    fn advance(&mut self, keep_from: u64) -> Result<Option<SourceFrame>> {
        let start = Instant::now();
        let frame = self.source.advance(keep_from);
        self.busy += start.elapsed();
        if matches!(frame, Ok(Some(_))) {
            self.decoded += 1;
        }
        frame
    }

    /// Deliver the frames at `wanted` (sorted, repeats allowed).
    fn read_indices(&mut self, wanted: &[u64], on_frame: &mut dyn FnMut(VideoFrame) -> Result<()>) -> Result<Vec<u64>> {
        let total = self.source.info().frames.unwrap_or(0);
        let gap = SEEK_GAP_MIN_FRAMES.max((self.source.info().fps.unwrap_or(0.0) * SEEK_GAP_SECONDS) as u64);
        let (mut next_index, mut delivered) = (0u64, Vec::with_capacity(wanted.len()));
        // Seeking is given up once it fails to move forward (a clip with few keyframes).
        // One seek per target at most: it lands on the keyframe before the target, which may still be a gap away.
        let (mut seeking, mut landed_from, mut sought) = (true, None, None);
        let mut pos = 0;
        while pos < wanted.len() {
            let target = wanted[pos];
            if seeking && sought != Some(target) && target.saturating_sub(next_index) > gap {
                let start = Instant::now();
                sought = Some(target);
                if self.source.seek_before(target)? {
                    landed_from = Some(next_index);
                }
                self.busy += start.elapsed();
            }
            let Some(frame) = self.advance(target)? else {
                return Err(video_error(
                    self.path,
                    &format!("the clip ended after {next_index} frames, before frame {target} of the {total} it declares (truncated or corrupt?)"),
                ));
            };
            if let Some(before) = landed_from.take() {
                // The first frame after a seek says where it landed: not past where decoding was, so stop seeking.
                seeking = frame.index > before;
                log::debug!("video {}: seek for frame {target} landed at frame {} (was at {before})", self.path.display(), frame.index);
            }
            next_index = frame.index + 1;
            if frame.index < target {
                continue;
            }
            // A seek may land past `target` on a clip whose timestamps are irregular: take the frame reached.
            let image = frame.image.expect("frames at or past keep_from carry pixels");
            let repeats = wanted[pos..].iter().take_while(|&&w| w <= frame.index).count();
            for _ in 0..repeats {
                delivered.push(frame.index);
                on_frame(VideoFrame { index: frame.index, seconds: frame.seconds, image: image.clone() })?;
            }
            pos += repeats;
        }
        Ok(delivered)
    }

    /// A stream of unknown length: take a frame every `1 / fps` seconds of stream time.
    fn read_by_rate(&mut self, sampling: &Sampling, on_frame: &mut dyn FnMut(VideoFrame) -> Result<()>) -> Result<Vec<u64>> {
        let Sampling::Rate { fps, max_frames } = *sampling else {
            return Err(video_error(self.path, "a stream of unknown length cannot be sampled uniformly; sample by rate (--video-fps / --fps)"));
        };
        let (mut next_time, mut delivered) = (f64::NEG_INFINITY, Vec::new());
        while delivered.len() < max_frames {
            let Some(frame) = self.advance(0)? else { break };
            if frame.seconds + 1e-9 < next_time {
                continue;
            }
            next_time = if next_time.is_finite() { next_time + 1.0 / fps } else { frame.seconds + 1.0 / fps };
            delivered.push(frame.index);
            on_frame(VideoFrame { index: frame.index, seconds: frame.seconds, image: frame.image.expect("kept") })?;
        }
        if delivered.is_empty() {
            return Err(video_error(self.path, "the stream ended before its first frame"));
        }
        Ok(delivered)
    }
}

/// A sized frame must fit [`crate::limits`] before it sizes a buffer.
pub(crate) fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    let max = crate::limits::MAX_VIDEO_SIDE;
    if width == 0 || height == 0 || width > max || height > max {
        return Err(video_error(path, &format!("frame size {width}x{height} is outside 1..={max} per side (limits::MAX_VIDEO_SIDE)")));
    }
    Ok(())
}

/// A video error naming its source.
pub(crate) fn video_error(path: &Path, message: &str) -> Error {
    Error::Video { path: path.to_path_buf(), message: message.to_string() }
}

/// RGB24 bytes (`stride` bytes per row) into an image of `width × height`.
pub(crate) fn rgb_image(data: &[u8], stride: usize, width: u32, height: u32) -> image::RgbImage {
    let row = width as usize * 3;
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    image::RgbImage::from_raw(width, height, pixels).expect("buffer sized from width and height")
}

/// Resize to `size` (bilinear) when asked; the decoders without a scaler use this.
pub(crate) fn fit(image: image::RgbImage, size: Option<(u32, u32)>) -> image::RgbImage {
    match size {
        Some((w, h)) if (w, h) != image.dimensions() => image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle),
        _ => image,
    }
}
