//! Every bound mmrt puts on a number that comes from outside (a manifest, a
//! media header, a command-line flag) before that number sizes any work: one
//! place to read them, each with why it is what it is and how to go past it.
//!
//! The rule these constants serve: a count or a shape read from untrusted input
//! is compared with a limit here (and with the graphs' declared shapes where a
//! graph declares them) *before* a buffer is allocated, a loop is planned or a
//! file is read; sizes derived from such numbers use checked arithmetic
//! ([`checked_product`]); token budgets are clamped to the context
//! ([`clamp_new_tokens`]). Limits are generous for real models (the largest
//! published figures with a margin) and far below what would exhaust a
//! machine, so a hostile or corrupt input fails in milliseconds with an error
//! naming the limit instead of allocating gigabytes.
//!
//! Image limits ([`crate::preprocess::image::MAX_SIDE`],
//! [`crate::preprocess::image::MAX_DECODED_BYTES`]) live with the decoder and
//! are re-exported here.

pub use crate::preprocess::image::{MAX_DECODED_BYTES as MAX_IMAGE_DECODED_BYTES, MAX_SIDE as MAX_IMAGE_SIDE};

// ---------------------------------------------------------------- files

/// Largest `bundle.json` read, in bytes (16 MiB; real manifests are a few KiB).
/// The manifest is read with this bound, so a huge or endless file (a FIFO, a
/// device) cannot stall or exhaust the loader.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Largest `tokenizer.json` accepted, in bytes (512 MiB; Gemma 3's, among the
/// largest, is 33 MiB).
pub const MAX_TOKENIZER_BYTES: u64 = 512 * 1024 * 1024;

/// Largest image file read, in bytes: the decoded-buffer limit
/// ([`MAX_IMAGE_DECODED_BYTES`], 512 MiB), since a compressed file larger than
/// the pixels it may decode to cannot be a valid input.
pub const MAX_IMAGE_FILE_BYTES: u64 = MAX_IMAGE_DECODED_BYTES;

/// Largest chat template file read (`prompt.chat.file`), in bytes (1 MiB; real
/// templates are 1 to 30 KiB, the largest tool-calling ones under 100 KiB).
pub const MAX_CHAT_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// Work one chat template rendering may do, in minijinja fuel units (about one
/// per instruction and one per 64 bytes produced): 4,000,000, i.e. a few
/// million instructions or about 256 MB of text. A long conversation rendered
/// through a real template uses well under 1% of it; a template that loops
/// without end or builds huge strings stops with an error naming this limit.
pub const CHAT_TEMPLATE_FUEL: u64 = 4_000_000;

/// Largest auxiliary JSON file read (e.g. the VAD's `vad.json`), in bytes (1 MiB).
pub const MAX_SMALL_JSON_BYTES: u64 = 1024 * 1024;

// ---------------------------------------------------------------- manifest: decoder

/// Most decoder layers a manifest may declare (`kv_cache.num_layers`): 1024.
/// The deepest published LLMs have ~130 layers; each layer costs two tensor
/// names, so this also bounds the name lists built from the manifest.
pub const MAX_LAYERS: usize = 1024;

/// Longest context a manifest may declare (`context_length`): 2^20 positions
/// (1,048,576, the longest published context windows). Every sequence buffer
/// is sized from it, so it is the bound on token budgets too.
pub const MAX_CONTEXT_LENGTH: usize = 1 << 20;

/// Largest token budget accepted from a manifest (`generation.max_new_tokens`)
/// or `--max-tokens`: [`MAX_CONTEXT_LENGTH`]. A budget within it is then
/// clamped to the bundle's own context ([`clamp_new_tokens`]), which generation
/// can never exceed anyway.
pub const MAX_NEW_TOKENS: usize = MAX_CONTEXT_LENGTH;

/// Largest `kv_cache.head_dim` a manifest may declare: 4096 (real models use 64-256).
pub const MAX_HEAD_DIM: usize = 4096;

/// Most attention (or key/value) heads a model folder's config may declare
/// (manifest inference, [`crate::import`]): 1024 (real models use 8-128).
pub const MAX_ATTENTION_HEADS: usize = 1024;

/// Largest vocabulary a model folder's config may declare: 2^22 (4,194,304;
/// real models use 32k-262k). Stop and BOS ids are checked against it.
pub const MAX_VOCAB_SIZE: usize = 1 << 22;

/// Largest hidden size (row length) of a token table read by mmrt itself.
pub const MAX_HIDDEN: usize = 1 << 16;

