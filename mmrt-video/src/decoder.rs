//! Video files through FFmpeg's libraries (libavformat demuxes, libavcodec
//! decodes with frame threads, libswscale converts to RGB24): MP4/MOV, MKV,
//! WebM, AVI, MPEG-TS/PS, FLV, Ogg, IVF and raw streams holding H.264, HEVC,
//! VP8, VP9, MPEG-1/2/4, H.263, MJPEG, Theora, ProRes or FFV1 (the build
//! .ci/setup-ffmpeg makes; a system FFmpeg brings whatever it has).
//! Conversion is bilinear with FFmpeg's default colour matrix, which is what
//! PyAV's `to_ndarray(format="rgb24")` does, so frames equal PyAV's.
//!
//! Frame indices count frames in display order from the first one, as PyAV's
//! `decode()` yields them; after a seek they are recomputed from timestamps.
//!
//! Errors are messages (mmrt names the file); warnings go to the caller's
//! callback (see `lib.rs`).

use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg_next as ff;
use ff::format::Pixel;
use ff::software::scaling;

use crate::skip::NonReference;

type Result<T> = std::result::Result<T, String>;

/// What is known of a clip before decoding (mmrt's `ClipInfo`).
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    pub frames: Option<u64>,
    pub fps: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub format: String,
}

/// A decoded frame: its pixels, when kept, are in [`FileSource::rgb`].
pub struct Frame {
    pub index: u64,
    pub seconds: f64,
    pub kept: bool,
}

/// Where warnings go.
pub type Warn = Box<dyn Fn(&str)>;

fn check_size(width: u32, height: u32, max_side: u32) -> Result<()> {
    if width == 0 || height == 0 || width > max_side || height > max_side {
        return Err(format!("frame size {width}x{height} is outside 1..={max_side} per side (limits::MAX_VIDEO_SIDE)"));
    }
    Ok(())
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ff::init();
        // FFmpeg's own chatter would interleave with ours; errors we care about come back as values.
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Open a file's container. `avformat_find_stream_info` (what
/// `ffmpeg_next::format::input` always runs) decodes the first frames to fill in
/// what the header left out; an MP4/MOV header already gives the video
/// stream's codec, size, rate, frame count and start, so there it is skipped:
/// it would decode the keyframe twice (11 ms of bigbuckbunny.mp4's ~100).
fn open_input(path: &Path) -> std::result::Result<ff::format::context::Input, ff::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| ff::Error::InvalidData)?;
    // SAFETY: FFmpeg's documented open sequence; on failure avformat_open_input frees the context and
    // nulls the pointer, and on success `Input::wrap` owns it (closed with avformat_close_input on drop).
    unsafe {
        let mut context = std::ptr::null_mut();
        let opened = ff::ffi::avformat_open_input(&mut context, c_path.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut());
        if opened < 0 {
            return Err(ff::Error::from(opened));
        }
        let input = ff::format::context::Input::wrap(context);
        if !header_is_enough(&input) {
            let probed = ff::ffi::avformat_find_stream_info(context, std::ptr::null_mut());
            if probed < 0 {
                return Err(ff::Error::from(probed));
            }
        }
        Ok(input)
    }
}

/// A stream's codec parameters as FFmpeg holds them (its size and extradata have no safe accessor).
fn codec_parameters<'a>(stream: &'a ff::format::stream::Stream<'_>) -> &'a ff::ffi::AVCodecParameters {
    // SAFETY: `codecpar` is allocated with the stream and freed with its input, which outlives `stream`.
    unsafe { &*(*stream.as_ptr()).codecpar }
}

/// An MP4/MOV whose best video stream the header fully describes.
fn header_is_enough(input: &ff::format::context::Input) -> bool {
    let mov = input.format().name().split(',').any(|name| name == "mov" || name == "mp4");
    let Some(stream) = input.streams().best(ff::media::Type::Video) else { return false };
    let parameters = codec_parameters(&stream);
    mov && parameters.codec_id != ff::ffi::AVCodecID::AV_CODEC_ID_NONE
        && parameters.width > 0
        && parameters.height > 0
        && stream.avg_frame_rate().numerator() > 0
        && stream.frames() > 0
}

/// What leaves unreferenced pictures out: H.264 in `avcC` form at a constant
/// frame rate (average and real rates agree), where a frame's index follows
/// from its timestamp, as after a seek.
fn droppable(stream: &ff::format::stream::Stream, fps: Option<f64>) -> Option<NonReference> {
    let p = codec_parameters(stream);
    let constant = fps.is_some() && stream.avg_frame_rate() == stream.rate();
    if p.codec_id != ff::ffi::AVCodecID::AV_CODEC_ID_H264 || !constant || p.extradata.is_null() || p.extradata_size <= 0 {
        return None;
    }
    // SAFETY: extradata is `extradata_size` bytes owned by the stream's parameters, alive here.
    let extradata = unsafe { std::slice::from_raw_parts(p.extradata, p.extradata_size as usize) };
    NonReference::for_avcc(extradata)
}

