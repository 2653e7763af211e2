//! Image decoding and preprocessing against PIL / transformers values.

#![allow(clippy::excessive_precision)] // CLIP's mean/std, digit for digit as published

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
