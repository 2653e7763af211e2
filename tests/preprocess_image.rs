//! Image decoding and preprocessing from files: bad inputs are errors that name the
//! problem (never panics), unusual good inputs (gray, alpha, 16-bit, palette) load
//! as PIL's `convert("RGB")` would, and `preprocess` matches the PIL golden values
//! in `tests/golden/tiny.json` under the tiny bundle's own preprocessing config.

mod common;

use std::path::Path;

use mmrt::error::Error;
use mmrt::manifest::{ImagePreprocess, Modality, Preprocess};
use mmrt::preprocess::image::{decode_image, load_image, preprocess, resized_size, ImageError};

use common::media::{png_chunk, PNG_SIGNATURE};
use common::{root, temp_file};

// --- a minimal PNG writer: stored (uncompressed) deflate blocks, hand-made CRCs ---

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// zlib stream of `data` in stored blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// A PNG with the given IHDR fields, rows of raw samples (filter byte added here),
/// and extra chunks (PLTE, tRNS) placed before IDAT.
fn png(
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    rows: &[Vec<u8>],
    extra: &[(&[u8; 4], Vec<u8>)],
) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    for (kind, data) in extra {
        out.extend(png_chunk(kind, data));
    }
    let raw: Vec<u8> = rows
        .iter()
        .flat_map(|r| std::iter::once(0u8).chain(r.iter().copied()))
        .collect();
    out.extend(png_chunk(b"IDAT", &zlib_stored(&raw)));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// An 8-bit RGB PNG whose pixel (x, y) is (x * 16, y * 16, 200).
fn rgb_png(width: u32, height: u32) -> Vec<u8> {
    let rows: Vec<Vec<u8>> = (0..height)
        .map(|y| (0..width).flat_map(|x| [(x * 16) as u8, (y * 16) as u8, 200]).collect())
        .collect();
    png(width, height, 8, 2, &rows, &[])
}

fn image_error(path: &Path) -> (ImageError, String) {
    match load_image(path) {
        Err(e @ Error::Image { .. }) => {
            let message = e.to_string();
            let Error::Image { path: p, source } = e else {
                unreachable!()
            };
            assert_eq!(p, path, "the error names the file");
            (source, message)
        }
        Err(other) => panic!("expected Error::Image for {}, got {other}", path.display()),
        Ok(img) => panic!(
            "expected an error for {}, decoded {:?}",
            path.display(),
            img.dimensions()
        ),
    }
}

// --- bad inputs ---

#[test]
fn zero_byte_file() {
    let path = temp_file("empty.png", &[]);
    let (source, message) = image_error(&path);
    assert!(matches!(source, ImageError::Empty), "{source:?}");
    assert!(message.contains("empty (0 bytes)"), "{message}");
    assert!(message.contains("empty.png"), "{message}");
}

#[test]
fn truncated_png() {
    let full = rgb_png(16, 16);
    assert_eq!(
        decode_image(&full).unwrap().dimensions(),
        (16, 16),
        "the untruncated file is valid"
    );
    // Cut inside the IDAT data, inside the header, and right after the signature.
    for cut in [full.len() / 2, 20, 8] {
        let path = temp_file("cut.png", &full[..cut]);
        let (source, message) = image_error(&path);
        assert!(
            matches!(source, ImageError::Corrupt { format: "PNG", .. }),
            "cut at {cut}: {source:?}"
        );
        assert!(
            message.contains("PNG data is truncated or corrupt"),
            "cut at {cut}: {message}"
        );
    }
}

#[test]
fn text_file_named_jpg() {
    let path = temp_file("notes.jpg", b"just some text, not a JPEG\n");
    let (source, message) = image_error(&path);
    assert!(matches!(source, ImageError::UnknownFormat { .. }), "{source:?}");
    assert!(message.contains("not a recognized image format"), "{message}");
    assert!(message.contains("\"just som\""), "{message}");
}

