//! Raw live streams: packed RGB24, planar YUV420p (BT.601, limited range, as
//! cameras and `ffmpeg -pix_fmt yuv420p` give) or MJPEG (concatenated JPEGs),
//! from stdin (`-`), a FIFO, a device path or a file. Frames have no
//! timestamps of their own: frame `i` is at `i / fps` seconds.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{check_size, fit, video_error, ClipInfo, FrameSource, OpenOptions, SourceFrame};
use crate::error::Result;

/// Pixel layout of a raw stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// 3 bytes per pixel, R G B, rows top to bottom.
    Rgb24,
    /// Y plane, then U and V at half width and half height (even sizes only).
    Yuv420p,
    /// One JPEG after another.
    Mjpeg,
}

impl RawFormat {
    /// Bytes of one frame (`None` for MJPEG, whose frames vary).
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            RawFormat::Rgb24 => Some(w * h * 3),
            RawFormat::Yuv420p => Some(w * h + 2 * (w / 2) * (h / 2)),
            RawFormat::Mjpeg => None,
        }
    }
}

/// Largest JPEG accepted in an MJPEG stream: 64 MiB (a 16K frame at high quality).
const MAX_JPEG_BYTES: usize = 64 << 20;

/// A raw stream, read frame by frame.
pub struct RawSource {
    reader: BufReader<Box<dyn Read + Send>>,
    path: std::path::PathBuf,
    format: RawFormat,
    info: ClipInfo,
    fps: f64,
    /// Frame size of the stream itself (0x0 for MJPEG until its first frame).
    declared: (u32, u32),
    size: Option<(u32, u32)>,
    next_index: u64,
    skipped: u64,
    buffer: Vec<u8>,
    ended: bool,
}

impl RawSource {
    /// Open `path` (`-` = stdin) as a stream of `format` frames at `fps`.
    pub fn open(path: &Path, format: RawFormat, width: u32, height: u32, fps: f64, options: OpenOptions) -> Result<Self> {
        if !(fps.is_finite() && fps > 0.0 && fps <= crate::limits::MAX_VIDEO_SAMPLE_FPS) {
            return Err(video_error(path, &format!("stream rate must be in (0, {}] frames per second, found {fps}", crate::limits::MAX_VIDEO_SAMPLE_FPS)));
        }
        if format != RawFormat::Mjpeg {
            check_size(path, width, height)?;
            if format == RawFormat::Yuv420p && (width % 2 != 0 || height % 2 != 0) {
                return Err(video_error(path, &format!("yuv420p needs an even frame size, found {width}x{height}")));
            }
        }
        let (reader, length): (Box<dyn Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let file = File::open(path).map_err(|e| video_error(path, &format!("cannot open: {e}")))?;
            let meta = file.metadata().map_err(|e| video_error(path, &e.to_string()))?;
            (Box::new(file), meta.is_file().then_some(meta.len()))
        };
        // A regular file's length gives the frame count, so it can be sampled uniformly.
        let frames = match (length, format.frame_bytes(width, height)) {
            (Some(len), Some(bytes)) => Some(len / bytes as u64),
            _ => None,
        };
        let (w, h) = options.size.unwrap_or((width, height));
        let info = ClipInfo {
            width: w,
            height: h,
            frames,
            fps: Some(fps),
            duration_seconds: frames.map(|n| n as f64 / fps),
            format: format!("raw {format:?}").to_lowercase(),
        };
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, reader),
            path: path.to_path_buf(),
            format,
            info,
            fps,
            declared: (width, height),
            size: options.size,
            next_index: 0,
            skipped: 0,
            buffer: Vec::new(),
            ended: false,
        })
    }

    /// Fill `buffer` with exactly `bytes`; `false` at a clean end, a warning at a partial frame.
    fn read_exact_frame(&mut self, bytes: usize) -> Result<bool> {
        self.buffer.resize(bytes, 0);
        let mut filled = 0;
        while filled < bytes {
            match self.reader.read(&mut self.buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(video_error(&self.path, &format!("read failed at frame {}: {e}", self.next_index))),
            }
        }
        if filled > 0 && filled < bytes {
            log::warn!(
                "video {}: the stream ended inside frame {} ({filled} of {bytes} bytes); that partial frame is dropped",
                self.path.display(),
                self.next_index
            );
        }
        Ok(filled == bytes)
    }

    /// The next JPEG of an MJPEG stream: from a start-of-image marker to its end-of-image marker.
    fn read_jpeg(&mut self) -> Result<bool> {
        self.buffer.clear();
        let mut byte = [0u8; 1];
        let mut previous = 0u8;
        let mut started = false;
        loop {
            match self.reader.read(&mut byte) {
                Ok(0) => {
                    if started {
                        log::warn!("video {}: the stream ended inside JPEG frame {}; that partial frame is dropped", self.path.display(), self.next_index);
                    }
                    return Ok(false);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(video_error(&self.path, &format!("read failed at frame {}: {e}", self.next_index))),
            }
            let b = byte[0];
            if !started {
                if previous == 0xFF && b == 0xD8 {
                    started = true;
                    self.buffer.extend_from_slice(&[0xFF, 0xD8]);
                }
            } else {
                self.buffer.push(b);
                if previous == 0xFF && b == 0xD9 {
                    return Ok(true);
                }
                if self.buffer.len() > MAX_JPEG_BYTES {
                    return Err(video_error(&self.path, &format!("JPEG frame {} is larger than {MAX_JPEG_BYTES} bytes", self.next_index)));
                }
            }
            previous = b;
        }
    }

    fn decode_jpeg(&mut self) -> Option<image::RgbImage> {
        match image::load_from_memory_with_format(&self.buffer, image::ImageFormat::Jpeg) {
            Ok(img) if check_size(&self.path, img.width(), img.height()).is_ok() => Some(img.to_rgb8()),
            Ok(img) => {
                log::warn!("video {}: frame {} is {}x{}, too large; skipped", self.path.display(), self.next_index, img.width(), img.height());
                None
            }
            Err(e) => {
                log::warn!("video {}: frame {} is not a valid JPEG ({e}); skipped", self.path.display(), self.next_index);
                None
            }
        }
    }
}

