//! `mmrt watch`: answer a prompt about the latest frames of a live stream,
//! again and again at a fixed cadence.
//!
//! Three threads: the reader decodes the stream (a camera or pipe in raw
//! RGB/YUV or MJPEG, or a clip played at its frame rate) and keeps
//! `--sample-fps` frames per second of stream time; the encoder runs the
//! bundle's video frame encoder on each kept frame into the embedding cache
//! and keeps the latest `--window` frames; this thread answers every
//! `--every` from that window, where the cache makes every frame a hit, so an
//! answer costs the projector and the LLM only. A reader that finds the
//! encoder busy drops the frame (counted): a live stream never queues up
//! behind the model. A tick that passes while an answer is still running is
//! skipped (counted), so answers never pile up either.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use super::video_args::StreamArgs;
use super::{Cli, SessionArgs};
use mmrt::error::{Error, Result};
use mmrt::manifest::Modality;
use mmrt::pipeline::frames::FrameEncoder;
use mmrt::pipeline::{EmbeddingCache, LoadOptions, MediaInput};
use mmrt::runtime::OrtRuntime;
use mmrt::video::{self, FrameSource, VideoFrame, VideoSpec};
use mmrt::{Bundle, Pipeline, Request};

/// Arguments of `mmrt watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Bundle with a video encoder (e.g. models/vlm-shapes).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// The stream: `-` (stdin), a device or FIFO path, a clip file or a directory of frames.
    #[arg(long, value_name = "PATH")]
    pub source: PathBuf,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// How often to answer: 1s, 500ms, 2.5s.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub every: Duration,
    /// Frames per answer: the most recent ones encoded.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Frames kept for encoding per second of stream time (the rest are dropped unencoded).
    #[arg(long, value_name = "FPS", default_value_t = 4.0)]
    pub sample_fps: f64,
    /// The question (default: the bundle's default prompt).
    #[arg(long)]
    pub prompt: Option<String>,
    /// New tokens per answer at most (default: the bundle's).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Stop after N answers (default: when the stream ends).
    #[arg(long, value_name = "N")]
    pub answers: Option<usize>,
    /// Read a clip file as fast as it decodes instead of at its frame rate.
    #[arg(long)]
    pub no_pace: bool,
    /// One JSON object per answer (text, window, latency, counts) instead of a line of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Counters shared by the three threads.
#[derive(Default)]
struct Counters {
    read: AtomicU64,
    kept: AtomicU64,
    dropped: AtomicU64,
    encoded: AtomicU64,
    ended: AtomicBool,
    stop: AtomicBool,
    failure: Mutex<Option<Error>>,
}

impl Counters {
    fn fail(&self, error: Error) {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(error);
        self.ended.store(true, Ordering::Relaxed);
    }
}

/// An encoded frame and when it reached the encoder.
struct WindowFrame {
    frame: VideoFrame,
    arrived: Instant,
}

type Window = Arc<Mutex<VecDeque<WindowFrame>>>;

/// Run the command.
pub fn watch(cli: &Cli, args: &WatchArgs) -> Result<()> {
    let spec = args.stream.spec(&args.source)?;
    check_args(args)?;
    let bundle = Bundle::open(&args.bundle)?;
    if bundle.manifest.encoder(Modality::Video).is_none() {
        return Err(Error::Request(format!("bundle \"{}\" has no video encoder; `mmrt watch` needs one", bundle.name())));
    }
    let prompt = args.prompt.clone().or_else(|| bundle.manifest.prompt.default_prompt.clone()).ok_or_else(|| {
        Error::Request(format!("bundle \"{}\" has no default prompt: --prompt is required", bundle.name()))
    })?;
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let cache = Arc::new(EmbeddingCache::default());
    let encoder = FrameEncoder::open_standalone(&runtime, &bundle, &plan, Modality::Video, cache.clone())?;
    let options = LoadOptions { sessions: plan, embedding_cache: Some(cache), ..LoadOptions::default() };
    let mut pipeline = Pipeline::load_with(&runtime, bundle, &options)?;
    let source = video::open(&spec)?;

    let counters = Arc::new(Counters::default());
    let window: Window = Arc::new(Mutex::new(VecDeque::with_capacity(args.window + 1)));
    let (sender, receiver) = mpsc::sync_channel::<VideoFrame>(1);
    let pace = matches!(spec, VideoSpec::File(_)) && !args.no_pace;
    {
        let counters = counters.clone();
        let sample_fps = args.sample_fps;
        // Not joined: a reader blocked on a live stream must not hold up the exit.
        std::thread::Builder::new()
            .name("mmrt-watch-read".into())
            .spawn(move || read_stream(source, sender, sample_fps, pace, &counters))
            .map_err(|e| Error::Request(format!("starting the reader thread: {e}")))?;
    }
    let encoding = {
        let (counters, window, size) = (counters.clone(), window.clone(), args.window);
        std::thread::Builder::new()
            .name("mmrt-watch-encode".into())
            .spawn(move || encode_frames(encoder, receiver, &window, size, &counters))
            .map_err(|e| Error::Request(format!("starting the encoder thread: {e}")))?
    };
    let mut request = Request::new(prompt);
    request.generation.max_new_tokens = args.max_tokens;
    let result = answer_loop(&mut pipeline, &request, args, &window, &counters);
    counters.stop.store(true, Ordering::Relaxed);
    let _ = encoding.join();
    result?;
    let failure = counters.failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    failure.map_or(Ok(()), Err)
}