/// A video file being decoded.
pub struct FileSource {
    path: PathBuf,
    max_side: u32,
    warn: Warn,
    /// The last kept frame as RGB24 at the delivered size.
    pub rgb: ff::frame::Video,
    input: ff::format::context::Input,
    stream: usize,
    decoder: ff::decoder::Video,
    /// Converter for the current input format and size.
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    size: Option<(u32, u32)>,
    time_base: f64,
    start_seconds: f64,
    pub info: ClipInfo,
    frame: ff::frame::Video,
    next_index: u64,
    /// After a seek, the next frame's index comes from its timestamp.
    resync: bool,
    /// Unreferenced pictures before the next kept frame are left out (constant-rate H.264 only).
    droppable: Option<NonReference>,
    /// Once a picture was left out, every index comes from its frame's timestamp.
    by_timestamp: bool,
    /// Corrupt packets and frames skipped.
    skipped: u64,
    /// The input is exhausted and the decoder is giving back what it holds.
    draining: bool,
    done: bool,
}

impl FileSource {
    /// Open `path`'s best video stream, delivering frames at `size` (None: the clip's own),
    /// refusing frames wider or taller than `max_side`.
    pub fn open(path: &Path, size: Option<(u32, u32)>, max_side: u32, warn: Warn) -> Result<Self> {
        init();
        if !path.is_file() {
            return Err("no such file".into());
        }
        let fail = |what: &str, e: ff::Error| format!("{what}: {e}");
        let input = open_input(path).map_err(|e| fail("cannot open as a video", e))?;
        let stream = input.streams().best(ff::media::Type::Video).ok_or("holds no video stream")?;
        let index = stream.index();
        let time_base = f64::from(stream.time_base());
        let start_seconds = if stream.start_time() == ff::ffi::AV_NOPTS_VALUE { 0.0 } else { stream.start_time() as f64 * time_base };
        let fps = [stream.avg_frame_rate(), stream.rate()].into_iter().map(f64::from).find(|r| r.is_finite() && *r > 0.0);
        let declared = (stream.frames() > 0).then_some(stream.frames() as u64);
        let duration = (stream.duration() > 0).then(|| stream.duration() as f64 * time_base);
        let mut context = ff::codec::context::Context::from_parameters(stream.parameters()).map_err(|e| fail("unsupported codec", e))?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        context.set_threading(ff::codec::threading::Config { kind: ff::codec::threading::Type::Frame, count: threads, ..Default::default() });
        let droppable = droppable(&stream, fps);
        let decoder = context.decoder().video().map_err(|e| fail("no decoder for its codec", e))?;
        check_size(decoder.width(), decoder.height(), max_side)?;
        let codec = decoder.codec().map(|c| c.name().to_string()).unwrap_or_default();
        let (width, height) = size.unwrap_or((decoder.width(), decoder.height()));
        let info = ClipInfo {
            width,
            height,
            frames: declared,
            fps,
            duration_seconds: duration,
            format: format!("{} / {codec}", input.format().name()),
        };
        let mut source = Self {
            path: path.to_path_buf(),
            max_side,
            warn,
            rgb: ff::frame::Video::empty(),
            input,
            stream: index,
            decoder,
            scaler: None,
            size,
            time_base,
            start_seconds,
            info,
            frame: ff::frame::Video::empty(),
            next_index: 0,
            resync: false,
            droppable,
            by_timestamp: false,
            skipped: 0,
            draining: false,
            done: false,
        };
        if source.info.frames.is_none() {
            source.info.frames = source.count_packets()?;
        }
        Ok(source)
    }

