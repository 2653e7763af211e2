//! Fuzz target: image decoding (`decode_image`, strict containers included)
//! and preprocessing (resize, crop, normalize) of whatever decodes. Inputs are
//! `tests/fixtures/fuzz/image/` (every enabled format, animated ones too) and
//! `tests/fixtures/images/`, mutated as bytes; each decoded image goes through
//! a preprocessing configuration derived from the input (filters, layouts,
//! shortest-edge or exact resize, crop or none).
//! See `tests/fuzz_common/mod.rs` for the knobs (`MMRT_FUZZ_CASES`, ...).

mod fuzz_common;

use fuzz_common::{fuzz, hash};
use mmrt::manifest::{ImagePreprocess, Layout, Resize, ResizeFilter, Size, TensorDtype};
use mmrt::preprocess::image::{decode_image, preprocess, ImageError, MAX_SIDE};

/// About 2 s in a debug build.
const DEFAULT_CASES: usize = 10_000;

/// A preprocessing block chosen by `h` (deterministic per input).
fn config(h: u64) -> ImagePreprocess {
    let filter = [ResizeFilter::Nearest, ResizeFilter::Bilinear, ResizeFilter::Bicubic, ResizeFilter::Lanczos][(h & 3) as usize];
    let side = [1u32, 7, 32, 33][((h >> 2) & 3) as usize];
    let resize = if h >> 4 & 1 == 0 {
        Resize { shortest_edge: Some(side), exact: None, filter }
    } else {
        Resize { shortest_edge: None, exact: Some(Size { width: side, height: 1 + (h >> 8) as u32 % 40 }), filter }
    };
    let crop = (h >> 5 & 1 == 1).then_some(Size { width: side.min(16), height: side.min(16) });
    ImagePreprocess {
        resize,
        crop,
        rescale_factor: 1.0 / 255.0,
        mean: [0.5, 0.4, 0.3],
        std: [0.2, 0.25, 0.3],
        layout: if h >> 6 & 1 == 0 { Layout::Nchw } else { Layout::Nhwc },
        dtype: TensorDtype::Float32,
    }
}

#[test]
fn fuzz_image() {
    let corpus = fuzz_common::corpus(&["tests/fixtures/fuzz/image", "tests/fixtures/images"], &[]);
    fuzz("image", DEFAULT_CASES, &corpus, fuzz_common::mutated_seed, |input| {
        match decode_image(input) {
            Ok(rgb) => {
                let (w, h) = rgb.dimensions();
                assert!(w >= 1 && h >= 1 && w <= MAX_SIDE && h <= MAX_SIDE, "{w}x{h}");
                assert_eq!(rgb.as_raw().len(), w as usize * h as usize * 3);
                let cfg = config(hash(input));
                match preprocess(&[rgb.clone(), rgb], &cfg) {
                    Ok(x) => {
                        assert_eq!(x.shape()[0], 2);
                        assert!(x.iter().all(|v| v.is_finite()));
                    }
                    Err(ImageError::SmallerThanCrop { .. } | ImageError::ResizedTooLarge { .. }) => {}
                    Err(e) => panic!("preprocessing a decoded image failed: {e}"),
                }
                true
            }
            Err(e) => {
                let _ = e.to_string();
                false
            }
        }
    });
}
