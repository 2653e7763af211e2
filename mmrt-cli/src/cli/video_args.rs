//! Video flags shared by `run`, `bench` and `watch`: the clips, how frames are
//! sampled from them, and the embedding cache on disk.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use mmrt::error::{Error, Result};
use mmrt::pipeline::EmbeddingCache;
use mmrt::video::{RawFormat, Sampling, VideoSpec};

/// `--video`, `--video-frames`, `--video-fps`, `--embedding-cache-dir`.
#[derive(Debug, Args, Clone, Default)]
pub struct VideoArgs {
    /// Video: a clip (MP4/H.264, MKV, WebM, AVI, MJPEG), a directory of frame
    /// images or an animated GIF/WebP; repeat for several, in prompt order.
    /// Placed at the bundle's video placeholder (e.g. <video>).
    #[arg(long = "video", value_name = "PATH")]
    pub videos: Vec<PathBuf>,
    /// Frames sampled uniformly from each video (default: the bundle's); with
    /// --video-fps, the most frames taken.
    #[arg(long, value_name = "N")]
    pub video_frames: Option<usize>,
    /// Sample frames at this rate of video time instead (frames per second),
    /// up to --video-frames or the bundle's count.
    #[arg(long, value_name = "FPS")]
    pub video_fps: Option<f64>,
    /// Keep image and video-frame encoder outputs in DIR, so later runs skip the
    /// encoder for pictures seen before (created if missing).
    #[arg(long, value_name = "DIR")]
    pub embedding_cache_dir: Option<PathBuf>,
}

impl VideoArgs {
    /// Missing clips fail before any model is loaded.
    pub fn check_paths(&self) -> Result<()> {
        check_video_paths(&self.videos)
    }

    /// The sampling the flags ask for (`None`: the bundle's), within limits.
    /// `bundle_frames` is the bundle's frame count, the cap of `--video-fps` alone.
    pub fn sampling(&self, bundle_frames: Option<usize>) -> Result<Option<Sampling>> {
        let max = mmrt::limits::MAX_VIDEO_FRAMES;
        if let Some(n) = self.video_frames.filter(|&n| n == 0 || n > max) {
            return Err(Error::Request(format!("--video-frames {n} must be in 1..={max} (limits::MAX_VIDEO_FRAMES)")));
        }
        let max_fps = mmrt::limits::MAX_VIDEO_SAMPLE_FPS;
        if let Some(fps) = self.video_fps.filter(|f| !(f.is_finite() && *f > 0.0 && *f <= max_fps)) {
            return Err(Error::Request(format!("--video-fps {fps} must be in (0, {max_fps}] (limits::MAX_VIDEO_SAMPLE_FPS)")));
        }
        Ok(match (self.video_fps, self.video_frames) {
            (Some(fps), frames) => Some(Sampling::Rate { fps, max_frames: frames.or(bundle_frames).unwrap_or(max) }),
            (None, Some(frames)) => Some(Sampling::Uniform { frames }),
            (None, None) => None,
        })
    }

    /// The embedding cache: in memory, and in `--embedding-cache-dir` when given.
    pub fn embedding_cache(&self) -> Result<Option<Arc<EmbeddingCache>>> {
        match &self.embedding_cache_dir {
            Some(dir) => Ok(Some(Arc::new(EmbeddingCache::default().with_dir(dir)?))),
            None => Ok(None),
        }
    }
}

/// Every video path exists (a file, a frame directory or a stream path), before any model is loaded.
pub fn check_video_paths(videos: &[PathBuf]) -> Result<()> {
    for path in videos {
        std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// The bundle's video frame count (the cap of a rate given alone).
pub fn bundle_video_frames(bundle: &mmrt::Bundle) -> Option<usize> {
    match bundle.manifest.encoder(mmrt::manifest::Modality::Video).map(|e| &e.preprocess) {
        Some(mmrt::manifest::Preprocess::Video(v)) => Some(v.frames),
        _ => None,
    }
}

/// `--format`, `--size`, `--rate`: how to read a raw stream (`watch`, `frames`).
#[derive(Debug, Args, Clone, Default)]
pub struct StreamArgs {
    /// Raw stream format (rgb24, yuv420p: give --size and --rate; mjpeg: give --rate);
    /// without it the source is read as a video file, a directory of frames or an animated image.
    #[arg(long, value_parser = ["rgb24", "yuv420p", "mjpeg"])]
    pub format: Option<String>,
    /// Frame size of a raw stream, WIDTHxHEIGHT (`frames` without --format:
    /// the size sampled frames are scaled to, bilinear).
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Frame rate of a raw stream, frames per second (its timestamps).
    #[arg(long, value_name = "FPS")]
    pub rate: Option<f64>,
}

impl StreamArgs {
    /// `source` read as these flags say.
    pub fn spec(&self, source: &std::path::Path) -> Result<VideoSpec> {
        let Some(format) = self.format.as_deref() else {
            if self.size.is_some() || self.rate.is_some() {
                return Err(Error::Request("--size and --rate describe a raw stream: give --format too".into()));
            }
            return Ok(VideoSpec::File(source.to_path_buf()));
        };
        let format = match format {
            "rgb24" => RawFormat::Rgb24,
            "yuv420p" => RawFormat::Yuv420p,
            _ => RawFormat::Mjpeg,
        };
        let rate = self.rate.ok_or_else(|| Error::Request("a raw stream needs --rate FPS (its frame rate)".into()))?;
        let (width, height) = match (&self.size, format) {
            (Some(size), _) => parse_size("--size", size)?,
            (None, RawFormat::Mjpeg) => (0, 0),
            (None, _) => return Err(Error::Request("a raw rgb24/yuv420p stream needs --size WIDTHxHEIGHT".into())),
        };
        Ok(VideoSpec::Raw { path: source.to_path_buf(), format, width, height, fps: rate })
    }
}

/// `WIDTHxHEIGHT`, both positive.
pub fn parse_size(flag: &str, text: &str) -> Result<(u32, u32)> {
    let bad = || Error::Request(format!("{flag} takes WIDTHxHEIGHT (e.g. 640x480), got \"{text}\""));
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("--size", "640x480").unwrap(), (640, 480));
        assert!(parse_size("--size", "640").is_err() && parse_size("--size", "0x4").is_err());
    }

    #[test]
    fn flags_become_a_sampling_within_limits() {
        let args = |frames, fps| VideoArgs { video_frames: frames, video_fps: fps, ..Default::default() };
        assert!(args(None, None).sampling(Some(8)).unwrap().is_none());
        assert!(matches!(args(Some(4), None).sampling(None).unwrap(), Some(Sampling::Uniform { frames: 4 })));
        assert!(matches!(args(None, Some(2.0)).sampling(Some(8)).unwrap(), Some(Sampling::Rate { max_frames: 8, .. })));
        assert!(args(Some(0), None).sampling(None).is_err());
        assert!(args(None, Some(f64::NAN)).sampling(None).is_err());
        assert!(args(None, Some(-1.0)).sampling(None).unwrap_err().to_string().contains("--video-fps"));
    }
}
