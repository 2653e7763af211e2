//! Video files through mmrt's FFmpeg plug-in (`mmrt-video/`, a library of
//! its own), opened at the first video file. Linking FFmpeg into mmrt would
//! map its ~130 shared libraries in every process (Debian's build: ~21 MiB
//! resident, ~30 ms of start-up), though most runs never see a video file.
//!
//! The plug-in is found, in order: at `MMRT_VIDEO_LIB`; beside the running
//! executable, or one folder up (cargo's test binaries live in
//! `target/*/deps`); then by the system's library search. Its ABI is
//! documented in `mmrt-video/src/lib.rs`; a plug-in of another ABI version is
//! refused.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::Library;

use super::{check_size, rgb_image, video_error, ClipInfo, FrameSource, OpenOptions, SourceFrame};
use crate::error::Result;

/// The ABI version this side speaks (`mmrt_video_abi`).
const ABI_VERSION: u32 = 1;
/// Bytes for a message from the plug-in.
const ERROR_LEN: usize = 1024;

#[repr(C)]
struct RawInfo {
    width: u32,
    height: u32,
    frames: u64,
    fps: f64,
    duration_seconds: f64,
    format: [u8; 64],
}

#[repr(C)]
struct RawFrame {
    index: u64,
    seconds: f64,
    kept: u8,
    width: u32,
    height: u32,
    stride: usize,
    data: *const u8,
}

type WarnFn = extern "C" fn(*const c_char);
type Open = unsafe extern "C" fn(*const c_char, u32, u32, u32, Option<WarnFn>, *mut RawInfo, *mut c_char, usize) -> *mut c_void;
type Advance = unsafe extern "C" fn(*mut c_void, u64, *mut RawFrame, *mut c_char, usize) -> i32;
type SeekBefore = unsafe extern "C" fn(*mut c_void, u64) -> i32;
type Skipped = unsafe extern "C" fn(*const c_void) -> u64;
type Close = unsafe extern "C" fn(*mut c_void);

/// The loaded plug-in's entry points (the library stays loaded for the process).
struct Plugin {
    _library: Library,
    open: Open,
    advance: Advance,
    seek_before: SeekBefore,
    skipped: Skipped,
    close: Close,
}

/// The plug-in, loaded once (or why it could not be).
fn plugin() -> std::result::Result<&'static Plugin, String> {
    static PLUGIN: OnceLock<std::result::Result<Plugin, String>> = OnceLock::new();
    PLUGIN.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn candidates() -> Vec<PathBuf> {
    let name = libloading::library_filename("mmrt_video");
    if let Some(path) = std::env::var_os("MMRT_VIDEO_LIB") {
        return vec![PathBuf::from(path)];
    }
    let mut found = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            found.push(dir.join(&name));
        }
    }
    found.push(PathBuf::from(name)); // the system's library search
    found
}

