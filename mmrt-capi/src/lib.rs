//! The C ABI of mmrt (`libmmrt_c`, header `include/mmrt.h`): load ONNX
//! Runtime and a bundle, build a request (text, images as files, encoded bytes
//! or raw RGB frames, audio as files or PCM), generate with a token callback
//! and a cancel flag, and read the result (text, ids, timings).
//!
//! Every entry point returns an [`MmrtStatus`] and runs inside
//! [`error::guard`], so no panic unwinds into C. Handles are ids in
//! [`handles`]' registry, so a NULL, freed, garbage or wrong-kind handle is an
//! error code, never a crash. The header is generated from this file by
//! cbindgen (`tests/header.rs` fails when the committed one is stale).

pub mod error;
pub mod handles;

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmrt::generate::{Sampling, StopReason};
use mmrt::manifest::Modality;
use mmrt::pipeline::{CancelFlag, MediaInput};
use mmrt::runtime::provider_options::ProviderSpec;
use mmrt::runtime::{ExecutionProviderKind, OrtRuntime, SessionConfig};
use mmrt::{Bundle, Pipeline, Request};

pub use error::MmrtStatus;
use error::{guard, CallError};
use handles::{Entry, ResultData};

/// Version of this header's types and functions; bumped when a struct's
/// layout or a function's signature changes. Compare it with
/// `mmrt_abi_version()` to catch a header/library mismatch.
pub const MMRT_ABI_VERSION: u32 = 1;

/// An ONNX Runtime library loaded into the process (opaque).
pub struct MmrtRuntime {
    _opaque: [u8; 0],
}

/// A loaded bundle, ready to generate (opaque).
pub struct MmrtModel {
    _opaque: [u8; 0],
}

/// A request being built: prompt, media, generation settings (opaque).
pub struct MmrtRequest {
    _opaque: [u8; 0],
}

/// The result of one generation (opaque, read-only).
pub struct MmrtResult {
    _opaque: [u8; 0],
}

/// How `mmrt_model_load` opens a bundle. Fill it with
/// `mmrt_model_options_init` first, then set the fields you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmrtModelOptions {
    /// Bundle directory (holds bundle.json) or ONNX model folder; UTF-8, required.
    pub bundle_path: *const c_char,
    /// Execution provider: "cpu" (NULL or "" too), "cuda", "tensorrt", "coreml",
    /// optionally with its options: "cuda:device_id=0,gpu_mem_limit=4GiB".
    pub provider: *const c_char,
    /// Fail (`MMRT_ERROR_EXECUTION_PROVIDER`) instead of falling back to CPU
    /// when the provider cannot be used; 0 = fall back.
    pub strict_provider: i32,
    /// Intra-op threads per stage; 0 lets ONNX Runtime choose (one per physical core).
    pub threads: u32,
}

/// Timings and counts of a result.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MmrtTimings {
    /// From the start of `mmrt_generate` to the first generated token, ms; -1 when none was generated.
    pub time_to_first_token_ms: f64,
    /// The prompt pass (prefill), ms.
    pub prefill_ms: f64,
    /// The token-by-token decode, ms.
    pub decode_ms: f64,
    /// The whole `mmrt_generate` call (media encoding and output generation included), ms.
    pub total_ms: f64,
    /// Decode speed: tokens after the first per second of decode (0 when fewer than 2 tokens).
    pub decode_tokens_per_second: f64,
    /// Prompt tokens after media placeholders were expanded (BOS included).
    pub prompt_tokens: usize,
    /// Generated tokens (a final stop token included).
    pub generated_tokens: usize,
}

/// Why generation ended.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmrtStopReason {
    /// A stop token was generated.
    MMRT_STOP_TOKEN = 0,
    /// The new-token budget (`mmrt_request_set_max_tokens` or the bundle's) was reached.
    MMRT_STOP_MAX_TOKENS = 1,
    /// The model's context is full.
    MMRT_STOP_CONTEXT_FULL = 2,
    /// A stop string (`mmrt_request_add_stop`) appeared; the text ends before it.
    MMRT_STOP_STRING = 3,
}