#[test]
fn huge_png_header_is_rejected_before_allocating() {
    // A valid signature and IHDR claiming 100000x100000 RGB (30 GB decoded) with
    // a tiny IDAT: must fail fast on the header, not try to allocate.
    let bytes = png(100_000, 100_000, 8, 2, &[vec![0; 3]], &[]);
    let path = temp_file("huge.png", &bytes);
    let (source, message) = image_error(&path);
    assert!(
        matches!(
            source,
            ImageError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{source:?}"
    );
    assert!(
        message.contains("header claims 100000x100000 pixels, larger than the 16384x16384 limit"),
        "{message}"
    );
}

#[test]
fn within_side_limit_but_too_many_bytes() {
    // 16384 x 16384 RGBA 16-bit = 2 GiB decoded: each side is allowed, the buffer is not.
    let bytes = png(16384, 16384, 16, 6, &[vec![0; 8]], &[]);
    let err = decode_image(&bytes).unwrap_err();
    assert!(matches!(err, ImageError::TooManyBytes { .. }), "{err:?}");
    assert!(err.to_string().contains("needs 2147483648 bytes"), "{err}");
}

#[test]
fn zero_size_png() {
    let err = decode_image(&png(0, 4, 8, 2, &[], &[])).unwrap_err();
    // The PNG decoder itself rejects a zero dimension in IHDR; either way it is an error naming it.
    let message = err.to_string();
    assert!(
        message.contains("zero size") || message.contains("PNG data is truncated or corrupt"),
        "{message}"
    );
}

#[test]
fn nonexistent_path_is_io_error() {
    let path = std::env::temp_dir().join("mmrt-preprocess-image-does-not-exist/nothing.png");
    match load_image(&path) {
        Err(e @ Error::Io { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("cannot read") && message.contains("nothing.png"),
                "{message}"
            );
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

// --- good inputs, converted as PIL's convert("RGB") ---

#[test]
fn grayscale_png() {
    let rows = vec![vec![0, 7, 128, 255]];
    let img = decode_image(&png(4, 1, 8, 0, &rows, &[])).unwrap();
    assert_eq!(img.as_raw(), &[0, 0, 0, 7, 7, 7, 128, 128, 128, 255, 255, 255]);
}

#[test]
fn gray_alpha_png_drops_alpha() {
    let rows = vec![vec![10, 0, 200, 255]];
    let img = decode_image(&png(2, 1, 8, 4, &rows, &[])).unwrap();
    assert_eq!(img.as_raw(), &[10, 10, 10, 200, 200, 200]);
}

#[test]
fn rgba_png_drops_alpha_without_compositing() {
    // A fully transparent red pixel stays red (PIL's convert("RGB") ignores alpha).
    let rows = vec![vec![255, 0, 0, 0, 1, 2, 3, 128]];
    let img = decode_image(&png(2, 1, 8, 6, &rows, &[])).unwrap();
    assert_eq!(img.as_raw(), &[255, 0, 0, 1, 2, 3]);
}

#[test]
fn sixteen_bit_rgb_png_keeps_high_byte() {
    // Big-endian samples; values checked against Pillow 13 (high byte, not rounding).
    let samples: [u16; 6] = [0x00ff, 0x7f80, 0x80ff, 0x1234, 0xfeff, 0xffff];
    let rows = vec![samples.iter().flat_map(|v| v.to_be_bytes()).collect()];
    let img = decode_image(&png(2, 1, 16, 2, &rows, &[])).unwrap();
    assert_eq!(img.as_raw(), &[0x00, 0x7f, 0x80, 0x12, 0xfe, 0xff]);
}

#[test]
fn sixteen_bit_gray_png() {
    let rows = vec![[0x0000u16, 0x80ff, 0xffff]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()];
    let img = decode_image(&png(3, 1, 16, 0, &rows, &[])).unwrap();
    assert_eq!(img.as_raw(), &[0, 0, 0, 0x80, 0x80, 0x80, 255, 255, 255]);
}

#[test]
fn palette_png_with_transparency() {
    let palette = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7];
    let trns = vec![255, 0]; // entry 1 fully transparent: its color is still used
    let rows = vec![vec![0, 1, 2, 3]];
    let bytes = png(4, 1, 8, 3, &rows, &[(b"PLTE", palette), (b"tRNS", trns)]);
    let path = temp_file("palette.png", &bytes);
    let img = load_image(&path).unwrap();
    assert_eq!(img.as_raw(), &[255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7]);
}

#[test]
fn file_name_does_not_matter() {
    let path = temp_file("actually_png.jpg", &rgb_png(3, 2));
    let img = load_image(&path).unwrap();
    assert_eq!(img.dimensions(), (3, 2));
    assert_eq!(img.get_pixel(2, 1).0, [32, 16, 200]);
}

// --- parity with PIL (golden values from exporters/common/preprocess.py) ---

/// The tiny bundle's image preprocessing block, read from its manifest.
fn tiny_image_config() -> ImagePreprocess {
    let bundle = common::bundle("tiny");
    let encoder = bundle.manifest.encoder(Modality::Image).expect("an image encoder stage");
    match &encoder.preprocess {
        Preprocess::Image(p) => p.clone(),
        other => panic!("expected image preprocessing, found {other:?}"),
    }
}

#[test]
fn matches_pil_golden() {
    let cfg = tiny_image_config();
    let cases = common::golden::tiny().preprocess;
    assert!(!cases.is_empty());
    // Resized images: PIL and fast_image_resize both run 8-bit fixed-point
    // convolutions with the same Catmull-Rom weights, but their rounding of the
    // intermediate (horizontal-pass) values can differ by 1 level. One u8 level is
    // 1/255/std ≈ 0.0146 after normalization (std >= 0.2613); allow two levels.
    let resized_tolerance = 2.0 / 255.0 / cfg.std.iter().cloned().fold(f32::INFINITY, f32::min);
    for case in cases {
        let image_path = &case.image;
        let (shape, want) = (&case.shape, &case.pixel_values);
        let img = load_image(&root().join(image_path)).unwrap();
        let got = preprocess(std::slice::from_ref(&img), &cfg).unwrap();
        assert_eq!(got.shape(), shape.as_slice(), "{image_path}");
        let got = got.as_slice().unwrap();
        assert_eq!(got.len(), want.len(), "{image_path}");
        let max_diff = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let levels_off = got.iter().zip(want).filter(|(a, b)| (*a - *b).abs() > 1e-5).count();
        let unresized = resized_size(img.width(), img.height(), &cfg.resize).unwrap() == img.dimensions();
        eprintln!(
            "{image_path} {}x{}: max |rust - PIL| = {max_diff:.3e}, {levels_off}/{} values differ",
            img.width(),
            img.height(),
            got.len()
        );
        let tolerance = if unresized { 1e-5 } else { resized_tolerance };
        assert!(
            max_diff <= tolerance,
            "{image_path}: max abs diff {max_diff} > {tolerance}"
        );
    }
}