/// Most beams of a beam search (`--beams`): 64 (Whisper uses 5).
pub const MAX_BEAMS: usize = 64;

// ---------------------------------------------------------------- manifest: output side

/// Most signal tokens of one output projector (`signal_tokens`): 1024
/// (NExT-GPT uses 4 to 8).
pub const MAX_SIGNAL_TOKENS: usize = 1024;

/// Largest rank of a generator's `latent_shape` (without batch): 5 (channels,
/// frames, height, width, plus one spare).
pub const MAX_LATENT_RANK: usize = 5;

/// Most elements of one latent (`latent_shape` product): 2^26 (67,108,864;
/// a 4-channel 1024x1024 latent, as large as image diffusers ship, has 2^22,
/// a 16-frame 4x128x128 video latent 2^20). Scheduler buffers are a few copies of it.
pub const MAX_LATENT_ELEMENTS: usize = 1 << 26;

/// Most denoising training timesteps (`scheduler.num_train_timesteps`): 100,000
/// (diffusers' schedulers use 1000). Sizes the beta and sigma tables; also bounds
/// `steps` and `--steps`, which may not exceed it.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// Most steps of a consistency generator (`steps`, `--steps`): 1000. Consistency
/// models sample in 1 to 4 steps (Song et al. 2023 report 1 and 2); each step is
/// one graph call, so this bounds a request's work, not a buffer.
pub const MAX_CONSISTENCY_STEPS: usize = 1000;

/// Largest magnitude of a consistency generator's integer condition
/// (`condition.min`, `condition.max`): 2^24 (16,777,216), exact in f32 and f64
/// alike (the terrain model's difficulty is 1 to 100).
pub const MAX_CONDITION_MAGNITUDE: i64 = 1 << 24;

// ---------------------------------------------------------------- image preprocessing

/// Largest side a manifest may ask an image to be resized or cropped to
/// (`resize.shortest_edge`, `resize.exact`, `crop`): 4096 px (vision encoders
/// take 224 to 896; tiles stay far below this).
pub const MAX_PREPROCESS_SIDE: u32 = 4096;

/// Most pixels of an image after the resize rule: 2^24 (a 4096 x 4096 image;
/// 48 MiB of RGB, 192 MiB of f32 tensor). The shortest-edge rule keeps the
/// aspect ratio, so a long panorama could otherwise grow far past it.
pub const MAX_RESIZED_PIXELS: u64 = 1 << 24;

// ---------------------------------------------------------------- audio

/// Lowest sample rate accepted from a WAV header or a manifest: 1000 Hz.
/// Lower rates carry no speech band and, resampled, multiply the samples.
pub const MIN_SAMPLE_RATE: u32 = 1_000;

/// Highest sample rate accepted from a WAV header or a manifest: 384,000 Hz
/// (the highest rate audio interfaces record).
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Most channels of an input WAV file: 64. Channels are averaged to mono.
pub const MAX_AUDIO_CHANNELS: u16 = 64;

/// Default longest input audio, in seconds: four hours (long recordings are
/// transcribed with `--vad`; the test suite runs two hours of silence).
/// Checked from the WAV header (declared samples / rate) before any sample is
/// read or resampled. Raise (or lower) it with the environment variable
/// [`MAX_AUDIO_SECONDS_ENV`] (seconds); see [`max_audio_seconds`].
pub const MAX_AUDIO_SECONDS: f64 = 4.0 * 3600.0;

/// Environment variable overriding [`MAX_AUDIO_SECONDS`] (a positive number of seconds).
pub const MAX_AUDIO_SECONDS_ENV: &str = "MMRT_MAX_AUDIO_SECONDS";

/// Largest magnitude of an input audio sample: 1000. Samples are nominally in
/// [-1, 1] (float WAVs may clip a little past it); a float WAV holding larger
/// values is corrupt, and values near `f32::MAX` would overflow the
/// resampler's FFT into infinities. Such files are refused, as NaN is.
pub const MAX_AUDIO_SAMPLE_ABS: f32 = 1000.0;

/// Longest audio encoder window a manifest may declare (`chunk_seconds`): 600 s
/// (Whisper: 30 s). Sizes one log-mel spectrogram.
pub const MAX_AUDIO_WINDOW_SECONDS: f32 = 600.0;

/// Largest FFT size (`n_fft`) of an audio preprocessing block: 65,536.
pub const MAX_N_FFT: usize = 1 << 16;