/// Called by `mmrt_generate` with each new piece of text: `piece` is UTF-8,
/// `len` bytes, NUL-terminated for convenience (use `len`: a piece may in
/// principle contain a NUL). It is valid only during the call. Return 0 to go
/// on, non-zero to cancel (`mmrt_generate` then returns `MMRT_ERROR_CANCELLED`).
/// Runs on the thread that called `mmrt_generate`.
pub type MmrtTokenCallback = Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> i32>;

// ---------------------------------------------------------------------------
// Arguments from C.

/// A required UTF-8 C string.
unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, CallError> {
    if ptr.is_null() {
        return Err(CallError::null(what));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| CallError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// A required path (any bytes on Unix, UTF-8 elsewhere).
unsafe fn path_arg(ptr: *const c_char, what: &str) -> Result<PathBuf, CallError> {
    if ptr.is_null() {
        return Err(CallError::null(what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(CStr::from_ptr(ptr).to_bytes())))
    }
    #[cfg(not(unix))]
    {
        str_arg(ptr, what).map(PathBuf::from)
    }
}

/// A required buffer of `len` items (`len` > 0).
unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], CallError> {
    if ptr.is_null() {
        return Err(CallError::null(what));
    }
    if len == 0 {
        return Err(CallError::invalid(format!("{what} is empty (length 0)")));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(CallError::invalid(format!("{what}: length {len} is larger than any buffer can be")));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Write a new handle into a required out-pointer.
unsafe fn write_out<T>(out: *mut *mut T, entry: Entry) {
    *out = handles::insert(entry) as *mut T;
}

/// Clear a required out-pointer first, so a failed call leaves NULL there.
unsafe fn clear_out<T>(out: *mut *mut T, what: &str) -> Result<(), CallError> {
    if out.is_null() {
        return Err(CallError::null(what));
    }
    *out = std::ptr::null_mut();
    Ok(())
}

/// Lock a request for reading or changing (nothing panics while it is held).
fn with_request<R>(handle: *const MmrtRequest, f: impl FnOnce(&mut Request) -> Result<R, CallError>) -> Result<R, CallError> {
    let request = handles::request(handle as usize)?;
    let mut guard = request.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut guard)
}

/// Append `input` to the request's media of `modality`, after the ones already added.
fn add_media(handle: *mut MmrtRequest, modality: Modality, input: MediaInput) -> Result<(), CallError> {
    with_request(handle, |request| {
        request.inputs.entry(modality).or_default().push(input);
        Ok(())
    })
}

/// A media file must exist when it is added (the error names it at once).
fn existing_file(path: PathBuf, what: &str) -> Result<PathBuf, CallError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(CallError::new(MmrtStatus::MMRT_ERROR_IO, format!("{what} {}: no such file", path.display())))
    }
}

// ---------------------------------------------------------------------------
// Library information and errors.

/// The library version, e.g. "0.1.0" (static string).
#[no_mangle]
pub extern "C" fn mmrt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `MMRT_ABI_VERSION` of the library (compare with the header's).
#[no_mangle]
pub extern "C" fn mmrt_abi_version() -> u32 {
    MMRT_ABI_VERSION
}

/// The message of the last failed `mmrt_*` call on this thread ("" when none
/// failed yet): what was expected, what was found, and where. Never NULL. The
/// pointer stays valid until the next failing call on this thread.
#[no_mangle]
pub extern "C" fn mmrt_last_error() -> *const c_char {
    error::last_error_ptr()
}

/// The name of a status code, e.g. "MMRT_ERROR_INVALID_HANDLE" (static
/// string; "MMRT_UNKNOWN_STATUS" for a value that is none).
#[no_mangle]
pub extern "C" fn mmrt_status_name(status: i32) -> *const c_char {
    let name = error::ALL_STATUSES.iter().find(|s| **s as i32 == status).map_or("MMRT_UNKNOWN_STATUS", |s| s.name());
    // Static NUL-terminated copies of the names.
    static NAMES: std::sync::OnceLock<Vec<(&'static str, std::ffi::CString)>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut all: Vec<&'static str> = error::ALL_STATUSES.iter().map(|s| s.name()).collect();
        all.push("MMRT_UNKNOWN_STATUS");
        all.into_iter().map(|n| (n, std::ffi::CString::new(n).expect("no NUL"))).collect()
    });
    names.iter().find(|(n, _)| *n == name).map_or(std::ptr::null(), |(_, c)| c.as_ptr())
}