/// Reader thread: frames from the source, `sample_fps` per second of stream
/// time kept, paced to their timestamps for a clip, handed to the encoder or dropped.
fn read_stream(mut source: Box<dyn FrameSource>, sender: mpsc::SyncSender<VideoFrame>, sample_fps: f64, pace: bool, counters: &Counters) {
    let start = Instant::now();
    let step = 1.0 / sample_fps;
    let mut next_keep = 0.0f64;
    while !counters.stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                counters.fail(e);
                return;
            }
        };
        counters.read.fetch_add(1, Ordering::Relaxed);
        if pace {
            let due = Duration::from_secs_f64(frame.seconds.max(0.0));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if frame.seconds + 1e-9 < next_keep {
            continue;
        }
        next_keep = (frame.seconds / step).floor() * step + step;
        counters.kept.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
    let skipped = source.skipped();
    if skipped > 0 {
        log::warn!("watch: {skipped} corrupt frame(s) skipped in the stream");
    }
    counters.ended.store(true, Ordering::Relaxed);
}

/// Encoder thread: each kept frame through the frame encoder into the cache,
/// then into the window (the latest `size` frames).
fn encode_frames(mut encoder: FrameEncoder, receiver: mpsc::Receiver<VideoFrame>, window: &Window, size: usize, counters: &Counters) {
    while !counters.stop.load(Ordering::Relaxed) {
        let frame = match receiver.recv_timeout(Duration::from_millis(50)) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let label = PathBuf::from(format!("stream frame {} ({:.3} s)", frame.index, frame.seconds));
        if let Err(e) = encoder.encode_picture(&frame.image, &label) {
            counters.fail(e);
            return;
        }
        counters.encoded.fetch_add(1, Ordering::Relaxed);
        let mut frames = window.lock().unwrap_or_else(|p| p.into_inner());
        frames.push_back(WindowFrame { frame, arrived: Instant::now() });
        while frames.len() > size {
            frames.pop_front();
        }
    }
}

/// This thread: an answer every `--every` from the window, until `--answers`,
/// the end of the stream, or a failure.
fn answer_loop(pipeline: &mut Pipeline, request: &Request, args: &WatchArgs, window: &Window, counters: &Counters) -> Result<()> {
    let start = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let (mut answered, mut missed, mut last_newest) = (0usize, 0u64, None::<u64>);
    let mut latencies = Vec::new();
    let mut tick = 1u32;
    loop {
        let due = start + args.every * tick;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if counters.failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        let (frames, arrived) = snapshot(window);
        let newest = frames.last().map(|f| f.index);
        let ended = counters.ended.load(Ordering::Relaxed);
        if frames.is_empty() || newest == last_newest {
            if ended && counters.encoded.load(Ordering::Relaxed) == counters.kept.load(Ordering::Relaxed) - counters.dropped.load(Ordering::Relaxed) {
                break;
            }
            tick += 1;
            continue;
        }
        last_newest = newest;
        let answer_start = Instant::now();
        let mut asked = request.clone();
        asked.inputs.insert(Modality::Video, vec![MediaInput::Frames { name: format!("stream window {}", answered + 1), frames: frames.clone() }]);
        let output = pipeline.run(&asked, |_| Ok(()))?;
        let latency = answer_start.elapsed();
        latencies.push(latency.as_secs_f64() * 1e3);
        answered += 1;
        print_answer(&mut stdout, args.json, answered, &frames, &output, latency, arrived.map(|a| a.elapsed()), start.elapsed(), counters, missed)?;
        if args.answers.is_some_and(|n| answered >= n) {
            break;
        }
        // Ticks that passed while answering are skipped, not queued.
        let elapsed_ticks = (start.elapsed().as_secs_f64() / args.every.as_secs_f64()).floor() as u32;
        if elapsed_ticks > tick {
            missed += u64::from(elapsed_ticks - tick);
            tick = elapsed_ticks;
        }
        tick += 1;
    }
    summarize(answered, &mut latencies, missed, counters);
    Ok(())
}

