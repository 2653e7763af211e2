//! Media in requests: images as data URIs or `file://` URLs inside the one
//! directory the operator allowed, audio as base64 WAV. Sizes are checked
//! before any pixel is decoded: the encoded bytes against `max_media_bytes`,
//! the image header's width x height against `max_image_pixels` (a
//! decompression bomb is a small file with a huge header), and then the
//! runtime's own decoder limits apply.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use mmrt::pipeline::MediaInput;

use super::error::ApiError;

/// What media a request may carry.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Largest image, width x height.
    pub max_image_pixels: u64,
    /// Largest media item, encoded bytes.
    pub max_media_bytes: usize,
    /// The directory `file://` URLs may point into (canonical); none: file URLs refused.
    pub file_root: Option<PathBuf>,
}

impl MediaPolicy {
    /// An `image_url`'s image.
    pub fn image(&self, url: &str, label: &str) -> Result<MediaInput, ApiError> {
        let bytes = if let Some(rest) = url.strip_prefix("data:") {
            self.data_uri(rest, label)?
        } else if let Some(path) = url.strip_prefix("file://") {
            self.file(Path::new(path), label)?
        } else {
            let scheme = url.split(':').next().unwrap_or("");
            return Err(ApiError::bad_request(
                "invalid_image_url",
                format!("{label}: image URL scheme \"{scheme}\" is not fetched (the server makes no outside requests); send a data: URI or a file:// URL"),
            ));
        };
        self.check_image_header(&bytes, label)?;
        Ok(MediaInput::Encoded { name: label.to_string(), bytes })
    }

    /// An `input_audio`'s WAV.
    pub fn audio(&self, data: &str, format: &str, label: &str) -> Result<MediaInput, ApiError> {
        if format != "wav" {
            return Err(ApiError::bad_request("invalid_audio_format", format!("{label}: audio format \"{format}\" is not supported; send \"wav\"")));
        }
        let bytes = self.base64(data, label)?;
        Ok(MediaInput::Encoded { name: label.to_string(), bytes })
    }

    /// A `video_url`'s clip: a `file://` URL inside the allowed directory,
    /// decoded from there as frames are needed (clips are large; they are not
    /// read into memory, nor accepted inline).
    pub fn video(&self, url: &str, label: &str) -> Result<MediaInput, ApiError> {
        let Some(path) = url.strip_prefix("file://") else {
            let scheme = url.split(':').next().unwrap_or("");
            return Err(ApiError::bad_request(
                "invalid_video_url",
                format!("{label}: video URL scheme \"{scheme}\" is not accepted; send a file:// URL inside the server's --allow-file-dir"),
            ));
        };
        Ok(MediaInput::File(self.allowed_path(Path::new(path), label)?))
    }

    /// Uploaded bytes (a transcription's file), held to the same limit.
    pub fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<MediaInput, ApiError> {
        if bytes.len() > self.max_media_bytes {
            return Err(too_large(name, bytes.len(), self.max_media_bytes));
        }
        Ok(MediaInput::Encoded { name: name.to_string(), bytes })
    }

    fn data_uri(&self, rest: &str, label: &str) -> Result<Vec<u8>, ApiError> {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(ApiError::bad_request("invalid_image_url", format!("{label}: a data URI needs a comma before its data")));
        };
        if !meta.ends_with(";base64") {
            return Err(ApiError::bad_request("invalid_image_url", format!("{label}: only base64 data URIs are accepted (data:image/png;base64,...)")));
        }
        self.base64(data, label)
    }

    fn base64(&self, data: &str, label: &str) -> Result<Vec<u8>, ApiError> {
        let decoded_len = data.len() / 4 * 3;
        if decoded_len > self.max_media_bytes + 3 {
            return Err(too_large(label, decoded_len, self.max_media_bytes));
        }
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| ApiError::bad_request("invalid_base64", format!("{label}: the data is not valid base64: {e}")))
    }

    /// The canonical form of a `file://` path, if it lies inside the allowed directory.
    fn allowed_path(&self, path: &Path, label: &str) -> Result<PathBuf, ApiError> {
        let Some(root) = &self.file_root else {
            return Err(ApiError::bad_request("file_url_refused", format!("{label}: file:// URLs are refused (start the server with --allow-file-dir DIR to allow one directory)")));
        };
        let outside = || ApiError::bad_request("file_url_refused", format!("{label}: {} is not inside the allowed directory {}", path.display(), root.display()));
        // Canonical form first: `..` and links must not lead out of the root.
        let real = path.canonicalize().map_err(|_| outside())?;
        if !real.starts_with(root) {
            return Err(outside());
        }
        Ok(real)
    }

    fn file(&self, path: &Path, label: &str) -> Result<Vec<u8>, ApiError> {
        let real = self.allowed_path(path, label)?;
        let bytes = mmrt::limits::read_bounded(&real, self.max_media_bytes as u64, "an image file")
            .map_err(|e| ApiError::bad_request("invalid_image_url", format!("{label}: {}: {e}", path.display())))?;
        Ok(bytes)
    }

    fn check_image_header(&self, bytes: &[u8], label: &str) -> Result<(), ApiError> {
        let reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ApiError::bad_request("invalid_image", format!("{label}: {e}")))?;
        let Ok((width, height)) = reader.into_dimensions() else {
            // Not an image this reader knows: the runtime's decoder says exactly why.
            return mmrt::preprocess::image::decode_image(bytes)
                .map(|_| ())
                .map_err(|e| ApiError::bad_request("invalid_image", format!("{label}: {e}")));
        };
        if width as u64 * height as u64 > self.max_image_pixels {
            return Err(ApiError::too_large(
                "image_too_large",
                format!("{label}: the image is {width}x{height} = {} pixels, above this server's limit of {} (--max-image-pixels)", width as u64 * height as u64, self.max_image_pixels),
            ));
        }
        Ok(())
    }
}

fn too_large(label: &str, bytes: usize, max: usize) -> ApiError {
    ApiError::too_large("media_too_large", format!("{label}: {bytes} bytes of media, above this server's limit of {max} bytes per item (--max-media-bytes)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(root: Option<PathBuf>) -> MediaPolicy {
        MediaPolicy { max_image_pixels: 1 << 20, max_media_bytes: 1 << 20, file_root: root }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(width, height).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    /// PNG's chunk checksum (CRC-32, polynomial 0xEDB88320), so the forged header is otherwise valid.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn a_bomb_header_is_refused_before_decoding() {
        // A real PNG whose IHDR is rewritten to claim 60000x60000 pixels.
        let mut bytes = png(2, 2);
        bytes[16..20].copy_from_slice(&60000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&60000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let uri = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
        let e = policy(None).image(&uri, "img").unwrap_err();
        assert_eq!(e.status.as_u16(), 413, "{}", e.message);
        assert!(e.message.contains("60000x60000"), "{}", e.message);
    }

    #[test]
    fn urls_outside_the_allowed_directory_are_refused() {
        let dir = std::env::temp_dir().join(format!("mmrt-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ok.png"), png(4, 4)).unwrap();
        let p = policy(Some(dir.canonicalize().unwrap()));
        assert!(p.image(&format!("file://{}", dir.join("ok.png").display()), "img").is_ok());
        assert!(p.image(&format!("file://{}/../etc/passwd", dir.display()), "img").unwrap_err().message.contains("not inside"));
        assert!(policy(None).image(&format!("file://{}", dir.join("ok.png").display()), "img").unwrap_err().message.contains("--allow-file-dir"));
        assert!(p.image("https://example.com/cat.png", "img").unwrap_err().message.contains("not fetched"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