// ---------------------------------------------------------------------------
// Runtime.

/// Load ONNX Runtime. `ort_library` (nullable) names the library file or its
/// folder; NULL searches: the MMRT_ORT_LIB environment variable, next to the
/// executable, mmrt's `.cache/onnxruntime/`, an installed Python
/// `onnxruntime`. A process holds one ONNX Runtime: a later call returns a
/// handle to the library loaded first, whatever its argument.
///
/// # Safety
/// `ort_library` is NULL or a NUL-terminated string; `runtime_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_runtime_new(ort_library: *const c_char, runtime_out: *mut *mut MmrtRuntime) -> MmrtStatus {
    guard(|| {
        clear_out(runtime_out, "runtime_out")?;
        let explicit = if ort_library.is_null() { None } else { Some(path_arg(ort_library, "ort_library")?) };
        let runtime = OrtRuntime::load(explicit.as_deref())?;
        write_out(runtime_out, Entry::Runtime(runtime.into()));
        Ok(())
    })
}

/// Free a runtime handle (models loaded with it stay usable). NULL is a no-op.
///
/// # Safety
/// `runtime` is NULL or a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_runtime_free(runtime: *mut MmrtRuntime) -> MmrtStatus {
    guard(|| free_handle(runtime as usize, "a runtime", |e| matches!(e, Entry::Runtime(_))))
}

fn free_handle(id: usize, what: &'static str, matches: fn(&Entry) -> bool) -> Result<(), CallError> {
    if id == 0 {
        return Ok(());
    }
    handles::remove(id, what, matches)
}

// ---------------------------------------------------------------------------
// Model.

/// Fill `options` with the defaults: no bundle, CPU, fallback allowed, ONNX Runtime's thread choice.
///
/// # Safety
/// `options` is NULL or points to an `MmrtModelOptions`.
#[no_mangle]
pub unsafe extern "C" fn mmrt_model_options_init(options: *mut MmrtModelOptions) -> MmrtStatus {
    guard(|| {
        if options.is_null() {
            return Err(CallError::null("options"));
        }
        *options = MmrtModelOptions { bundle_path: std::ptr::null(), provider: std::ptr::null(), strict_provider: 0, threads: 0 };
        Ok(())
    })
}

/// Load the bundle `options->bundle_path` with `runtime`: every stage's
/// session, the tokenizer, the chat template. Slow (seconds for a real model):
/// load once, generate many times.
///
/// # Safety
/// `options` points to an initialized `MmrtModelOptions` whose strings are NULL
/// or NUL-terminated; `model_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_model_load(runtime: *const MmrtRuntime, options: *const MmrtModelOptions, model_out: *mut *mut MmrtModel) -> MmrtStatus {
    guard(|| {
        clear_out(model_out, "model_out")?;
        let runtime = handles::runtime(runtime as usize)?;
        if options.is_null() {
            return Err(CallError::null("options"));
        }
        let options = *options;
        let bundle_path = path_arg(options.bundle_path, "options->bundle_path")?;
        let provider = if options.provider.is_null() { "" } else { str_arg(options.provider, "options->provider")? };
        let provider: ProviderSpec = if provider.is_empty() {
            ProviderSpec::plain(ExecutionProviderKind::Cpu)
        } else {
            provider.parse().map_err(|e: String| CallError::invalid(format!("options->provider: {e}")))?
        };
        let threads = match options.threads {
            0 => None,
            n => {
                let n = n as usize;
                mmrt::limits::check_threads(n).map_err(|e| CallError::invalid(format!("options->threads: {e}")))?;
                Some(n)
            }
        };
        let config = SessionConfig {
            provider: provider.kind,
            provider_options: provider.options,
            strict_provider: options.strict_provider != 0,
            threads,
            ..SessionConfig::default()
        };
        let bundle = Bundle::open(&bundle_path)?;
        let pipeline = Pipeline::load(&runtime, bundle, &config)?;
        if let Some(reason) = &pipeline.provider().fallback_reason {
            log::warn!("{reason}; running on CPU");
        }
        write_out(model_out, Entry::Model(std::sync::Arc::new(Mutex::new(pipeline))));
        Ok(())
    })
}

