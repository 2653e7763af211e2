//! Media files made by hand: PNG chunks (with their CRC) and WAV files.

use std::path::Path;

/// The eight bytes every PNG starts with.
pub const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Bitwise CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320), as PNG chunks use.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data, CRC over type + data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

/// A WAV file of `frames` (each value in [-1, 1] written to every channel) in
/// the sample format of `spec`.
pub fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[f32]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for &x in frames {
        for _ in 0..spec.channels {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(x).unwrap(),
                (_, 8) => w.write_sample((x * 127.0).round() as i8).unwrap(),
                (_, 16) => w.write_sample((x * 32767.0).round() as i16).unwrap(),
                (_, bits) => w.write_sample((x as f64 * ((1i64 << (bits - 1)) - 1) as f64).round() as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

/// Mono 16-bit PCM at `rate`.
pub fn mono16(rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}