    /// Containers that do not declare a frame count (MKV, WebM): count the
    /// stream's packets (demuxing only, no decoding), then rewind.
    fn count_packets(&mut self) -> Result<Option<u64>> {
        let mut count = 0u64;
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => count += 1,
                Ok(()) | Err(ff::Error::InvalidData) => {}
                Err(_) => break,
            }
        }
        if self.input.seek(0, ..1).is_err() {
            // Not seekable: reopen (a regular file always can be).
            self.input = open_input(&self.path).map_err(|e| format!("cannot reopen: {e}"))?;
        }
        Ok((count > 0).then_some(count))
    }

    /// Whether `packet` is an unreferenced picture shown before frame `keep_from`.
    fn not_needed(&self, packet: &ff::Packet, keep_from: u64) -> bool {
        let (Some(check), Some(fps), Some(pts)) = (&self.droppable, self.info.fps, packet.pts()) else { return false };
        // Half a frame of margin: a timestamp rounding to frame `keep_from` is needed.
        let before = self.position(pts as f64 * self.time_base, fps) < keep_from as f64 - 0.5;
        keep_from != u64::MAX && before && !packet.is_key() && packet.data().is_some_and(|d| check.is_unreferenced(d))
    }

    /// Feed the decoder one packet of our stream; `false` once the input is exhausted.
    fn feed(&mut self, keep_from: u64) -> Result<bool> {
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() != self.stream => continue,
                Ok(()) if self.not_needed(&packet, keep_from) => self.by_timestamp = true,
                Ok(()) => match self.decoder.send_packet(&packet) {
                    Ok(()) => return Ok(true),
                    Err(ff::Error::Other { errno: ff::util::error::EAGAIN }) => return Ok(true),
                    Err(e) => {
                        self.skipped += 1;
                        (self.warn)(&format!("a corrupt packet near frame {} was skipped ({e})", self.next_index));
                    }
                },
                Err(ff::Error::Eof) => return Ok(false),
                Err(ff::Error::InvalidData) => {
                    self.skipped += 1;
                    (self.warn)(&format!("unreadable data near frame {} was skipped", self.next_index));
                }
                Err(e) => {
                    (self.warn)(&format!("reading stopped near frame {}: {e}", self.next_index));
                    return Ok(false);
                }
            }
        }
    }

    /// The decoded frame in `self.frame` into `self.rgb`, as RGB24 at the delivered size.
    fn convert(&mut self) -> Result<()> {
        let (format, w, h) = (self.frame.format(), self.frame.width(), self.frame.height());
        check_size(w, h, self.max_side)?;
        let (out_w, out_h) = self.size.unwrap_or((w, h));
        if !matches!(&self.scaler, Some((f, sw, sh, _)) if (*f, *sw, *sh) == (format, w, h)) {
            let scaler = scaling::Context::get(format, w, h, Pixel::RGB24, out_w, out_h, scaling::Flags::BILINEAR)
                .map_err(|e| format!("no converter from {format:?} {w}x{h} to RGB: {e}"))?;
            self.scaler = Some((format, w, h, scaler));
        }
        let (.., scaler) = self.scaler.as_mut().expect("set above");
        scaler.run(&self.frame, &mut self.rgb).map_err(|e| format!("colour conversion failed: {e}"))?;
        debug_assert_eq!((self.rgb.width(), self.rgb.height()), (out_w, out_h));
        Ok(())
    }

    /// Where a timestamp (in seconds) falls in frames from the first one; rounded, it is that frame's index.
    fn position(&self, seconds: f64, fps: f64) -> f64 {
        (seconds - self.start_seconds) * fps
    }

    fn frame_seconds(&self) -> Option<f64> {
        self.frame.pts().or_else(|| self.frame.timestamp()).map(|pts| pts as f64 * self.time_base)
    }

    /// The next frame in display order, its pixels converted into [`FileSource::rgb`] when its
    /// index is at least `keep_from`; `None` at the end.
    pub fn advance(&mut self, keep_from: u64) -> Result<Option<Frame>> {
        loop {
            if self.done {
                return Ok(None);
            }
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    let fps = self.info.fps.unwrap_or(0.0);
                    let seconds = self.frame_seconds();
                    let index = match (self.resync || self.by_timestamp, seconds) {
                        (true, Some(s)) if fps > 0.0 => self.position(s, fps).round().max(0.0) as u64,
                        _ => self.next_index,
                    };
                    self.resync = false;
                    self.next_index = index + 1;
                    let seconds = seconds.unwrap_or_else(|| if fps > 0.0 { index as f64 / fps } else { index as f64 });
                    let kept = index >= keep_from;
                    if kept {
                        self.convert()?;
                    }
                    return Ok(Some(Frame { index, seconds, kept }));
                }
                Err(ff::Error::Other { errno: ff::util::error::EAGAIN }) => {
                    if !self.feed(keep_from)? {
                        self.draining = true;
                        if self.decoder.send_eof().is_err() {
                            self.done = true;
                        }
                    }
                }
                Err(ff::Error::Eof) => self.done = true,
                Err(_) if self.draining => {
                    // The input ended inside a frame (a truncated file): the end, counted as a skipped
                    // frame. A reader still missing frames says so with the clip's count.
                    self.skipped += 1;
                    self.done = true;
                }
                Err(e) => {
                    self.skipped += 1;
                    (self.warn)(&format!("a frame near {} could not be decoded and was skipped ({e})", self.next_index));
                }
            }
        }
    }

    /// Corrupt frames skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Jump to a point before frame `index` when the container can; `false` when it cannot.
    pub fn seek_before(&mut self, index: u64) -> bool {
        let Some(fps) = self.info.fps else { return false };
        let target_us = ((self.start_seconds + index as f64 / fps) * 1e6) as i64;
        if self.input.seek(target_us, ..target_us + 1).is_err() {
            return false;
        }
        self.decoder.flush();
        (self.resync, self.draining, self.done) = (true, false, false);
        true
    }
}
