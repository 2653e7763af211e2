//! `mmrt frames`: decode and sample a video the way `run --video` does, and
//! write the frames or report them — for checking a clip, for parity with
//! other decoders, and for timing decode + sampling alone.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::video_args::{parse_size, StreamArgs};
use mmrt::error::{Error, Result};
use mmrt::video::{self, OpenOptions, Sampling};

/// Arguments of `mmrt frames`.
#[derive(Debug, Args)]
pub struct FramesArgs {
    /// A video file, a directory of images, an animated GIF/WebP, or with
    /// --format a raw stream (`-` is stdin).
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Frames sampled uniformly over the clip (default 8); with --fps, the most taken.
    #[arg(long, value_name = "N")]
    pub frames: Option<usize>,
    /// Sample at this rate of clip time instead (frames per second), up to --frames (default 32).
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,
    /// Write each sampled frame to DIR as raw RGB24, `frame_{index:06}.rgb`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stream: StreamArgs,
}

#[derive(Serialize)]
struct FramesReport {
    source: String,
    format: String,
    width: u32,
    height: u32,
    total_frames: Option<u64>,
    fps: Option<f64>,
    duration_seconds: Option<f64>,
    indices: Vec<u64>,
    seconds: Vec<f64>,
    frames_decoded: u64,
    frames_skipped: u64,
    /// Decoder time (open, demux, decode, seek, convert), milliseconds.
    decode_ms: f64,
    /// Wall time from open to the last frame converted to floats (channel-first), milliseconds.
    frames_ms: f64,
}

/// Run `mmrt frames`.
pub fn frames(args: &FramesArgs) -> Result<()> {
    // Without --format, --size is the size the sampled frames are scaled to.
    let (stream, resize) = match &args.stream {
        StreamArgs { format: None, size: Some(size), rate: None } => (StreamArgs::default(), Some(size.as_str())),
        stream => (stream.clone(), None),
    };
    let spec = stream.spec(&args.source)?;
    let sampling = match (args.fps, args.frames) {
        (Some(fps), frames) => Sampling::Rate { fps, max_frames: frames.unwrap_or(32) },
        (None, frames) => Sampling::Uniform { frames: frames.unwrap_or(8) },
    };
    let size = resize.map(|s| parse_size("--size", s)).transpose()?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write { path: dir.clone(), source: e })?;
    }
    let start = Instant::now();
    let (mut seconds, mut tensor) = (Vec::new(), Vec::<f32>::new());
    let report = video::read_sampled_with(&spec, &sampling, OpenOptions { size }, &mut |frame| {
        seconds.push(frame.seconds);
        // What a model's input needs next: the frame as floats in [0, 1], channel-first
        // (one frame's buffer, reused: a 4K clip must not hold every frame as floats).
        let (w, h) = frame.image.dimensions();
        let plane = (w * h) as usize;
        tensor.resize(3 * plane, 0.0);
        for (i, px) in frame.image.pixels().enumerate() {
            for c in 0..3 {
                tensor[c * plane + i] = px.0[c] as f32 / 255.0;
            }
        }
        std::hint::black_box(&tensor);
        if let Some(dir) = &args.out {
            let path = dir.join(format!("frame_{:06}.rgb", frame.index));
            std::fs::write(&path, frame.image.as_raw()).map_err(|e| Error::Write { path, source: e })?;
        }
        Ok(())
    })?;
    let frames_ms = start.elapsed().as_secs_f64() * 1e3;
    let out = FramesReport {
        source: args.source.display().to_string(),
        format: report.info.format.clone(),
        width: report.info.width,
        height: report.info.height,
        total_frames: report.info.frames,
        fps: report.info.fps,
        duration_seconds: report.info.duration_seconds,
        indices: report.indices,
        seconds,
        frames_decoded: report.frames_decoded,
        frames_skipped: report.frames_skipped,
        decode_ms: report.decode_time.as_secs_f64() * 1e3,
        frames_ms,
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &out).map_err(|e| Error::Request(e.to_string()))?;
        writeln!(stdout).ok();
    } else {
        writeln!(
            stdout,
            "{}: {} {}x{}, {} frames at {} fps; sampled {:?}; decoded {}, skipped {}; {:.1} ms",
            out.source,
            out.format,
            out.width,
            out.height,
            out.total_frames.map_or("?".into(), |n| n.to_string()),
            out.fps.map_or("?".into(), |f| format!("{f:.3}")),
            out.indices,
            out.frames_decoded,
            out.frames_skipped,
            out.frames_ms
        )
        .ok();
    }
    Ok(())
}