/// Most mel bins (`n_mels`) of an audio preprocessing block: 1024 (Whisper: 80 or 128).
pub const MAX_N_MELS: usize = 1024;

/// Most values of one log-mel spectrogram (`n_mels` × frames per window):
/// 2^24 (16,777,216; Whisper's 128 × 3000 is 384,000).
pub const MAX_LOG_MEL_VALUES: usize = 1 << 24;

/// Most FFT work per window (`n_fft` × frames per window): 2^30, a few
/// seconds of CPU at most (Whisper: 400 × 3000 = 1.2 M).
pub const MAX_LOG_MEL_WORK: usize = 1 << 30;

/// Most values of a mel filter bank (`n_mels` × (`n_fft` / 2 + 1)): 2^22
/// (Whisper's 128 × 201 is 25,728).
pub const MAX_MEL_FILTER_VALUES: usize = 1 << 22;

/// Check the sizes a log-mel spectrogram of `frames` frames × `n_mels` bins
/// with an `n_fft`-point FFT implies against [`MAX_LOG_MEL_VALUES`],
/// [`MAX_LOG_MEL_WORK`] and [`MAX_MEL_FILTER_VALUES`].
pub fn check_log_mel(frames: usize, n_mels: usize, n_fft: usize) -> Result<(), String> {
    let filters = n_mels.saturating_mul(n_fft / 2 + 1);
    if frames.saturating_mul(n_mels) > MAX_LOG_MEL_VALUES
        || frames.saturating_mul(n_fft) > MAX_LOG_MEL_WORK
        || filters > MAX_MEL_FILTER_VALUES
    {
        return Err(format!(
            "a window of {frames} frames x {n_mels} mels with n_fft {n_fft} exceeds the spectrogram limits \
             ({MAX_LOG_MEL_VALUES} values, limits::MAX_LOG_MEL_VALUES; {MAX_LOG_MEL_WORK} FFT points, MAX_LOG_MEL_WORK; \
             {MAX_MEL_FILTER_VALUES} filter weights, MAX_MEL_FILTER_VALUES)"
        ));
    }
    Ok(())
}

/// Frames per spectrogram window of an audio preprocessing block: the encoder's
/// `frames` axis, `round(chunk_seconds × sample_rate) / hop_length`.
pub fn log_mel_frames(chunk_seconds: f32, sample_rate: u32, hop_length: usize) -> usize {
    let window = (chunk_seconds as f64 * sample_rate as f64).round() as usize;
    window / hop_length.max(1)
}

/// Most frames a video preprocessing block may sample (`frames`): 1024.
pub const MAX_VIDEO_FRAMES: usize = 1024;

/// Largest video frame side, pixels: 8192 (8K); a header claiming more is refused before anything is allocated.
pub const MAX_VIDEO_SIDE: u32 = 8192;

/// Most images an image-sequence directory or animated image may hold: 100,000.
pub const MAX_VIDEO_SEQUENCE_FILES: u64 = 100_000;

/// Highest sampling rate a manifest or flag may ask of a clip, frames per second: 240.
pub const MAX_VIDEO_SAMPLE_FPS: f64 = 240.0;

// ---------------------------------------------------------------- text to speech

/// Most text one synthesis request may hold: 64 KiB (about ten minutes of speech);
/// longer text is refused, not truncated (stream it sentence by sentence instead).
pub const MAX_TTS_TEXT_BYTES: usize = 64 * 1024;

/// Most phoneme ids one sentence may send to the voice graph: 4096 (a very long
/// sentence is about 600). VITS attention is quadratic in it.
pub const MAX_PHONEME_IDS: usize = 4096;

/// Most entries a bundle folder (espeak-ng's data, ~400 files) may hold, links
/// followed: bounds the walk that confines it to the bundle.
pub const MAX_BUNDLE_DIR_ENTRIES: usize = 20_000;

/// Largest phoneme vocabulary (`num_symbols`) a voice config may declare.
pub const MAX_PHONEME_SYMBOLS: usize = 65_536;

/// Most speakers a voice config may declare.
pub const MAX_SPEAKERS: usize = 65_536;

/// Largest noise / length scale a voice or a request may set.
pub const MAX_TTS_SCALE: f32 = 10.0;

// ---------------------------------------------------------------- runtime

/// `--threads` may be at most this many times the machine's logical cores.
/// More intra-op threads than cores only adds contention; ONNX Runtime makes one
/// pool per session, so a large value multiplies into thousands of threads.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The largest `--threads` / [`crate::runtime::SessionConfig::threads`] accepted
/// on this machine: logical cores × [`MAX_THREADS_PER_CORE`] (at least 4 when the
/// core count is unknown).
pub fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * MAX_THREADS_PER_CORE
}