fn load() -> std::result::Result<Plugin, String> {
    let mut tried = Vec::new();
    for path in candidates() {
        let explicit = path.components().count() > 1;
        if explicit && !path.exists() {
            tried.push(format!("{}: not there", path.display()));
            continue;
        }
        // SAFETY: the plug-in's initializers are FFmpeg's and Rust's own; nothing else runs at load.
        match unsafe { Library::new(&path) } {
            Ok(library) => return bind(library, &path),
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    Err(format!(
        "video files need mmrt's FFmpeg plug-in, which was not found ({}); build it with `cargo build --release -p mmrt-video` \
         (after `bash .ci/setup-build`, which builds its FFmpeg) or point MMRT_VIDEO_LIB at it",
        tried.join("; ")
    ))
}

fn bind(library: Library, path: &Path) -> std::result::Result<Plugin, String> {
    let missing = |symbol: &str, e: libloading::Error| format!("{} is not mmrt's video plug-in: no {symbol} ({e})", path.display());
    // SAFETY: the signatures are the plug-in's ABI, version-checked before any other call.
    unsafe {
        let abi = *library.get::<extern "C" fn() -> u32>(b"mmrt_video_abi\0").map_err(|e| missing("mmrt_video_abi", e))?;
        if abi() != ABI_VERSION {
            return Err(format!("{} speaks video plug-in ABI {}, this mmrt {ABI_VERSION}: rebuild it with this mmrt", path.display(), abi()));
        }
        Ok(Plugin {
            open: *library.get::<Open>(b"mmrt_video_open\0").map_err(|e| missing("mmrt_video_open", e))?,
            advance: *library.get::<Advance>(b"mmrt_video_advance\0").map_err(|e| missing("mmrt_video_advance", e))?,
            seek_before: *library.get::<SeekBefore>(b"mmrt_video_seek_before\0").map_err(|e| missing("mmrt_video_seek_before", e))?,
            skipped: *library.get::<Skipped>(b"mmrt_video_skipped\0").map_err(|e| missing("mmrt_video_skipped", e))?,
            close: *library.get::<Close>(b"mmrt_video_close\0").map_err(|e| missing("mmrt_video_close", e))?,
            _library: library,
        })
    }
}

extern "C" fn warn(message: *const c_char) {
    // SAFETY: the plug-in passes a NUL-terminated string, valid for the call.
    log::warn!("video: {}", unsafe { CStr::from_ptr(message) }.to_string_lossy());
}

/// The message the plug-in wrote.
fn message(buffer: &[c_char]) -> String {
    // SAFETY: the plug-in NUL-terminates within the buffer (or leaves it zeroed).
    unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy().into_owned()
}

/// A video file being decoded by the plug-in.
pub struct FileSource {
    plugin: &'static Plugin,
    handle: *mut c_void,
    path: PathBuf,
    info: ClipInfo,
}

// SAFETY: the plug-in's source is owned by this value alone and used from one thread at a time.
unsafe impl Send for FileSource {}

impl FileSource {
    /// Open `path`'s best video stream.
    pub fn open(path: &Path, options: OpenOptions) -> Result<Self> {
        let plugin = plugin().map_err(|e| video_error(path, &e))?;
        let c_path = c_path(path)?;
        let (width, height) = options.size.unwrap_or((0, 0));
        let mut raw = RawInfo { width: 0, height: 0, frames: 0, fps: 0.0, duration_seconds: -1.0, format: [0; 64] };
        let mut error = [0 as c_char; ERROR_LEN];
        let max = crate::limits::MAX_VIDEO_SIDE;
        // SAFETY: every pointer is valid for the call; the plug-in writes `raw` or `error`.
        let handle = unsafe { (plugin.open)(c_path.as_ptr(), width, height, max, Some(warn), &mut raw, error.as_mut_ptr(), ERROR_LEN) };
        if handle.is_null() {
            return Err(video_error(path, &message(&error)));
        }
        let format = CStr::from_bytes_until_nul(&raw.format).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        let info = ClipInfo {
            width: raw.width,
            height: raw.height,
            frames: (raw.frames > 0).then_some(raw.frames),
            fps: (raw.fps > 0.0).then_some(raw.fps),
            duration_seconds: (raw.duration_seconds >= 0.0).then_some(raw.duration_seconds),
            format,
        };
        let source = FileSource { plugin, handle, path: path.to_path_buf(), info };
        check_size(path, source.info.width, source.info.height)?;
        Ok(source)
    }
}

#[cfg(unix)]
fn c_path(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| video_error(path, "the path holds a NUL byte"))
}

#[cfg(not(unix))]
fn c_path(path: &Path) -> Result<CString> {
    let text = path.to_str().ok_or_else(|| video_error(path, "the path is not UTF-8"))?;
    CString::new(text).map_err(|_| video_error(path, "the path holds a NUL byte"))
}

impl FrameSource for FileSource {
    fn info(&self) -> &ClipInfo {
        &self.info
    }

    fn advance(&mut self, keep_from: u64) -> Result<Option<SourceFrame>> {
        let mut frame = RawFrame { index: 0, seconds: 0.0, kept: 0, width: 0, height: 0, stride: 0, data: std::ptr::null() };
        let mut error = [0 as c_char; ERROR_LEN];
        // SAFETY: the handle is open; the pointers are valid for the call.
        match unsafe { (self.plugin.advance)(self.handle, keep_from, &mut frame, error.as_mut_ptr(), ERROR_LEN) } {
            0 => Ok(None),
            1 => {
                let image = if frame.kept == 1 {
                    check_size(&self.path, frame.width, frame.height)?;
                    let row = frame.width as usize * 3;
                    if frame.data.is_null() || frame.stride < row {
                        return Err(video_error(&self.path, "the video plug-in returned a frame without its pixels"));
                    }
                    let len = frame.stride * (frame.height as usize - 1) + row;
                    // SAFETY: the plug-in's RGB24 frame: `height` rows `stride` apart, valid until the next call.
                    let data = unsafe { std::slice::from_raw_parts(frame.data, len) };
                    Some(rgb_image(data, frame.stride, frame.width, frame.height))
                } else {
                    None
                };
                Ok(Some(SourceFrame { index: frame.index, seconds: frame.seconds, image }))
            }
            _ => Err(video_error(&self.path, &message(&error))),
        }
    }

    fn skipped(&self) -> u64 {
        // SAFETY: the handle is open.
        unsafe { (self.plugin.skipped)(self.handle) }
    }

    fn seek_before(&mut self, index: u64) -> Result<bool> {
        // SAFETY: the handle is open.
        Ok(unsafe { (self.plugin.seek_before)(self.handle, index) } == 1)
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        // SAFETY: the handle is open and not used again.
        unsafe { (self.plugin.close)(self.handle) }
    }
}
