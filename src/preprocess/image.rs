//! Image preprocessing for the image modality encoder: file bytes → RGB pixels →
//! the encoder's `pixel_values` tensor, `[n, 3, H, W]` (NCHW) or `[n, H, W, 3]`
//! (NHWC), as the manifest's [`ImagePreprocess`] block describes.
//!
//! Pure functions, no ONNX Runtime. The reference is PIL as used by Hugging Face
//! image processors (and `exporters/preprocess.py`, the Python twin of this file):
//!
//! 1. [`decode_image`]: any format the enabled `image` features read (PNG, JPEG,
//!    GIF, BMP, TIFF, WebP, PNM), recognized by its leading bytes, never by the
//!    file name. Untrusted headers are checked before any pixel buffer is
//!    allocated ([`MAX_SIDE`], [`MAX_DECODED_BYTES`]). Conversion to 8-bit RGB
//!    follows PIL's `Image.convert("RGB")`: gray is replicated, alpha is dropped
//!    (not composited), palettes are expanded, 16-bit samples keep their high
//!    byte. Only the first frame of animated/multi-page files is used and EXIF
//!    orientation is not applied (PIL's `Image.open` does neither).
//!
//!    Decoding is strict: a truncated or internally inconsistent file is an
//!    error ([`ImageError::Corrupt`]), never a partial picture. Before the
//!    decoder runs, [`check_structure`] walks the container of each format
//!    and requires it to be complete (the decoders alone would fill missing
//!    data): PNG chunks up to `IEND`; JPEG marker segments and scans up to
//!    the end-of-image marker; GIF blocks up to the trailer; WebP's RIFF size
//!    within the file and every chunk (animation frames included) within it;
//!    BMP's pixel-data offset past the headers and the pixel rows of an
//!    uncompressed bitmap within the file. TIFF and PNM decoders read the
//!    exact byte ranges their headers name and fail on their own. Bytes after
//!    a complete image (after `IEND`, the JPEG end marker, the GIF trailer, the
//!    RIFF chunk) are ignored, as every viewer does. Float pixels (TIFF) are
//!    clamped to `[0, 1]`; NaN becomes 0.
//! 2. [`preprocess`]: resize ([`resized_size`]; `fast_image_resize` with PIL's
//!    kernels in PIL 13's pass order, within one u8 level of PIL; `nearest` is
//!    PIL's own, bit-exact), center crop ([`center_crop_offsets`]), then
//!    `x = (u8 * rescale_factor - mean[c]) / std[c]` in `f32`, written straight
//!    into one preallocated array.

use std::io::Cursor;
use std::path::Path;

use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use fast_image_resize as fir;
use ndarray::Array4;

use crate::error::Error;
use crate::manifest::{ImagePreprocess, Layout, Resize, ResizeFilter};

/// Largest accepted image width or height, in pixels, checked from the header
/// before decoding (and on the resized image, before resizing).
pub const MAX_SIDE: u32 = 16384;

/// Largest decoded pixel buffer accepted, in bytes (512 MiB: a 16384 × 8192
/// RGBA8 image), checked from the header before decoding.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Why an image could not be decoded or preprocessed. Each message says what
/// was expected and what was found; [`Error::Image`] adds the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The input has no bytes at all.
    #[error("the file is empty (0 bytes); expected image data")]
    Empty,
    /// The leading bytes match no enabled image format.
    #[error("the bytes are not a recognized image format (expected PNG, JPEG, GIF, BMP, TIFF, WebP or PNM; the data starts with {found})")]
    UnknownFormat {
        /// The first bytes, in hex and as text.
        found: String,
    },
    /// The decoder failed: the data is cut short or damaged.
    #[error("{format} data is truncated or corrupt: {message}")]
    Corrupt {
        /// Format recognized from the leading bytes.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The format is recognized but uses a feature the decoder does not support.
    #[error("{format} image uses an unsupported feature: {message}")]
    Unsupported {
        /// Format recognized from the leading bytes.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The header claims dimensions beyond [`MAX_SIDE`]; nothing was allocated.
    #[error(
        "{format} header claims {width}x{height} pixels, larger than the {max}x{max} limit (rejected before decoding)"
    )]
    TooLarge {
        /// Format recognized from the leading bytes.
        format: &'static str,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
        /// [`MAX_SIDE`].
        max: u32,
    },
    /// Decoding would need a buffer beyond [`MAX_DECODED_BYTES`] (or the decoder's own limits).
    #[error(
        "{format} image needs {needed} to decode, more than the {max_bytes}-byte limit (rejected before decoding)"
    )]
    TooManyBytes {
        /// Format recognized from the leading bytes.
        format: &'static str,
        /// What the header implies, e.g. "805306368 bytes", or the decoder's limit message.
        needed: String,
        /// [`MAX_DECODED_BYTES`].
        max_bytes: u64,
    },
    /// The image has no pixels.
    #[error("{format} image has zero size ({width}x{height}); expected at least 1x1 pixels")]
    ZeroSize {
        /// Format recognized from the leading bytes.
        format: &'static str,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// After resizing, the image does not cover the center crop.
    #[error("image is {width}x{height} after resizing, smaller than the {crop_width}x{crop_height} center crop")]
    SmallerThanCrop {
        /// Resized width.
        width: u32,
        /// Resized height.
        height: u32,
        /// Crop width.
        crop_width: u32,
        /// Crop height.
        crop_height: u32,
    },
    /// The resize rule would produce an image beyond [`MAX_SIDE`] a side or
    /// [`crate::limits::MAX_RESIZED_PIXELS`] in all (an extreme aspect ratio).
    #[error(
        "image {width}x{height} would be resized to {resized_width}x{resized_height}, beyond the {max}x{max} limit \
         or the {} pixels of limits::MAX_RESIZED_PIXELS",
        crate::limits::MAX_RESIZED_PIXELS
    )]
    ResizedTooLarge {
        /// Input width.
        width: u32,
        /// Input height.
        height: u32,
        /// Width after the resize rule.
        resized_width: u32,
        /// Height after the resize rule.
        resized_height: u32,
        /// [`MAX_SIDE`].
        max: u32,
    },
    /// Without a crop, images of a batch must come out the same size.
    #[error("image {index} is {width}x{height} after preprocessing but image 0 is {first_width}x{first_height}; a batch needs one size (set `crop` in the manifest)")]
    MixedSizes {
        /// Index of the first image that differs.
        index: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Width of image 0.
        first_width: u32,
        /// Height of image 0.
        first_height: u32,
    },
    /// The preprocessing block is inconsistent (normally caught by manifest validation).
    #[error("invalid image preprocessing config: {0}")]
    Config(String),
    /// `fast_image_resize` refused the buffers (a bug, not bad input).
    #[error("resizing {width}x{height} to {resized_width}x{resized_height} failed: {message}")]
    Resize {
        /// Input width.
        width: u32,
        /// Input height.
        height: u32,
        /// Target width.
        resized_width: u32,
        /// Target height.
        resized_height: u32,
        /// The resizer's message.
        message: String,
    },
}

