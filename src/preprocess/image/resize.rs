//! From decoded RGB to the encoder's input: resized size (shortest edge or
//! exact), center crop, resampling with the manifest's filter, rescale and
//! normalize into an NCHW / NHWC batch, as transformers' image processors do.

use super::*;

/// `(width, height)` after the resize rule, for an input of `width × height`.
///
/// * `exact`: that size.
/// * `shortest_edge: S`: the shorter side becomes `S`, the longer one
///   `long * S / short` rounded to nearest with ties **up**, computed exactly in
///   integers as `(2 * long * S + short) / (2 * short)`. This is the rule of
///   `exporters/common/preprocess.py`, which produced the golden files. It equals Python's
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