/// The window's frames (oldest first) and when the newest arrived.
fn snapshot(window: &Window) -> (Vec<VideoFrame>, Option<Instant>) {
    let frames = window.lock().unwrap_or_else(|p| p.into_inner());
    (frames.iter().map(|f| f.frame.clone()).collect(), frames.back().map(|f| f.arrived))
}

#[allow(clippy::too_many_arguments)]
fn print_answer(
    out: &mut impl Write,
    json: bool,
    answer: usize,
    frames: &[VideoFrame],
    output: &mmrt::Output,
    latency: Duration,
    frame_age: Option<Duration>,
    wall: Duration,
    counters: &Counters,
    missed: u64,
) -> Result<()> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let line = if json {
        serde_json::json!({
            "answer": answer,
            "wall_s": wall.as_secs_f64(),
            "text": output.text,
            "token_ids": output.token_ids,
            "window": {
                "indices": frames.iter().map(|f| f.index).collect::<Vec<_>>(),
                "seconds": frames.iter().map(|f| f.seconds).collect::<Vec<_>>(),
            },
            "latency_ms": ms(latency),
            "frame_age_ms": frame_age.map(ms),
            "frames_read": counters.read.load(Ordering::Relaxed),
            "frames_kept": counters.kept.load(Ordering::Relaxed),
            "frames_encoded": counters.encoded.load(Ordering::Relaxed),
            "frames_dropped": counters.dropped.load(Ordering::Relaxed),
            "missed_ticks": missed,
            "embedding_cache": output.input_report.embedding_cache,
            "stages": output.timings.to_json(),
        })
        .to_string()
    } else {
        let (first, last) = (frames.first().map_or(0.0, |f| f.seconds), frames.last().map_or(0.0, |f| f.seconds));
        format!(
            "[{:7.2} s] frames {first:.2}-{last:.2} s: {} ({:.0} ms, {} dropped)",
            wall.as_secs_f64(),
            output.text.trim(),
            ms(latency),
            counters.dropped.load(Ordering::Relaxed)
        )
    };
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| Error::io("<stdout>", e))
}

/// One line on stderr: answers, latency percentiles, drops, skipped ticks.
fn summarize(answered: usize, latencies: &mut [f64], missed: u64, counters: &Counters) {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    eprintln!(
        "watch: {answered} answers; latency p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; frames read {}, kept {}, encoded {}, dropped {}; {missed} tick(s) skipped",
        at(0.5),
        at(0.95),
        latencies.last().copied().unwrap_or(0.0),
        counters.read.load(Ordering::Relaxed),
        counters.kept.load(Ordering::Relaxed),
        counters.encoded.load(Ordering::Relaxed),
        counters.dropped.load(Ordering::Relaxed),
    );
}

fn check_args(args: &WatchArgs) -> Result<()> {
    let max = mmrt::limits::MAX_VIDEO_FRAMES;
    if args.window == 0 || args.window > max {
        return Err(Error::Request(format!("--window {} must be in 1..={max} frames (limits::MAX_VIDEO_FRAMES)", args.window)));
    }
    let max_fps = mmrt::limits::MAX_VIDEO_SAMPLE_FPS;
    if !(args.sample_fps.is_finite() && args.sample_fps > 0.0 && args.sample_fps <= max_fps) {
        return Err(Error::Request(format!("--sample-fps {} must be in (0, {max_fps}]", args.sample_fps)));
    }
    if args.answers == Some(0) {
        return Err(Error::Request("--answers must be at least 1".into()));
    }
    Ok(())
}

/// `WIDTHxHEIGHT`, both positive.
/// `1s`, `500ms`, `2.5s` or plain seconds, from 10 ms to an hour.
fn parse_interval(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let seconds = number.trim().parse::<f64>().map_err(|_| format!("--every takes a duration such as 1s or 500ms, got \"{text}\""))? * scale;
    if !(0.01..=3600.0).contains(&seconds) {
        return Err(format!("--every {text} must be between 10ms and 3600s"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_sizes_parse() {
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_interval("0s").is_err() && parse_interval("fast").is_err() && parse_interval("NaNs").is_err());
    }
}