/// Check a requested intra-op thread count: at least 1, at most [`max_threads`].
pub fn check_threads(threads: usize) -> Result<(), String> {
    let max = max_threads();
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if threads > max {
        return Err(format!(
            "--threads {threads} is above the limit of {max} ({} logical cores x {MAX_THREADS_PER_CORE}, limits::MAX_THREADS_PER_CORE); \
             more threads than cores only slow inference down",
            max / MAX_THREADS_PER_CORE
        ));
    }
    Ok(())
}

/// The longest accepted input audio, in seconds: [`MAX_AUDIO_SECONDS_ENV`] when
/// it holds a positive finite number, else [`MAX_AUDIO_SECONDS`] (an unusable
/// value is reported once on the log and ignored).
pub fn max_audio_seconds() -> f64 {
    match std::env::var(MAX_AUDIO_SECONDS_ENV) {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v,
            _ => {
                log::warn!("{MAX_AUDIO_SECONDS_ENV}={text:?} is not a positive number of seconds; using {MAX_AUDIO_SECONDS}");
                MAX_AUDIO_SECONDS
            }
        },
        Err(_) => MAX_AUDIO_SECONDS,
    }
}

// ---------------------------------------------------------------- arithmetic

/// The product of `dims`, or `None` on overflow of `usize`.
pub fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The token budget of a generation: `requested` clamped to what the context
/// leaves after a prompt of `prompt_len` tokens (0 when the prompt fills it).
/// Generation stops at the context anyway, so clamping changes no output; it
/// keeps `prompt_len + budget` from overflowing and buffers sized from it small.
pub fn clamp_new_tokens(requested: usize, prompt_len: usize, context_length: usize) -> usize {
    requested.min(context_length.saturating_sub(prompt_len))
}

/// Read at most `max` bytes of the regular file at `path`: an error naming the
/// limit for a larger file, and for anything that is not a regular file (a FIFO,
/// a device, a socket, a directory), which could block or never end.
pub fn read_bounded(path: &std::path::Path, max: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path, what)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} is {len} bytes, larger than the {max}-byte limit"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` bounds the read even if the file grows after the check.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} grew past the {max}-byte limit while being read"),
        ));
    }
    Ok(bytes)
}

/// Open `path` for reading only if it is a regular file (symlinks followed).
/// The type is checked before `open`, because opening a FIFO for reading
/// blocks until a writer appears; it is checked again on the opened handle.
pub fn open_regular(path: &std::path::Path, what: &str) -> std::io::Result<std::fs::File> {
    check_regular(&std::fs::metadata(path)?, what)?;
    let file = std::fs::File::open(path)?;
    check_regular(&file.metadata()?, what)?;
    Ok(file)
}

/// An error unless `meta` describes a regular file.
pub fn check_regular(meta: &std::fs::Metadata, what: &str) -> std::io::Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let found = if kind.is_dir() { "a directory".to_string() } else { special_kind(&kind) };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} must be a regular file, found {found}"),
    ))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> String {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO (named pipe)".into()
    } else if kind.is_char_device() {
        "a character device".into()
    } else if kind.is_block_device() {
        "a block device".into()
    } else if kind.is_socket() {
        "a socket".into()
    } else {
        "a special file".into()
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> String {
    "a special file".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_budgets_do_not_overflow() {
        assert_eq!(checked_product(&[4, 8, 8]), Some(256));
        assert_eq!(checked_product(&[]), Some(1));
        assert_eq!(checked_product(&[usize::MAX, 2]), None);
        assert_eq!(clamp_new_tokens(usize::MAX, 10, 128), 118);
        assert_eq!(clamp_new_tokens(5, 10, 128), 5);
        assert_eq!(clamp_new_tokens(5, 200, 128), 0);
    }

    #[test]
    fn threads_are_capped() {
        assert!(check_threads(1).is_ok());
        assert!(check_threads(max_threads()).is_ok());
        let e = check_threads(max_threads() + 1).unwrap_err();
        assert!(e.contains("above the limit") && e.contains("MAX_THREADS_PER_CORE"), "{e}");
        assert!(check_threads(0).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_before_open() {
        let e = read_bounded(std::path::Path::new("/dev/zero"), 10, "the file").unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
        let e = read_bounded(std::path::Path::new("/"), 10, "the file").unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }
}