/// Read and decode an image file into 8-bit RGB (see [`decode_image`]).
///
/// A file that cannot be read is [`Error::Io`]; bytes that are not an acceptable
/// image are [`Error::Image`] naming the file.
pub fn load_image(path: &Path) -> Result<RgbImage, Error> {
    let bytes = crate::limits::read_bounded(path, crate::limits::MAX_IMAGE_FILE_BYTES, "an image file")
        .map_err(|e| Error::io(path, e))?;
    decode_image(&bytes).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Decode image bytes into 8-bit RGB, `[height, width, 3]` row-major.
///
/// The format is recognized from the leading bytes. The header's dimensions are
/// checked against [`MAX_SIDE`] and [`MAX_DECODED_BYTES`] before the pixel buffer
/// is allocated, so a hostile header cannot exhaust memory. Conversion matches
/// PIL's `convert("RGB")` (verified against Pillow 13):
///
/// * gray (`L`, `LA`): the value is replicated to R, G and B;
/// * alpha (`RGBA`, `LA`, palette with `tRNS`): dropped, not composited over a
///   background — PIL's `convert("RGB")` simply discards it;
/// * palette: expanded to the palette colors;
/// * 16-bit samples: the high byte (`v >> 8`), which is what PIL stores for 16-bit
///   RGB, RGBA and LA PNGs. (For 16-bit *gray* PNGs PIL opens mode `I;16` and
///   `convert` saturates at 255, turning almost every pixel white; we keep the
///   high byte there too, a deliberate deviation.)
/// * 32-bit float samples: clamped to `[0, 1]`, times 255, rounded.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = ::image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat {
        found: leading_bytes(bytes),
    })?;
    let name = format_name(format);
    if let Some((width, height)) = png_header_size(bytes) {
        check_dimensions(name, width, height)?;
    }
    check_structure(format, bytes).map_err(|message| ImageError::Corrupt { format: name, message })?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Dimensions are checked below, by us, so the error can name them; the
    // allocation limit also reaches decoders' internal buffers (PNG).
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| decode_error(name, e))?;

    let (width, height) = decoder.dimensions();
    check_dimensions(name, width, height)?;
    let total = decoder.total_bytes();
    if total > MAX_DECODED_BYTES {
        return Err(ImageError::TooManyBytes {
            format: name,
            needed: format!("{total} bytes"),
            max_bytes: MAX_DECODED_BYTES,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(name, e))?;
    Ok(to_rgb8(image))
}

/// Check that the container of `bytes` (in `format`) is complete and
/// consistent before any decoder sees it; see the module docs for what each
/// format must satisfy. The message says what is missing or inconsistent.
pub fn check_structure(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    match format {
        ImageFormat::Png => png_structure(bytes),
        ImageFormat::Jpeg => jpeg_structure(bytes),
        ImageFormat::Gif => gif_structure(bytes),
        ImageFormat::WebP => webp_structure(bytes),
        ImageFormat::Bmp => bmp_structure(bytes),
        _ => Ok(()),
    }
}

/// Little-endian / big-endian readers that say "truncated" instead of panicking.
fn take<'a>(bytes: &'a [u8], at: usize, n: usize, what: &str) -> Result<&'a [u8], String> {
    at.checked_add(n)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| format!("the file ends inside the {what} (truncated at byte {})", bytes.len()))
}

