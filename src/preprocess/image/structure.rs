//! Strict container checks before decoding: a truncated or inconsistent file
//! is an error, never a partial picture (PNG to `IEND`, JPEG to its end
//! marker, GIF to its trailer, WebP chunk sizes, BMP pixel offset and rows).

use ::image::ImageFormat;

use super::*;

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
pub(super) fn check_dimensions(format: &'static str, width: u32, height: u32) -> Result<(), ImageError> {
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
pub(super) fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}