impl FrameSource for RawSource {
    fn info(&self) -> &ClipInfo {
        &self.info
    }

    fn advance(&mut self, keep_from: u64) -> Result<Option<SourceFrame>> {
        if self.ended {
            return Ok(None);
        }
        let image = loop {
            match self.format {
                RawFormat::Mjpeg => {
                    if !self.read_jpeg()? {
                        self.ended = true;
                        return Ok(None);
                    }
                    match self.decode_jpeg() {
                        Some(image) => break image,
                        None => {
                            self.skipped += 1;
                            self.next_index += 1;
                        }
                    }
                }
                format => {
                    let bytes = format.frame_bytes(self.declared.0, self.declared.1).expect("fixed-size format");
                    if !self.read_exact_frame(bytes)? {
                        self.ended = true;
                        return Ok(None);
                    }
                    if self.next_index < keep_from {
                        break image::RgbImage::new(0, 0);
                    }
                    break match format {
                        RawFormat::Rgb24 => image::RgbImage::from_raw(self.declared.0, self.declared.1, self.buffer.clone()).expect("sized buffer"),
                        _ => yuv420p_to_rgb(&self.buffer, self.declared.0, self.declared.1),
                    };
                }
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        let seconds = index as f64 / self.fps;
        if index < keep_from {
            return Ok(Some(SourceFrame { index, seconds, image: None }));
        }
        if self.format == RawFormat::Mjpeg && self.size.is_none() {
            // MJPEG frames carry their size: the first one sets the stream's; a frame of another size is scaled to it.
            if self.info.width == 0 {
                (self.info.width, self.info.height) = image.dimensions();
            }
        }
        let image = fit(image, Some((self.info.width, self.info.height)));
        Ok(Some(SourceFrame { index, seconds, image: Some(image) }))
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// BT.601 limited-range YUV 4:2:0 to RGB, in 16.16 fixed point.
pub fn yuv420p_to_rgb(data: &[u8], width: u32, height: u32) -> image::RgbImage {
    let (w, h) = (width as usize, height as usize);
    let (y_plane, chroma) = data.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at((w / 2) * (h / 2));
    let mut out = vec![0u8; w * h * 3];
    let clamp = |v: i32| (v >> 16).clamp(0, 255) as u8;
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * (w / 2) + col / 2;
            let y = (y_plane[row * w + col] as i32 - 16) * 76309;
            let (u, v) = (u_plane[c] as i32 - 128, v_plane[c] as i32 - 128);
            let px = &mut out[(row * w + col) * 3..][..3];
            px[0] = clamp(y + 104597 * v + 32768);
            px[1] = clamp(y - 25675 * u - 53279 * v + 32768);
            px[2] = clamp(y + 132201 * u + 32768);
        }
    }
    image::RgbImage::from_raw(width, height, out).expect("sized buffer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_grey_and_primaries() {
        // 2x2 frame: Y=16 (black), U=V=128 -> black; Y=235 -> white.
        let black = yuv420p_to_rgb(&[16, 16, 16, 16, 128, 128], 2, 2);
        assert!(black.pixels().all(|p| p.0 == [0, 0, 0]));
        let white = yuv420p_to_rgb(&[235, 235, 235, 235, 128, 128], 2, 2);
        assert!(white.pixels().all(|p| p.0 == [255, 255, 255]));
        // BT.601 red: Y=81, U=90, V=240.
        let red = yuv420p_to_rgb(&[81, 81, 81, 81, 90, 240], 2, 2);
        let p = red.get_pixel(0, 0).0;
        assert!(p[0] >= 253 && p[1] <= 2 && p[2] <= 2, "{p:?}");
    }
}