/// Free a model. NULL is a no-op. A generation running on it in another
/// thread finishes first (the model is released when it returns).
///
/// # Safety
/// `model` is NULL or a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_model_free(model: *mut MmrtModel) -> MmrtStatus {
    guard(|| free_handle(model as usize, "a model", |e| matches!(e, Entry::Model(_))))
}

// ---------------------------------------------------------------------------
// Request.

/// A new request with `prompt` (nullable: empty), the bundle's generation
/// settings, raw completion (no chat template) and no media.
///
/// # Safety
/// `prompt` is NULL or NUL-terminated UTF-8; `request_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_new(prompt: *const c_char, request_out: *mut *mut MmrtRequest) -> MmrtStatus {
    guard(|| {
        clear_out(request_out, "request_out")?;
        let prompt = if prompt.is_null() { "" } else { str_arg(prompt, "prompt")? };
        write_out(request_out, Entry::Request(std::sync::Arc::new(Mutex::new(Request::new(prompt)))));
        Ok(())
    })
}

/// Free a request. NULL is a no-op.
///
/// # Safety
/// `request` is NULL or a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_free(request: *mut MmrtRequest) -> MmrtStatus {
    guard(|| free_handle(request as usize, "a request", |e| matches!(e, Entry::Request(_))))
}

/// Replace the prompt. It may contain the bundle's placeholders (e.g.
/// `<image>`) to place media; without them, media go first.
///
/// # Safety
/// `prompt` is NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_set_prompt(request: *mut MmrtRequest, prompt: *const c_char) -> MmrtStatus {
    guard(|| {
        let prompt = str_arg(prompt, "prompt")?.to_string();
        with_request(request, |r| {
            r.prompt = prompt;
            Ok(())
        })
    })
}

/// Non-zero: render the prompt with the bundle's chat template as the last
/// user turn (after messages added with `mmrt_request_add_message`); 0: raw completion.
///
/// # Safety
/// `request` is a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_set_chat(request: *mut MmrtRequest, chat: i32) -> MmrtStatus {
    guard(|| {
        with_request(request, |r| {
            r.chat = chat != 0;
            Ok(())
        })
    })
}

/// Add an earlier chat turn (`role` "system", "user" or "assistant") before
/// the prompt; turns on the chat template.
///
/// # Safety
/// `role` and `content` are NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_message(request: *mut MmrtRequest, role: *const c_char, content: *const c_char) -> MmrtStatus {
    guard(|| {
        let message = mmrt::chat::Message::new(str_arg(role, "role")?, str_arg(content, "content")?);
        with_request(request, |r| {
            r.history.push(message);
            r.chat = true;
            Ok(())
        })
    })
}

/// Add an image file (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM), after the images already added.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_image_file(request: *mut MmrtRequest, path: *const c_char) -> MmrtStatus {
    guard(|| {
        let path = existing_file(path_arg(path, "path")?, "image")?;
        add_media(request, Modality::Image, MediaInput::File(path))
    })
}

/// Add a video, after the videos already added: a clip (MP4/H.264, MKV,
/// WebM, ... through FFmpeg), a directory of frame images or an animated
/// GIF/WebP. Frames are sampled as the bundle's video encoder says.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_video_file(request: *mut MmrtRequest, path: *const c_char) -> MmrtStatus {
    guard(|| {
        let path = path_arg(path, "path")?;
        if !path.exists() {
            return Err(CallError::new(MmrtStatus::MMRT_ERROR_IO, format!("video {}: no such file or directory", path.display())));
        }
        add_media(request, Modality::Video, MediaInput::File(path))
    })
}

