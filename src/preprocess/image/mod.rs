//! Image preprocessing for the image modality encoder: file bytes → RGB pixels →
//! the encoder's `pixel_values` tensor, `[n, 3, H, W]` (NCHW) or `[n, H, W, 3]`
//! (NHWC), as the manifest's [`ImagePreprocess`] block describes.
//!
//! Pure functions, no ONNX Runtime. The reference is PIL as used by Hugging Face
//! image processors (and `exporters/common/preprocess.py`, the Python twin of this file):
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

mod resize;
mod structure;
#[cfg(test)]
mod tests;

pub use resize::*;
pub use structure::*;
use structure::{check_dimensions, png_header_size};

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
    /// A raw pixel buffer whose length or stride does not fit its declared size.
    #[error("raw RGB buffer: {0}")]
    Buffer(String),
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

/// An image from a raw 8-bit RGB buffer (a camera frame): `height` rows of
/// `width * 3` bytes, each row starting `stride` bytes after the previous one
/// (`stride >= width * 3`; padding is skipped). The size is checked against
/// [`MAX_SIDE`] and the buffer's length before anything is copied.
pub fn rgb_from_buffer(width: u32, height: u32, stride: usize, pixels: &[u8]) -> Result<RgbImage, ImageError> {
    check_dimensions("raw RGB", width, height)?;
    let row = width as usize * 3;
    if stride < row {
        return Err(ImageError::Buffer(format!("stride {stride} is shorter than a row of {width} RGB pixels ({row} bytes)")));
    }
    let needed = stride * (height as usize - 1) + row;
    if pixels.len() < needed {
        return Err(ImageError::Buffer(format!(
            "{} bytes hold less than {width}x{height} pixels at stride {stride} ({needed} bytes needed)",
            pixels.len()
        )));
    }
    let mut packed = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        packed.extend_from_slice(&pixels[y * stride..y * stride + row]);
    }
    Ok(RgbImage::from_raw(width, height, packed).expect("length checked"))
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
