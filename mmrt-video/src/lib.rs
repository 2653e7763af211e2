//! mmrt's video-file plug-in: FFmpeg's libraries (libavformat, libavcodec,
//! libswscale) behind a small C ABI. mmrt loads this library at its first
//! video file (`src/video/plugin.rs`), so a process that never opens one never
//! maps FFmpeg and the ~130 shared libraries it depends on (Debian's build:
//! ~21 MiB of resident memory and ~30 ms of start-up in every run).
//!
//! The ABI (version [`ABI_VERSION`]; mmrt refuses another):
//!
//! * `mmrt_video_open(path, width, height, max_side, warn, info, error, error_len)`:
//!   a source, or null with a message in `error`; `width`/`height` 0 deliver
//!   the clip's own size; `warn` receives each warning (NUL-terminated UTF-8).
//! * `mmrt_video_advance(source, keep_from, frame, error, error_len)`: 1 with
//!   the next frame in `frame` (its pixels, when kept, valid until the next
//!   call on this source), 0 at the end, -1 with a message.
//! * `mmrt_video_seek_before(source, index)`: 1 sought, 0 cannot.
//! * `mmrt_video_skipped(source)`, `mmrt_video_close(source)`.
//!
//! No call unwinds into the caller: a panic becomes an error.

mod decoder;
mod skip;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use decoder::FileSource;

/// Bumped whenever a signature or a struct below changes.
pub const ABI_VERSION: u32 = 1;

/// What is known of a clip before decoding.
#[repr(C)]
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    /// 0: unknown.
    pub frames: u64,
    /// 0: unknown.
    pub fps: f64,
    /// Negative: unknown.
    pub duration_seconds: f64,
    /// Container and codec, NUL-terminated UTF-8 (truncated).
    pub format: [u8; 64],
}

/// One decoded frame.
#[repr(C)]
pub struct Frame {
    pub index: u64,
    pub seconds: f64,
    /// 1 when `data` holds its pixels (RGB24, `stride` bytes per row).
    pub kept: u8,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: *const u8,
}

/// Receives one warning, NUL-terminated UTF-8.
pub type WarnFn = extern "C" fn(*const c_char);

/// The ABI version this library implements.
#[no_mangle]
pub extern "C" fn mmrt_video_abi() -> u32 {
    ABI_VERSION
}

/// # Safety
/// `path` is a NUL-terminated path; `info` points to a `ClipInfo`; `error` to `error_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mmrt_video_open(
    path: *const c_char,
    width: u32,
    height: u32,
    max_side: u32,
    warn: Option<WarnFn>,
    info: *mut ClipInfo,
    error: *mut c_char,
    error_len: usize,
) -> *mut FileSource {
    let opened = guarded(|| {
        let path = path_of(CStr::from_ptr(path));
        let size = (width > 0 && height > 0).then_some((width, height));
        let warn: decoder::Warn = Box::new(move |message: &str| {
            if let (Some(warn), Ok(text)) = (warn, std::ffi::CString::new(message)) {
                warn(text.as_ptr());
            }
        });
        FileSource::open(&path, size, max_side, warn)
    });
    match opened {
        Ok(source) => {
            let i = &source.info;
            let mut format = [0u8; 64];
            let name = i.format.as_bytes();
            let n = name.len().min(format.len() - 1);
            format[..n].copy_from_slice(&name[..n]);
            *info = ClipInfo {
                width: i.width,
                height: i.height,
                frames: i.frames.unwrap_or(0),
                fps: i.fps.unwrap_or(0.0),
                duration_seconds: i.duration_seconds.unwrap_or(-1.0),
                format,
            };
            Box::into_raw(Box::new(source))
        }
        Err(message) => {
            write_error(&message, error, error_len);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `source` came from `mmrt_video_open` and is not closed; `frame` points to a `Frame`.
#[no_mangle]
pub unsafe extern "C" fn mmrt_video_advance(source: *mut FileSource, keep_from: u64, frame: *mut Frame, error: *mut c_char, error_len: usize) -> i32 {
    let source = &mut *source;
    match guarded(|| source.advance(keep_from)) {
        Ok(Some(f)) => {
            let rgb = &source.rgb;
            let kept = f.kept && !rgb.is_empty() && rgb.planes() > 0;
            *frame = Frame {
                index: f.index,
                seconds: f.seconds,
                kept: kept as u8,
                width: if kept { rgb.width() } else { 0 },
                height: if kept { rgb.height() } else { 0 },
                stride: if kept { rgb.stride(0) } else { 0 },
                data: if kept { rgb.data(0).as_ptr() } else { std::ptr::null() },
            };
            1
        }
        Ok(None) => 0,
        Err(message) => {
            write_error(&message, error, error_len);
            -1
        }
    }
}

/// # Safety
/// `source` came from `mmrt_video_open` and is not closed.
#[no_mangle]
pub unsafe extern "C" fn mmrt_video_seek_before(source: *mut FileSource, index: u64) -> i32 {
    let source = &mut *source;
    guarded(|| Ok(source.seek_before(index))).unwrap_or(false) as i32
}

/// # Safety
/// `source` came from `mmrt_video_open` and is not closed.
#[no_mangle]
pub unsafe extern "C" fn mmrt_video_skipped(source: *const FileSource) -> u64 {
    (*source).skipped()
}

/// # Safety
/// `source` came from `mmrt_video_open` (or is null) and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mmrt_video_close(source: *mut FileSource) {
    if !source.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(source))));
    }
}

/// `f()`, a panic turned into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("the video plug-in panicked".into()))
}

#[cfg(unix)]
fn path_of(c: &CStr) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes()))
}

#[cfg(not(unix))]
fn path_of(c: &CStr) -> PathBuf {
    PathBuf::from(c.to_string_lossy().into_owned())
}

/// `message` into `error` (NUL-terminated, truncated at a character boundary).
unsafe fn write_error(message: &str, error: *mut c_char, error_len: usize) {
    if error.is_null() || error_len == 0 {
        return;
    }
    let mut n = message.len().min(error_len - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    std::ptr::copy_nonoverlapping(message.as_ptr(), error as *mut u8, n);
    *error.add(n) = 0;
}