fn u16_le(bytes: &[u8], at: usize, what: &str) -> Result<u16, String> {
    take(bytes, at, 2, what).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_le(bytes: &[u8], at: usize, what: &str) -> Result<u32, String> {
    take(bytes, at, 4, what).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u32_be(bytes: &[u8], at: usize, what: &str) -> Result<u32, String> {
    take(bytes, at, 4, what).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// PNG: signature, then chunks (length, type, data, CRC) up to `IEND`.
fn png_structure(bytes: &[u8]) -> Result<(), String> {
    let mut at = 8;
    loop {
        let len = u32_be(bytes, at, "chunk header")?;
        if len > i32::MAX as u32 {
            return Err(format!("chunk at byte {at} declares {len} bytes, more than PNG allows (2^31 - 1)"));
        }
        let kind = take(bytes, at + 4, 4, "chunk header")?;
        let is_end = kind == b"IEND";
        let name = String::from_utf8_lossy(kind).into_owned();
        take(bytes, at + 8, len as usize + 4, &format!("{name} chunk"))?;
        at += 12 + len as usize;
        if is_end {
            return Ok(());
        }
    }
}

/// JPEG: marker segments after SOI, entropy-coded data after each SOS, up to EOI.
fn jpeg_structure(bytes: &[u8]) -> Result<(), String> {
    let ends = |at: usize| format!("the file ends at byte {at} before the end-of-image marker (truncated)");
    let mut at = 2; // after SOI (checked by the format guess)
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, the code.
        if bytes.get(at) != Some(&0xFF) {
            return match bytes.get(at) {
                None => Err(ends(at)),
                Some(b) => Err(format!("expected a marker at byte {at}, found 0x{b:02x}")),
            };
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else { return Err(ends(at)) };
        at += 1;
        match code {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD8 => continue, // TEM, RSTn, SOI: no length
            0x00 => return Err(format!("invalid marker 0xFF00 at byte {}", at - 2)),
            _ => {}
        }
        let len = u16_be(bytes, at).ok_or_else(|| ends(bytes.len()))? as usize;
        if len < 2 {
            return Err(format!("marker 0xFF{code:02X} at byte {} declares a length of {len} (at least 2)", at - 2));
        }
        if at + len > bytes.len() {
            return Err(format!(
                "marker 0xFF{code:02X} at byte {} declares {len} bytes, past the end of the file at {} (truncated)",
                at - 2,
                bytes.len()
            ));
        }
        at += len;
        if code == 0xDA {
            // Entropy-coded data: up to the next marker that is not a stuffed 0xFF00 or an RSTn.
            loop {
                let Some(offset) = bytes[at..].iter().position(|&b| b == 0xFF) else { return Err(ends(bytes.len())) };
                at += offset;
                match bytes.get(at + 1) {
                    None => return Err(ends(bytes.len())),
                    Some(0x00) | Some(0xD0..=0xD7) => at += 2,
                    Some(0xFF) => at += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn u16_be(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// GIF: header, logical screen descriptor, color table, then extension and
/// image blocks (each a chain of sub-blocks) up to the trailer (0x3B).
fn gif_structure(bytes: &[u8]) -> Result<(), String> {
    let packed = take(bytes, 10, 1, "logical screen descriptor")?[0];
    let mut at = 13;
    if packed & 0x80 != 0 {
        let table = 3usize << ((packed & 7) + 1);
        take(bytes, at, table, "global color table")?;
        at += table;
    }
    let sub_blocks = |mut at: usize, what: &str| -> Result<usize, String> {
        loop {
            let size = take(bytes, at, 1, what)?[0] as usize;
            at += 1;
            if size == 0 {
                return Ok(at);
            }
            take(bytes, at, size, what)?;
            at += size;
        }
    };
    let mut images = 0;
    loop {
        let block = take(bytes, at, 1, "block list (no trailer)")?[0];
        at += 1;
        match block {
            0x3B if images > 0 => return Ok(()),
            0x3B => return Err("the trailer comes before any image".into()),
            0x21 => {
                take(bytes, at, 1, "extension label")?;
                at = sub_blocks(at + 1, "extension data")?;
            }
            0x2C => {
                let descriptor = take(bytes, at, 9, "image descriptor")?;
                let local = descriptor[8];
                at += 9;
                if local & 0x80 != 0 {
                    let table = 3usize << ((local & 7) + 1);
                    take(bytes, at, table, "local color table")?;
                    at += table;
                }
                take(bytes, at, 1, "image data (LZW code size)")?;
                at = sub_blocks(at + 1, "image data")?;
                images += 1;
            }
            other => return Err(format!("unknown block type 0x{other:02x} at byte {}", at - 1)),
        }
    }
}

/// WebP: the RIFF size within the file; chunks (fourcc, size, data, pad to
/// even) exactly filling it; `ANMF` frames' own chunks within each frame.
fn webp_structure(bytes: &[u8]) -> Result<(), String> {
    let riff = u32_le(bytes, 4, "RIFF header")? as usize;
    let end = riff.checked_add(8).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        format!("the RIFF header declares {} bytes but the file has {} (truncated)", riff as u64 + 8, bytes.len())
    })?;
    if riff < 4 || riff % 2 != 0 {
        return Err(format!("the RIFF header declares an invalid size {riff}"));
    }
    webp_chunks(bytes, 12, end, "file")
}

fn webp_chunks(bytes: &[u8], mut at: usize, end: usize, within: &str) -> Result<(), String> {
    let mut chunks = 0;
    while at < end {
        if end - at < 8 {
            return Err(format!("{} stray bytes at the end of the {within}", end - at));
        }
        let kind = &bytes[at..at + 4];
        let size = u32_le(bytes, at + 4, "chunk header")? as usize;
        let data = at + 8;
        let stop = data.checked_add(size).filter(|&s| s <= end).ok_or_else(|| {
            format!(
                "chunk {} at byte {at} declares {size} bytes, past the end of the {within} at byte {end} (truncated or inconsistent)",
                String::from_utf8_lossy(kind)
            )
        })?;
        if kind == b"ANMF" {
            if size < 16 {
                return Err(format!("animation frame at byte {at} is {size} bytes, shorter than its 16-byte header"));
            }
            webp_chunks(bytes, data + 16, stop, "animation frame")?;
        }
        chunks += 1;
        at = stop + (size & 1);
    }
    if chunks == 0 {
        return Err(format!("the {within} holds no chunk"));
    }
    if at > end {
        return Err(format!("the last chunk's padding byte is past the end of the {within}"));
    }
    Ok(())
}

/// BMP: the pixel data offset past the file and DIB headers and inside the
/// file; for uncompressed bitmaps, all rows present.
fn bmp_structure(bytes: &[u8]) -> Result<(), String> {
    let offset = u32_le(bytes, 10, "file header")? as u64;
    let dib = u32_le(bytes, 14, "DIB header")? as u64;
    let headers = 14 + dib;
    if offset < headers {
        return Err(format!("the pixel data offset {offset} points into the headers (they end at byte {headers})"));
    }
    let len = bytes.len() as u64;
    if offset >= len {
        return Err(format!("the pixel data offset {offset} is at or past the end of the file ({len} bytes; truncated)"));
    }
    let (width, height, bpp, compression) = match dib {
        12 => (
            u16_le(bytes, 18, "DIB header")? as u64,
            u16_le(bytes, 20, "DIB header")? as u64,
            u16_le(bytes, 24, "DIB header")? as u64,
            0,
        ),
        _ if dib >= 40 => (
            (u32_le(bytes, 18, "DIB header")? as i32).unsigned_abs() as u64,
            (u32_le(bytes, 22, "DIB header")? as i32).unsigned_abs() as u64,
            u16_le(bytes, 28, "DIB header")? as u64,
            u32_le(bytes, 30, "DIB header")?,
        ),
        _ => return Ok(()), // unusual header sizes: the decoder decides
    };
    // BI_RGB and BI_BITFIELDS store plain rows padded to 4 bytes.
    if matches!(compression, 0 | 3) && bpp > 0 {
        let row = (bpp * width).div_ceil(32) * 4;
        let needed = row.saturating_mul(height);
        if offset.saturating_add(needed) > len {
            return Err(format!(
                "{width}x{height} pixels at {bpp} bits need {needed} bytes from offset {offset}, but the file has {len} bytes (truncated)"
            ));
        }
    }
    Ok(())
}

/// Reject empty or oversized images from their header dimensions.
fn check_dimensions(format: &'static str, width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { format, width, height });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::TooLarge { format, width, height, max: MAX_SIDE });
    }
    Ok(())
}

/// A PNG's size straight from its IHDR chunk. The png decoder reads ahead to
/// the first image-data chunk before reporting dimensions, so a header-only
/// file claiming a huge size would otherwise be reported as merely truncated.
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

/// `(width, height)` after the resize rule, for an input of `width × height`.
///
/// * `exact`: that size.
/// * `shortest_edge: S`: the shorter side becomes `S`, the longer one
///   `long * S / short` rounded to nearest with ties **up**, computed exactly in
///   integers as `(2 * long * S + short) / (2 * short)`. This is the rule of
///   `exporters/preprocess.py`, which produced the golden files. It equals Python's
///   `int(round(long * S / short))` except at exact `.5` ties, where Python rounds
///   half to even; note that Hugging Face's `get_resize_output_image_size` and
///   torchvision truncate (`int(...)`) instead. A square input gives `S × S`.
///
/// Returns [`ImageError::Config`] when `resize` has neither or both rules.
pub fn resized_size(width: u32, height: u32, resize: &Resize) -> Result<(u32, u32), ImageError> {
    match (resize.shortest_edge, resize.exact) {
        (Some(s), None) => {
            if s == 0 {
                return Err(ImageError::Config("`resize.shortest_edge` must be positive".into()));
            }
            let short = width.min(height).max(1) as u64;
            let scale = |edge: u32| {
                let v = (2 * edge as u64 * s as u64 + short) / (2 * short);
                u32::try_from(v).unwrap_or(u32::MAX)
            };
            Ok(if width <= height {
                (s, scale(height))
            } else {
                (scale(width), s)
            })
        }
        (None, Some(size)) => Ok((size.width, size.height)),
        (Some(_), Some(_)) => Err(ImageError::Config(
            "`resize` takes either `shortest_edge` or `exact`, not both".into(),
        )),
        (None, None) => Err(ImageError::Config("`resize` needs `shortest_edge` or `exact`".into())),
    }
}

/// `(left, top)` of a `crop_width × crop_height` center crop of a `width × height`
/// image: `((width - crop_width) / 2, (height - crop_height) / 2)`, integer
/// division (an odd remainder leaves the extra pixel on the right / bottom), as
/// PIL-based `center_crop` in Hugging Face processors.
///
/// An image smaller than the crop is an error ([`ImageError::SmallerThanCrop`]),
/// not zero-padded: with a `shortest_edge` resize it only happens when the
/// manifest's crop exceeds the resize target, a configuration mistake better
/// reported than hidden (the Python twin raises too).
pub fn center_crop_offsets(
    width: u32,
    height: u32,
    crop_width: u32,
    crop_height: u32,
) -> Result<(u32, u32), ImageError> {
    if width < crop_width || height < crop_height {
        return Err(ImageError::SmallerThanCrop {
            width,
            height,
            crop_width,
            crop_height,
        });
    }
    Ok(((width - crop_width) / 2, (height - crop_height) / 2))
}

/// Preprocess decoded images into the encoder's input tensor, always `f32`:
/// `[n, 3, H, W]` for [`Layout::Nchw`], `[n, H, W, 3]` for [`Layout::Nhwc`].
///
/// Per image: resize by `cfg.resize` (see [`resized_size`]; skipped when the size
/// is unchanged) like PIL 13: `fast_image_resize` with PIL's kernels (bicubic =
/// Catmull-Rom, a = -0.5, as PIL's `BICUBIC`) in PIL's pass order, so resized
/// pixels are within one u8 level of PIL's and rarely off at all; `Nearest` is
/// bit-exact. Then center crop to
/// `cfg.crop` when set ([`center_crop_offsets`]); then per channel `c`
/// `x = (u8 as f32 * rescale_factor - mean[c]) / std[c]`, each operation in `f32`
/// in that order, so results are bit-identical to numpy's float32 arithmetic.
///
/// `H × W` is the crop size, else the resized size, which must then be the same
/// for every image ([`ImageError::MixedSizes`]). With no images the result is
/// `[0, 3, H, W]` with `H × W` the crop, the exact size, or `S × S`.
///
/// `cfg.dtype` is not applied: the caller converts to `f16` when the encoder
/// declares it, right before building the ONNX tensor.
pub fn preprocess(images: &[RgbImage], cfg: &ImagePreprocess) -> Result<Array4<f32>, ImageError> {
    // Plan every image first, so bad input fails before any allocation.
    let mut plans = Vec::with_capacity(images.len());
    for (index, image) in images.iter().enumerate() {
        let plan = plan(image, cfg)?;
        if let Some(first) = plans.first().map(|p: &Plan| (p.out_w, p.out_h)) {
            if (plan.out_w, plan.out_h) != first {
                return Err(ImageError::MixedSizes {
                    index,
                    width: plan.out_w,
                    height: plan.out_h,
                    first_width: first.0,
                    first_height: first.1,
                });
            }
        }
        plans.push(plan);
    }
    let (out_w, out_h) = match plans.first() {
        Some(p) => (p.out_w, p.out_h),
        None => match (cfg.crop, resized_size(1, 1, &cfg.resize)?) {
            (Some(crop), _) => (crop.width, crop.height),
            (None, size) => size,
        },
    };
    let (w, h) = (out_w as usize, out_h as usize);
    let shape = match cfg.layout {
        Layout::Nchw => [images.len(), 3, h, w],
        Layout::Nhwc => [images.len(), h, w, 3],
    };
    let mut out = Array4::<f32>::zeros(shape);
    let dst = out.as_slice_mut().expect("a fresh array is contiguous");

    // Normalization of every u8 value, per channel: the per-pixel work is a lookup.
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, x) in table.iter_mut().enumerate() {
            *x = (v as f32 * cfg.rescale_factor - cfg.mean[c]) / cfg.std[c];
        }
    }

    let mut resampler = Resampler::new(cfg.resize.filter);
    let per_image = 3 * h * w;
    for (i, (image, plan)) in images.iter().zip(&plans).enumerate() {
        let (pixels, stride): (&[u8], usize) = if (plan.rw, plan.rh) == image.dimensions() {
            (image.as_raw(), image.width() as usize)
        } else {
            (resampler.resize(image, plan.rw, plan.rh)?, plan.rw as usize)
        };
        let dst = &mut dst[i * per_image..(i + 1) * per_image];
        let (left, top) = (plan.left as usize, plan.top as usize);
        for y in 0..h {
            let start = ((top + y) * stride + left) * 3;
            let row = &pixels[start..start + w * 3];
            match cfg.layout {
                // [3, H, W]: one plane per channel.
                Layout::Nchw => {
                    for (c, table) in lut.iter().enumerate() {
                        let plane = &mut dst[c * h * w + y * w..c * h * w + (y + 1) * w];
                        for (x, px) in plane.iter_mut().zip(row.chunks_exact(3)) {
                            *x = table[px[c] as usize];
                        }
                    }
                }
                // [H, W, 3]: channels interleaved, as in the source.
                Layout::Nhwc => {
                    let line = &mut dst[y * w * 3..(y + 1) * w * 3];
                    for (x, px) in line.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                        for c in 0..3 {
                            x[c] = lut[c][px[c] as usize];
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Where one image goes: resized size, crop origin, output size.
struct Plan {
    rw: u32,
    rh: u32,
    left: u32,
    top: u32,
    out_w: u32,
    out_h: u32,
}

/// `(width, height)` of an image of `width × height` after `cfg`'s resize
/// and crop (the size [`preprocess`] gives it), or why it cannot be preprocessed.
/// Images of one batch must agree on it ([`ImageError::MixedSizes`]).
pub fn preprocessed_size(width: u32, height: u32, cfg: &ImagePreprocess) -> Result<(u32, u32), ImageError> {
    plan_dims(width, height, cfg).map(|p| (p.out_w, p.out_h))
}

/// Check that `sizes` (decoded `(width, height)` of a batch, in order) can be
/// preprocessed by `cfg` and come out the same size, as one batch of
/// [`preprocess`] needs; the error comes with the index of the image at fault.
pub fn check_batch(sizes: &[(u32, u32)], cfg: &ImagePreprocess) -> Result<(), (usize, ImageError)> {
    let mut first = None;
    for (index, &(w, h)) in sizes.iter().enumerate() {
        let size = preprocessed_size(w, h, cfg).map_err(|e| (index, e))?;
        match first {
            None => first = Some(size),
            Some(f) if f != size => {
                let e = ImageError::MixedSizes { index, width: size.0, height: size.1, first_width: f.0, first_height: f.1 };
                return Err((index, e));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn plan(image: &RgbImage, cfg: &ImagePreprocess) -> Result<Plan, ImageError> {
    plan_dims(image.width(), image.height(), cfg)
}

fn plan_dims(width: u32, height: u32, cfg: &ImagePreprocess) -> Result<Plan, ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize {
            format: "decoded",
            width,
            height,
        });
    }
    let (rw, rh) = resized_size(width, height, &cfg.resize)?;
    if rw == 0 || rh == 0 {
        return Err(ImageError::Config(format!("resize target {rw}x{rh} has a zero side")));
    }
    if rw > MAX_SIDE || rh > MAX_SIDE || rw as u64 * rh as u64 > crate::limits::MAX_RESIZED_PIXELS {
        return Err(ImageError::ResizedTooLarge {
            width,
            height,
            resized_width: rw,
            resized_height: rh,
            max: MAX_SIDE,
        });
    }
    let (left, top, out_w, out_h) = match cfg.crop {
        Some(crop) => {
            let (left, top) = center_crop_offsets(rw, rh, crop.width, crop.height)?;
            (left, top, crop.width, crop.height)
        }
        None => (0, 0, rw, rh),
    };
    Ok(Plan {
        rw,
        rh,
        left,
        top,
        out_w,
        out_h,
    })
}

/// Resizes like PIL 13's `Image.resize` on an RGB image.
///
/// Convolution filters use `fast_image_resize` kernels, run as two one-axis
/// passes in PIL's order. Each pass rounds to u8, so the order matters (left to
/// itself, `fast_image_resize` always goes vertical first for u8 and differs from
/// PIL by up to 3 levels on a fifth of the values). PIL (`ImagingResampleInner`)
/// goes vertical first only when the height shrinks by more than twice as many
/// pixels as the width does. What remains is rare ±1 differences from
/// coefficient precision (PIL: 22-bit fixed point, `fast_image_resize`: ~15-bit).
///
/// `Nearest` is PIL's own `ImagingScaleAffine`, bit-exact (`fast_image_resize`
/// picks different source pixels at rounding boundaries).
struct Resampler {
    filter: ResizeFilter,
    resizer: fir::Resizer,
    options: fir::ResizeOptions,
    /// First-pass output, reused across images.
    first: Vec<u8>,
    /// Final output, `[resized_height, resized_width, 3]`, reused across images.
    out: Vec<u8>,
}

impl Resampler {
    fn new(filter: ResizeFilter) -> Self {
        Self {
            filter,
            resizer: fir::Resizer::new(),
            options: fir::ResizeOptions::new().resize_alg(resize_alg(filter)),
            first: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Resize `image` to `rw × rh`; returns the pixels, `[rh, rw, 3]` u8.
    fn resize(&mut self, image: &RgbImage, rw: u32, rh: u32) -> Result<&[u8], ImageError> {
        let (width, height) = image.dimensions();
        if self.filter == ResizeFilter::Nearest {
            nearest(image, rw, rh, &mut self.out);
            return Ok(&self.out);
        }
        let fail = |message: String| ImageError::Resize {
            width,
            height,
            resized_width: rw,
            resized_height: rh,
            message,
        };
        let src = fir::images::ImageRef::new(width, height, image.as_raw(), fir::PixelType::U8x3)
            .map_err(|e| fail(e.to_string()))?;
        if rw == width || rh == height {
            resize_pass(&mut self.resizer, &self.options, &src, rw, rh, &mut self.out).map_err(fail)?;
            return Ok(&self.out);
        }
        // PIL's rule, in signed pixel counts.
        let (dh, dw) = (height as i64 - rh as i64, width as i64 - rw as i64);
        let (mid_w, mid_h) = if dh > 0 && dh > 2 * dw {
            (width, rh)
        } else {
            (rw, height)
        };
        resize_pass(&mut self.resizer, &self.options, &src, mid_w, mid_h, &mut self.first).map_err(fail)?;
        let mid = fir::images::ImageRef::new(mid_w, mid_h, &self.first, fir::PixelType::U8x3)
            .map_err(|e| fail(e.to_string()))?;
        resize_pass(&mut self.resizer, &self.options, &mid, rw, rh, &mut self.out).map_err(fail)?;
        Ok(&self.out)
    }
}

/// PIL's `NEAREST` resize (`ImagingScaleAffine`): the source column of output
/// column `x` is the truncation of `scale / 2 + x * scale`, accumulated in `f64`
/// step by step exactly as PIL does (same for rows). Writes `[rh, rw, 3]` into `out`.
fn nearest(image: &RgbImage, rw: u32, rh: u32, out: &mut Vec<u8>) {
    let (width, height) = image.dimensions();
    // PIL's box is f32 and the scale a double: (float)width / xsize.
    let sources = |len: u32, size: u32| -> Vec<Option<usize>> {
        let scale = f64::from(len as f32) / f64::from(size);
        let mut pos = scale * 0.5;
        (0..size)
            .map(|_| {
                let i = pos as usize; // pos >= 0: truncation is PIL's COORD()
                pos += scale;
                (i < len as usize).then_some(i)
            })
            .collect()
    };
    let (xs, ys) = (sources(width, rw), sources(height, rh));
    out.clear();
    out.resize(rw as usize * rh as usize * 3, 0);
    let src = image.as_raw();
    let stride = width as usize * 3;
    for (row, y) in out.chunks_exact_mut(rw as usize * 3).zip(&ys) {
        // Out-of-range sources stay 0, as PIL's fill; the accumulation never gets there in practice.
        let Some(y) = *y else { continue };
        for (px, x) in row.chunks_exact_mut(3).zip(&xs) {
            if let Some(x) = *x {
                px.copy_from_slice(&src[y * stride + x * 3..y * stride + x * 3 + 3]);
            }
        }
    }
}

/// One `fast_image_resize` call from `src` into `buf` (resized to `[h, w, 3]`).
fn resize_pass(
    resizer: &mut fir::Resizer,
    options: &fir::ResizeOptions,
    src: &fir::images::ImageRef<'_>,
    w: u32,
    h: u32,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    buf.clear();
    buf.resize(w as usize * h as usize * 3, 0);
    let mut dst = fir::images::Image::from_slice_u8(w, h, buf, fir::PixelType::U8x3).map_err(|e| e.to_string())?;
    resizer.resize(src, &mut dst, options).map_err(|e| e.to_string())
}

/// The `fast_image_resize` algorithm for a PIL filter name.
fn resize_alg(filter: ResizeFilter) -> fir::ResizeAlg {
    match filter {
        ResizeFilter::Nearest => fir::ResizeAlg::Nearest, // unused: see `nearest`
        ResizeFilter::Bilinear => fir::ResizeAlg::Convolution(fir::FilterType::Bilinear),
        // PIL's BICUBIC is the cubic convolution with a = -0.5, i.e. Catmull-Rom.
        ResizeFilter::Bicubic => fir::ResizeAlg::Convolution(fir::FilterType::CatmullRom),
        ResizeFilter::Lanczos => fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3),
    }
}

/// 8-bit RGB as PIL's `convert("RGB")` makes it (see [`decode_image`]). An RGB8
/// image is moved through without a copy.
fn to_rgb8(image: DynamicImage) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(img) => pack(width, height, img.as_raw(), 4, |v| v),
        DynamicImage::ImageLuma8(img) => pack(width, height, img.as_raw(), 1, |v| v),
        DynamicImage::ImageLumaA8(img) => pack(width, height, img.as_raw(), 2, |v| v),
        DynamicImage::ImageRgb16(img) => pack(width, height, img.as_raw(), 3, high_byte),
        DynamicImage::ImageRgba16(img) => pack(width, height, img.as_raw(), 4, high_byte),
        DynamicImage::ImageLuma16(img) => pack(width, height, img.as_raw(), 1, high_byte),
        DynamicImage::ImageLumaA16(img) => pack(width, height, img.as_raw(), 2, high_byte),
        // Float images (TIFF): clamp to [0, 1], scale, round.
        other => other.to_rgb8(),
    }
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// Gather `[h, w, channels]` samples into RGB: 1 or 2 channels are gray (+ alpha),
/// 3 or 4 are RGB (+ alpha); alpha is dropped.
fn pack<T: Copy>(width: u32, height: u32, samples: &[T], channels: usize, to_u8: impl Fn(T) -> u8) -> RgbImage {
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for px in samples.chunks_exact(channels) {
        if channels < 3 {
            let v = to_u8(px[0]);
            rgb.extend_from_slice(&[v, v, v]);
        } else {
            rgb.extend_from_slice(&[to_u8(px[0]), to_u8(px[1]), to_u8(px[2])]);
        }
    }
    RgbImage::from_raw(width, height, rgb).expect("one RGB triple per decoded pixel")
}

fn decode_error(format: &'static str, e: ::image::ImageError) -> ImageError {
    use ::image::ImageError as E;
    match e {
        E::Unsupported(u) => ImageError::Unsupported {
            format,
            message: u.to_string(),
        },
        E::Limits(l) => ImageError::TooManyBytes {
            format,
            needed: l.to_string(),
            max_bytes: MAX_DECODED_BYTES,
        },
        // Reading from memory, an I/O error means the data ended early.
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => ImageError::Corrupt {
            format,
            message: format!("unexpected end of data ({io})"),
        },
        other => ImageError::Corrupt {
            format,
            message: other.to_string(),
        },
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Pnm => "PNM",
        _ => "image",
    }
}

/// Up to 8 leading bytes in hex, plus their printable ASCII: `3c 68 74 6d 6c 3e ("<html>")`.
fn leading_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(8)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} ({text:?})", hex.join(" "))
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // CLIP's mean/std, digit for digit as published
mod tests {
    use super::*;
    use crate::manifest::{Size, TensorDtype};

    fn cfg(resize: Resize, crop: Option<Size>, layout: Layout) -> ImagePreprocess {
        ImagePreprocess {
            resize,
            crop,
            rescale_factor: 1.0 / 255.0,
            mean: [0.48145466, 0.4578275, 0.40821073],
            std: [0.26862954, 0.26130258, 0.27577711],
            layout,
            dtype: TensorDtype::Float32,
        }
    }

    fn shortest(s: u32) -> Resize {
        Resize {
            shortest_edge: Some(s),
            exact: None,
            filter: ResizeFilter::Bicubic,
        }
    }

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn shortest_edge_rule() {
        // (w, h, S) -> (w', h'): table of exact values, ties included.
        let cases = [
            ((640, 480, 224), (299, 224)), // 298.67 -> 299
            ((480, 640, 224), (224, 299)),
            ((100, 100, 32), (32, 32)),
            ((64, 48, 32), (43, 32)), // 42.67 -> 43
            ((50, 40, 32), (40, 32)), // exactly 40
            ((3, 2, 3), (5, 3)),      // 4.5: tie rounds up (Python's round would give 4)
            ((5, 2, 3), (8, 3)),      // 7.5 -> 8
            ((2, 3, 1), (1, 2)),      // 1.5 -> 2
            ((40, 40, 32), (32, 32)), // downscale square
            ((16, 24, 32), (32, 48)), // upscale
            ((1, 1000, 32), (32, 32000)),
        ];
        for ((w, h, s), want) in cases {
            assert_eq!(resized_size(w, h, &shortest(s)).unwrap(), want, "{w}x{h} S={s}");
        }
        let exact = Resize {
            shortest_edge: None,
            exact: Some(size(7, 9)),
            filter: ResizeFilter::Bilinear,
        };
        assert_eq!(resized_size(100, 3, &exact).unwrap(), (7, 9));
        let neither = Resize {
            shortest_edge: None,
            exact: None,
            filter: ResizeFilter::Bilinear,
        };
        assert!(resized_size(1, 1, &neither)
            .unwrap_err()
            .to_string()
            .contains("needs `shortest_edge` or `exact`"));
    }

    #[test]
    fn crop_offsets() {
        assert_eq!(center_crop_offsets(43, 32, 32, 32).unwrap(), (5, 0)); // 11 / 2
        assert_eq!(center_crop_offsets(32, 43, 32, 32).unwrap(), (0, 5));
        assert_eq!(center_crop_offsets(32, 32, 32, 32).unwrap(), (0, 0));
        assert_eq!(center_crop_offsets(299, 224, 224, 224).unwrap(), (37, 0)); // 75 / 2
        assert_eq!(center_crop_offsets(10, 9, 4, 2).unwrap(), (3, 3));
        let e = center_crop_offsets(31, 40, 32, 32).unwrap_err().to_string();
        assert!(
            e.contains("31x40 after resizing, smaller than the 32x32 center crop"),
            "{e}"
        );
    }

    #[test]
    fn normalizes_a_known_pixel() {
        // One 1x1 pixel, no resize (exact 1x1), no crop.
        let c = cfg(
            Resize {
                shortest_edge: None,
                exact: Some(size(1, 1)),
                filter: ResizeFilter::Bicubic,
            },
            None,
            Layout::Nchw,
        );
        let img = RgbImage::from_raw(1, 1, vec![255, 128, 0]).unwrap();
        let x = preprocess(&[img], &c).unwrap();
        assert_eq!(x.shape(), &[1, 3, 1, 1]);
        // The formula, operation by operation in f32 (bit-exact)...
        for (ch, v) in [255u8, 128, 0].into_iter().enumerate() {
            let want = (v as f32 * c.rescale_factor - c.mean[ch]) / c.std[ch];
            assert_eq!(x[[0, ch, 0, 0]], want, "channel {ch}");
        }
        // ...and the values it should give, computed in f64.
        for (ch, want) in [1.930_336_254, 0.168_897_239, -1.480_219_769].into_iter().enumerate() {
            assert!(
                (x[[0, ch, 0, 0]] as f64 - want).abs() < 1e-6,
                "channel {ch}: {}",
                x[[0, ch, 0, 0]]
            );
        }
    }

    /// A `w × h` image whose pixel (x, y) is `(x, y, x + y)` (mod 256).
    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| ::image::Rgb([x as u8, y as u8, (x + y) as u8]))
    }

    #[test]
    fn crops_without_resizing_in_both_layouts() {
        let img = ramp(7, 5);
        let exact = Resize {
            shortest_edge: None,
            exact: Some(size(7, 5)),
            filter: ResizeFilter::Bicubic,
        };
        let mut c = cfg(exact, Some(size(4, 2)), Layout::Nchw);
        c.rescale_factor = 1.0;
        c.mean = [0.0; 3];
        c.std = [1.0; 3];
        let nchw = preprocess(&[img.clone(), img.clone()], &c).unwrap();
        assert_eq!(nchw.shape(), &[2, 3, 2, 4]);
        c.layout = Layout::Nhwc;
        let nhwc = preprocess(&[img], &c).unwrap();
        assert_eq!(nhwc.shape(), &[1, 2, 4, 3]);
        // left = (7 - 4) / 2 = 1, top = (5 - 2) / 2 = 1.
        for y in 0..2 {
            for x in 0..4 {
                let (sx, sy) = (x + 1, y + 1);
                let want = [sx as f32, sy as f32, (sx + sy) as f32];
                for ch in 0..3 {
                    assert_eq!(nchw[[1, ch, y, x]], want[ch]);
                    assert_eq!(nhwc[[0, y, x, ch]], want[ch]);
                }
            }
        }
    }

    #[test]
    fn resizes_then_crops() {
        // 64x48 -> shortest edge 32 -> 43x32 -> crop 32x32 at left 5.
        let img = RgbImage::from_pixel(64, 48, ::image::Rgb([10, 20, 30]));
        let c = cfg(shortest(32), Some(size(32, 32)), Layout::Nchw);
        let x = preprocess(&[img], &c).unwrap();
        assert_eq!(x.shape(), &[1, 3, 32, 32]);
        // A flat image stays flat through any normalized filter.
        let want = (20.0f32 * (1.0 / 255.0) - c.mean[1]) / c.std[1];
        assert!(x.index_axis(ndarray::Axis(1), 1).iter().all(|&v| v == want));
    }

    /// Pixel (x, y) = ((37x + 11y) % 256, 53y % 256, (29xy + 7x) % 256).
    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            ::image::Rgb([
                ((37 * x + 11 * y) % 256) as u8,
                (53 * y % 256) as u8,
                ((29 * x * y + 7 * x) % 256) as u8,
            ])
        })
    }

    /// Resize through `preprocess` with identity normalization: the u8 values as f32.
    fn resized(image: &RgbImage, w: u32, h: u32, filter: ResizeFilter) -> Vec<u8> {
        let mut c = cfg(
            Resize {
                shortest_edge: None,
                exact: Some(size(w, h)),
                filter,
            },
            None,
            Layout::Nhwc,
        );
        c.rescale_factor = 1.0;
        c.mean = [0.0; 3];
        c.std = [1.0; 3];
        preprocess(std::slice::from_ref(image), &c)
            .unwrap()
            .iter()
            .map(|&v| v as u8)
            .collect()
    }

    #[test]
    fn matches_pil_pass_order() {
        // 9x12 -> 7x4: the height shrinks by 8 > 2 * 2 pixels, so PIL 13 runs the
        // vertical pass first; horizontal-first differs on 9 values. Expected values
        // from Pillow 13.0.0: `img.resize((7, 4), Image.Resampling.BICUBIC)`.
        #[rustfmt::skip]
        let pil = [
            18, 67, 5, 65, 67, 60, 112, 67, 96, 160, 67, 77, 226, 67, 114, 116, 67, 159, 31, 67, 80,
            49, 124, 25, 96, 124, 147, 143, 124, 130, 200, 124, 148, 197, 124, 162, 60, 124, 125, 72, 124, 179,
            84, 115, 44, 131, 115, 174, 181, 115, 120, 216, 115, 131, 69, 115, 124, 56, 115, 159, 113, 115, 150,
            115, 107, 11, 162, 107, 77, 213, 107, 125, 99, 107, 103, 38, 107, 146, 97, 107, 140, 143, 107, 78,
        ];
        assert_eq!(resized(&pattern(9, 12), 7, 4, ResizeFilter::Bicubic), pil);
    }

    #[test]
    fn nearest_is_pils() {
        // Pillow 13.0.0: `img.resize(size, Image.Resampling.NEAREST)`.
        #[rustfmt::skip]
        let up = [
            0, 0, 0, 37, 0, 7, 37, 0, 7, 74, 0, 14, 74, 0, 14, 111, 0, 21,
            0, 0, 0, 37, 0, 7, 37, 0, 7, 74, 0, 14, 74, 0, 14, 111, 0, 21,
            11, 53, 0, 48, 53, 36, 48, 53, 36, 85, 53, 72, 85, 53, 72, 122, 53, 108,
            22, 106, 0, 59, 106, 65, 59, 106, 65, 96, 106, 130, 96, 106, 130, 133, 106, 195,
            22, 106, 0, 59, 106, 65, 59, 106, 65, 96, 106, 130, 96, 106, 130, 133, 106, 195,
        ];
        assert_eq!(resized(&pattern(4, 3), 6, 5, ResizeFilter::Nearest), up);
        let down = [
            48, 53, 36, 122, 53, 108, 196, 53, 180, 70, 159, 94, 144, 159, 26, 218, 159, 214,
        ];
        assert_eq!(resized(&pattern(7, 5), 3, 2, ResizeFilter::Nearest), down);
    }

    #[test]
    fn batch_rules() {
        let c = cfg(shortest(8), None, Layout::Nchw);
        let e = preprocess(&[ramp(8, 8), ramp(16, 8)], &c).unwrap_err().to_string();
        assert!(
            e.contains("image 1 is 16x8 after preprocessing but image 0 is 8x8"),
            "{e}"
        );
        assert_eq!(preprocess(&[], &c).unwrap().shape(), &[0, 3, 8, 8]);
        let c = cfg(shortest(8), Some(size(6, 4)), Layout::Nhwc);
        assert_eq!(preprocess(&[], &c).unwrap().shape(), &[0, 4, 6, 3]);
        let small = cfg(shortest(8), Some(size(10, 10)), Layout::Nchw);
        assert!(matches!(
            preprocess(&[ramp(8, 8)], &small),
            Err(ImageError::SmallerThanCrop { .. })
        ));
        let e = preprocess(&[ramp(1, 4000)], &cfg(shortest(64), None, Layout::Nchw))
            .unwrap_err()
            .to_string();
        assert!(e.contains("would be resized to 64x256000"), "{e}");
    }

    #[test]
    fn sixteen_bit_and_alpha_conversion() {
        let rgba16 = ::image::ImageBuffer::<::image::Rgba<u16>, _>::from_raw(
            2,
            1,
            vec![0x80ff, 0x00ff, 0xffff, 0x1234, 0x7f80, 0x0101, 0x0000, 0xffff],
        )
        .unwrap();
        let rgb = to_rgb8(DynamicImage::ImageRgba16(rgba16));
        assert_eq!(rgb.as_raw(), &[0x80, 0x00, 0xff, 0x7f, 0x01, 0x00]);
        let la8 = ::image::GrayAlphaImage::from_raw(1, 1, vec![77, 0]).unwrap();
        assert_eq!(to_rgb8(DynamicImage::ImageLumaA8(la8)).as_raw(), &[77, 77, 77]);
    }

    #[test]
    fn unknown_bytes_are_described() {
        let e = decode_image(b"hello, world").unwrap_err().to_string();
        assert!(e.contains("not a recognized image format"), "{e}");
        assert!(e.contains("68 65 6c 6c 6f 2c 20 77 (\"hello, w\")"), "{e}");
        assert!(matches!(decode_image(&[]), Err(ImageError::Empty)));
    }
}