/// Add an encoded image held in memory (the bytes of a PNG, JPEG, ... file);
/// the bytes are copied. It is decoded, within the size limits, when generating.
///
/// # Safety
/// `bytes` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_image_encoded(request: *mut MmrtRequest, bytes: *const u8, len: usize) -> MmrtStatus {
    guard(|| {
        let bytes = slice_arg(bytes, len, "bytes")?.to_vec();
        let index = with_request(request, |r| Ok(r.media(Modality::Image).len() + 1))?;
        add_media(request, Modality::Image, MediaInput::Encoded { name: format!("encoded image {index}"), bytes })
    })
}

/// Add a raw 8-bit RGB frame (a camera buffer): `height` rows of `width`
/// pixels, R G B bytes each, rows `stride` bytes apart (`stride` >=
/// `width * 3`; padding after each row is skipped). The pixels are copied and
/// checked now: `MMRT_ERROR_MEDIA` for a bad size or stride.
///
/// # Safety
/// `pixels` points to at least `stride * (height - 1) + width * 3` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_image_rgb(request: *mut MmrtRequest, pixels: *const u8, width: u32, height: u32, stride: usize) -> MmrtStatus {
    guard(|| {
        if pixels.is_null() {
            return Err(CallError::null("pixels"));
        }
        let row = width as usize * 3;
        if width == 0 || height == 0 {
            return Err(CallError::invalid(format!("raw RGB buffer {width}x{height}: width and height must be at least 1")));
        }
        if stride < row {
            return Err(CallError::invalid(format!("raw RGB buffer {width}x{height}: stride {stride} is shorter than a row ({row} bytes)")));
        }
        let len = stride
            .checked_mul(height as usize - 1)
            .and_then(|n| n.checked_add(row))
            .ok_or_else(|| CallError::invalid(format!("raw RGB buffer {width}x{height} at stride {stride} is larger than memory")))?;
        let buffer = slice_arg(pixels, len, "pixels")?;
        let image = mmrt::preprocess::image::rgb_from_buffer(width, height, stride, buffer)
            .map_err(|source| CallError::from(mmrt::Error::Image { path: format!("raw RGB buffer {width}x{height}").into(), source }))?;
        add_media(request, Modality::Image, MediaInput::Rgb { width, height, stride: row, pixels: image.into_raw() })
    })
}

/// Add a WAV file, after the audio already added (a speech bundle
/// transcribes it; an LLM with an audio encoder splices it into the prompt).
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_audio_file(request: *mut MmrtRequest, path: *const c_char) -> MmrtStatus {
    guard(|| {
        let path = existing_file(path_arg(path, "path")?, "audio")?;
        add_media(request, Modality::Audio, MediaInput::File(path))
    })
}

/// Add mono PCM audio: `count` float samples in [-1, 1] at `sample_rate` Hz
/// (copied; resampled to the model's rate when generating).
///
/// # Safety
/// `samples` points to `count` readable floats.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_audio_pcm(request: *mut MmrtRequest, samples: *const f32, count: usize, sample_rate: u32) -> MmrtStatus {
    guard(|| {
        let samples = slice_arg(samples, count, "samples")?.to_vec();
        add_media(request, Modality::Audio, MediaInput::Pcm { sample_rate, samples })
    })
}

/// Add a stop string: generation ends when the text contains it, and the
/// result's text ends before it (`MMRT_STOP_STRING`).
///
/// # Safety
/// `stop` is NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_add_stop(request: *mut MmrtRequest, stop: *const c_char) -> MmrtStatus {
    guard(|| {
        let stop = str_arg(stop, "stop")?.to_string();
        if stop.is_empty() {
            return Err(CallError::invalid("stop string is empty"));
        }
        with_request(request, |r| {
            r.stop.push(stop);
            Ok(())
        })
    })
}

