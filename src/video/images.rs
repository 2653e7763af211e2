//! Frames from images: a directory of stills (sorted by file name, so
//! zero-padded names play in order; one frame per second unless the names say
//! nothing else can be known), or an animated GIF / WebP (the `image` crate,
//! frame times from the file's delays). Every frame must share the first
//! frame's size: a directory is checked from the headers before any decoding.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::AnimationDecoder;

use super::{check_size, fit, video_error, ClipInfo, FrameSource, OpenOptions, SourceFrame};
use crate::error::Result;

/// Frame rate given to a directory of stills, which carries no timing: one frame per second.
pub const IMAGE_SEQUENCE_FPS: f64 = 1.0;

const STILL_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp", "gif", "tif", "tiff", "ppm", "pnm", "pgm"];

/// Whether `path` names an image file that may hold an animation (decoded here, not by FFmpeg).
pub fn is_animated_image(path: &Path) -> bool {
    matches!(extension(path).as_deref(), Some("gif" | "webp"))
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

enum Frames {
    /// Still files, in order.
    Files(Vec<PathBuf>),
    /// An animation, decoded once to count it and again to read it; the
    /// decoder (not `Send`) lives on its own thread, one frame ahead.
    Animation(std::sync::mpsc::Receiver<Result<(f64, image::RgbaImage)>>),
}

/// A directory of stills or an animated image, as a stream of frames.
pub struct ImageSequence {
    frames: Frames,
    info: ClipInfo,
    next_index: u64,
}

impl ImageSequence {
    /// The still images of `dir`, sorted by name; all of one size.
    pub fn open_dir(dir: &Path, options: OpenOptions) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| video_error(dir, &format!("cannot list the directory: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && extension(p).is_some_and(|e| STILL_EXTENSIONS.contains(&e.as_str())))
            .collect();
        files.sort();
        let Some(first) = files.first() else {
            return Err(video_error(dir, &format!("the directory holds no images ({})", STILL_EXTENSIONS.join(", "))));
        };
        if files.len() as u64 > crate::limits::MAX_VIDEO_SEQUENCE_FILES {
            return Err(video_error(dir, &format!("{} images, more than the {} an image sequence may hold (limits::MAX_VIDEO_SEQUENCE_FILES)", files.len(), crate::limits::MAX_VIDEO_SEQUENCE_FILES)));
        }
        let dims = |p: &Path| image::image_dimensions(p).map_err(|e| video_error(p, &format!("not a readable image: {e}")));
        let (w, h) = dims(first)?;
        check_size(first, w, h)?;
        for file in &files[1..] {
            let d = dims(file)?;
            if d != (w, h) {
                return Err(video_error(
                    file,
                    &format!("is {}x{}, but {} is {w}x{h}: the images of a sequence must share one size", d.0, d.1, first.display()),
                ));
            }
        }
        let count = files.len() as u64;
        let (width, height) = options.size.unwrap_or((w, h));
        let info = ClipInfo {
            width,
            height,
            frames: Some(count),
            fps: Some(IMAGE_SEQUENCE_FPS),
            duration_seconds: Some(count as f64 / IMAGE_SEQUENCE_FPS),
            format: "image sequence".into(),
        };
        Ok(Self { frames: Frames::Files(files), info, next_index: 0 })
    }

    /// An animated GIF or WebP (a still WebP/GIF is a one-frame clip).
    pub fn open_animation(path: &Path, options: OpenOptions) -> Result<Self> {
        let (mut count, mut duration_ms, mut size) = (0u64, 0.0f64, None);
        for frame in animation_frames(path)? {
            let frame = frame.map_err(|e| video_error(path, &format!("frame {count}: {e}")))?;
            let (n, d) = frame.delay().numer_denom_ms();
            duration_ms += n as f64 / d.max(1) as f64;
            size.get_or_insert(frame.buffer().dimensions());
            count += 1;
            if count > crate::limits::MAX_VIDEO_SEQUENCE_FILES {
                return Err(video_error(path, &format!("more than {} frames (limits::MAX_VIDEO_SEQUENCE_FILES)", crate::limits::MAX_VIDEO_SEQUENCE_FILES)));
            }
        }
        let Some((w, h)) = size else {
            return Err(video_error(path, "the animation has no frames"));
        };
        check_size(path, w, h)?;
        let fps = (duration_ms > 0.0).then(|| count as f64 * 1000.0 / duration_ms);
        let (width, height) = options.size.unwrap_or((w, h));
        let info = ClipInfo {
            width,
            height,
            frames: Some(count),
            fps,
            duration_seconds: Some(duration_ms / 1000.0),
            format: format!("animated {}", extension(path).unwrap_or_default()),
        };
        let frames = Frames::Animation(spawn_animation_reader(path.to_path_buf()));
        Ok(Self { frames, info, next_index: 0 })
    }
}

fn animation_frames(path: &Path) -> Result<image::Frames<'static>> {
    let reader = BufReader::new(File::open(path).map_err(|e| video_error(path, &format!("cannot open: {e}")))?);
    let bad = |e: image::ImageError| video_error(path, &format!("not a readable animation: {e}"));
    match extension(path).as_deref() {
        Some("gif") => Ok(image::codecs::gif::GifDecoder::new(reader).map_err(bad)?.into_frames()),
        _ => {
            let decoder = image::codecs::webp::WebPDecoder::new(reader).map_err(bad)?;
            if decoder.has_animation() {
                Ok(decoder.into_frames())
            } else {
                let still = image::DynamicImage::from_decoder(decoder).map_err(bad)?.to_rgba8();
                Ok(image::Frames::new(Box::new(std::iter::once(Ok(image::Frame::new(still))))))
            }
        }
    }
}

/// Decode `path`'s frames on a thread of their own, one frame ahead of the reader.
fn spawn_animation_reader(path: PathBuf) -> std::sync::mpsc::Receiver<Result<(f64, image::RgbaImage)>> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let frames = match animation_frames(&path) {
            Ok(frames) => frames,
            Err(e) => return drop(sender.send(Err(e))),
        };
        let mut clock_ms = 0.0;
        for (index, frame) in frames.enumerate() {
            let item = frame.map_err(|e| video_error(&path, &format!("frame {index}: {e}"))).map(|frame| {
                let seconds = clock_ms / 1000.0;
                let (n, d) = frame.delay().numer_denom_ms();
                clock_ms += n as f64 / d.max(1) as f64;
                (seconds, frame.into_buffer())
            });
            let failed = item.is_err();
            if sender.send(item).is_err() || failed {
                return;
            }
        }
    });
    receiver
}

impl FrameSource for ImageSequence {
    fn info(&self) -> &ClipInfo {
        &self.info
    }

    fn advance(&mut self, keep_from: u64) -> Result<Option<SourceFrame>> {
        let index = self.next_index;
        let keep = index >= keep_from;
        let (seconds, image) = match &mut self.frames {
            Frames::Files(files) => {
                let Some(file) = files.get(index as usize) else { return Ok(None) };
                let image = if keep { Some(crate::preprocess::image::load_image(file)?) } else { None };
                (index as f64 / IMAGE_SEQUENCE_FPS, image)
            }
            Frames::Animation(frames) => {
                let Ok(frame) = frames.recv() else { return Ok(None) };
                let (seconds, rgba) = frame?;
                (seconds, keep.then(|| image::DynamicImage::ImageRgba8(rgba).to_rgb8()))
            }
        };
        self.next_index += 1;
        let (w, h) = (self.info.width, self.info.height);
        Ok(Some(SourceFrame { index, seconds, image: image.map(|i| fit(i, Some((w, h)))) }))
    }

    /// Nothing is skipped: a broken still or animation frame is an error (headers are checked up front).
    fn skipped(&self) -> u64 {
        0
    }
}