/// Remove every image and audio input added so far.
///
/// # Safety
/// `request` is a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_clear_media(request: *mut MmrtRequest) -> MmrtStatus {
    guard(|| {
        with_request(request, |r| {
            r.inputs.clear();
            Ok(())
        })
    })
}

/// At most `max_tokens` new tokens (>= 1; the bundle's context bounds it too).
///
/// # Safety
/// `request` is a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_set_max_tokens(request: *mut MmrtRequest, max_tokens: usize) -> MmrtStatus {
    guard(|| {
        if max_tokens == 0 || max_tokens > mmrt::limits::MAX_NEW_TOKENS {
            return Err(CallError::invalid(format!(
                "max_tokens must be from 1 to {} (limits::MAX_NEW_TOKENS), got {max_tokens}",
                mmrt::limits::MAX_NEW_TOKENS
            )));
        }
        with_request(request, |r| {
            r.generation.max_new_tokens = Some(max_tokens);
            Ok(())
        })
    })
}

/// Sampling: `temperature` 0 is greedy (the other knobs then unused), above 0
/// draws from the softmax restricted to the `top_k` most likely tokens (0:
/// all) and the `top_p` nucleus (in (0, 1]; 1 keeps all), with `seed`
/// (the same seed gives the same tokens as `mmrt run --seed`).
///
/// # Safety
/// `request` is a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_request_set_sampling(request: *mut MmrtRequest, temperature: f32, top_k: u32, top_p: f32, seed: u64) -> MmrtStatus {
    guard(|| {
        let sampling = Sampling::from_knobs(temperature, top_k as usize, top_p).map_err(|e| CallError::invalid(e.to_string()))?;
        with_request(request, |r| {
            r.generation.sampling = Some(sampling);
            r.generation.seed = Some(seed);
            Ok(())
        })
    })
}

// ---------------------------------------------------------------------------
// Generation.

thread_local! {
    /// Models this thread is generating with (a callback calling back in is refused).
    static GENERATING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Removes a model from [`GENERATING`] when the generation ends, however it ends.
struct Generating(usize);

impl Drop for Generating {
    fn drop(&mut self) {
        GENERATING.with(|g| g.borrow_mut().retain(|&id| id != self.0));
    }
}

/// Stops the cancel-flag watcher when the generation ends (a panic included,
/// or the thread scope would wait for the watcher forever).
struct StopWatcher<'a> {
    done: &'a AtomicBool,
    watcher: Option<std::thread::Thread>,
}

impl Drop for StopWatcher<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = &self.watcher {
            t.unpark();
        }
    }
}

/// How often the caller's cancel flag is read between tokens.
const CANCEL_POLL: Duration = Duration::from_millis(2);

/// Run `request` on `model`: encode its media, prefill, decode token by
/// token, calling `callback` (nullable) with each new piece of text. Blocks
/// until done. The request is copied at the start: it can be changed or freed
/// meanwhile, and reused for the next call.
///
/// `cancel` (nullable) is a flag the caller owns: once it is non-zero
/// (written from any thread, e.g. with an atomic store), generation stops at
/// the next token and the call returns `MMRT_ERROR_CANCELLED`. It must stay
/// valid until the call returns.
///
/// `result_out` (nullable) receives the result handle on `MMRT_OK` (free it
/// with `mmrt_result_free`), NULL otherwise.
///
/// # Safety
/// `cancel` is NULL or a 4-byte-aligned `int32_t` valid during the call;
/// `callback`, if set, is safe to call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn mmrt_generate(
    model: *mut MmrtModel,
    request: *const MmrtRequest,
    callback: MmrtTokenCallback,
    user_data: *mut c_void,
    cancel: *const i32,
    result_out: *mut *mut MmrtResult,
) -> MmrtStatus {
    guard(|| {
        if !result_out.is_null() {
            *result_out = std::ptr::null_mut();
        }
        let model_id = model as usize;
        let pipeline = handles::model(model_id)?;
        let mut request = with_request(request, |r| Ok(r.clone()))?;
        if !cancel.is_null() && cancel.align_offset(std::mem::align_of::<AtomicI32>()) != 0 {
            return Err(CallError::invalid("cancel flag is not 4-byte aligned"));
        }
        // SAFETY: aligned, valid during the call (the caller's contract); AtomicI32 has i32's layout.
        let flag: Option<&AtomicI32> = (!cancel.is_null()).then(|| &*cancel.cast::<AtomicI32>());
        if GENERATING.with(|g| g.borrow().contains(&model_id)) {
            return Err(CallError::new(
                MmrtStatus::MMRT_ERROR_REENTRANT,
                "mmrt_generate was called from a token callback of the same model; it would wait for itself forever",
            ));
        }
        GENERATING.with(|g| g.borrow_mut().push(model_id));
        let _generating = Generating(model_id);
        let cancelled_by = Mutex::new(None::<&'static str>);
        let raised = || flag.is_some_and(|f| f.load(Ordering::Relaxed) != 0);
        if raised() {
            return Err(CallError::new(MmrtStatus::MMRT_ERROR_CANCELLED, "generation cancelled: the cancel flag was already raised"));
        }
        let cancel_flag = CancelFlag::default();
        request.cancel = cancel_flag.clone();

        let mut pipeline = pipeline.lock().map_err(|_| {
            CallError::new(MmrtStatus::MMRT_ERROR_PANIC, "an earlier generation on this model panicked; free the model and load it again")
        })?;
        let start = Instant::now();
        let done = AtomicBool::new(false);
        let mut piece_buf: Vec<u8> = Vec::new();
        let output = std::thread::scope(|scope| {
            // The pipeline checks its CancelFlag before each token; a watcher
            // raises it when the caller's flag goes up, even between text pieces.
            let watcher = flag.map(|f| {
                let (done, cancel_flag, cancelled_by) = (&done, &cancel_flag, &cancelled_by);
                scope.spawn(move || {
                    while !done.load(Ordering::Acquire) {
                        if f.load(Ordering::Relaxed) != 0 {
                            cancelled_by.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert("the cancel flag was raised");
                            cancel_flag.cancel();
                            break;
                        }
                        std::thread::park_timeout(CANCEL_POLL);
                    }
                })
            });
            let _stop = StopWatcher { done: &done, watcher: watcher.as_ref().map(|w| w.thread().clone()) };
            pipeline.run(&request, |piece| {
                if raised() {
                    cancelled_by.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert("the cancel flag was raised");
                    return Err(mmrt::Error::Cancelled);
                }
                if let Some(callback) = callback {
                    piece_buf.clear();
                    piece_buf.extend_from_slice(piece.as_bytes());
                    piece_buf.push(0);
                    let rc = callback(piece_buf.as_ptr().cast(), piece.len(), user_data);
                    if rc != 0 {
                        cancelled_by.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert("the token callback returned non-zero");
                        return Err(mmrt::Error::Cancelled);
                    }
                }
                Ok(())
            })
        });
        let output = match output {
            Ok(output) => output,
            Err(mmrt::Error::Cancelled) => {
                let why = cancelled_by.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or("the request was cancelled");
                return Err(CallError::new(MmrtStatus::MMRT_ERROR_CANCELLED, format!("generation cancelled: {why}")));
            }
            Err(e) => return Err(e.into()),
        };
        let total_ms = start.elapsed().as_secs_f64() * 1e3;
        if result_out.is_null() {
            return Ok(());
        }
        let decode_tokens_per_s = output.decode_tokens_per_s();
        let mut text = output.text.into_bytes();
        text.push(0);
        let result = ResultData {
            text,
            token_ids: output.token_ids,
            prompt_tokens: output.prompt_ids.len(),
            stop_reason: output.stop_reason,
            timings: output.timings,
            time_to_first_token_ms: output.time_to_first_token.map(|d| d.as_secs_f64() * 1e3),
            total_ms,
            decode_tokens_per_s,
        };
        write_out(result_out, Entry::Result(std::sync::Arc::new(result)));
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Result.

/// Free a result (the text pointer from `mmrt_result_text` dies with it). NULL is a no-op.
///
/// # Safety
/// `result` is NULL or a handle (a stale or garbage one is reported, not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn mmrt_result_free(result: *mut MmrtResult) -> MmrtStatus {
    guard(|| free_handle(result as usize, "a result", |e| matches!(e, Entry::Result(_))))
}

/// The generated text (UTF-8, special tokens skipped, NUL-terminated) and
/// its length in bytes (`len_out` nullable). The text lives as long as the result.
///
/// # Safety
/// `text_out` is a valid pointer; `len_out` is NULL or a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_result_text(result: *const MmrtResult, text_out: *mut *const c_char, len_out: *mut usize) -> MmrtStatus {
    guard(|| {
        if text_out.is_null() {
            return Err(CallError::null("text_out"));
        }
        let result = handles::result(result as usize)?;
        // The bytes live in the registry's Arc until mmrt_result_free.
        *text_out = result.text.as_ptr().cast();
        if !len_out.is_null() {
            *len_out = result.text.len() - 1;
        }
        Ok(())
    })
}

/// Copy the generated token ids (a final stop token included) into `ids`
/// (room for `capacity`; NULL when `capacity` is 0). `count_out` always
/// receives how many there are; when `capacity` is smaller, the first
/// `capacity` are copied and `MMRT_ERROR_BUFFER_TOO_SMALL` is returned. Call
/// with `(NULL, 0, &n)` to learn the count.
///
/// # Safety
/// `ids` points to `capacity` writable `uint32_t` (or is NULL with `capacity` 0); `count_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_result_token_ids(result: *const MmrtResult, ids: *mut u32, capacity: usize, count_out: *mut usize) -> MmrtStatus {
    guard(|| {
        if count_out.is_null() {
            return Err(CallError::null("count_out"));
        }
        if ids.is_null() && capacity > 0 {
            return Err(CallError::null("ids (with a capacity above 0)"));
        }
        let result = handles::result(result as usize)?;
        let n = result.token_ids.len();
        *count_out = n;
        let copied = n.min(capacity);
        if copied > 0 {
            std::ptr::copy_nonoverlapping(result.token_ids.as_ptr(), ids, copied);
        }
        if capacity < n {
            return Err(CallError::new(
                MmrtStatus::MMRT_ERROR_BUFFER_TOO_SMALL,
                format!("the result has {n} token ids; the buffer holds {capacity}"),
            ));
        }
        Ok(())
    })
}

/// Timings and token counts of the result.
///
/// # Safety
/// `timings_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_result_timings(result: *const MmrtResult, timings_out: *mut MmrtTimings) -> MmrtStatus {
    guard(|| {
        if timings_out.is_null() {
            return Err(CallError::null("timings_out"));
        }
        let result = handles::result(result as usize)?;
        let decode_ms = result.timings.get("decode").unwrap_or(0.0);
        *timings_out = MmrtTimings {
            time_to_first_token_ms: result.time_to_first_token_ms.unwrap_or(-1.0),
            prefill_ms: result.timings.get("prefill").unwrap_or(0.0),
            decode_ms,
            total_ms: result.total_ms,
            decode_tokens_per_second: result.decode_tokens_per_s,
            prompt_tokens: result.prompt_tokens,
            generated_tokens: result.token_ids.len(),
        };
        Ok(())
    })
}

/// Why generation ended.
///
/// # Safety
/// `reason_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn mmrt_result_stop_reason(result: *const MmrtResult, reason_out: *mut MmrtStopReason) -> MmrtStatus {
    guard(|| {
        if reason_out.is_null() {
            return Err(CallError::null("reason_out"));
        }
        let result = handles::result(result as usize)?;
        *reason_out = match result.stop_reason {
            StopReason::StopToken => MmrtStopReason::MMRT_STOP_TOKEN,
            StopReason::MaxTokens => MmrtStopReason::MMRT_STOP_MAX_TOKENS,
            StopReason::ContextFull => MmrtStopReason::MMRT_STOP_CONTEXT_FULL,
            StopReason::StopString => MmrtStopReason::MMRT_STOP_STRING,
        };
        Ok(())
    })
}
