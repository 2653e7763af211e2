//! Dot products of 8-bit block-quantized rows with one activation vector:
//! the GGUF Q8_0 arithmetic (blocks of 32, one scale per block), read in
//! place from a mapped table. The activations are quantized the same way
//! (int8 codes, one f32 scale per block of 32, as llama.cpp and ONNX
//! Runtime's int8 MatMulNBits path do), so each block's sum is an exact
//! integer and only the per-block scaling is floating point.
//!
//! Rows are stored planar: `codes [rows, width]` as `u8` (the int8 code
//! + 128), then `scales [rows, width / 32]` as IEEE float16 bits. A row
//! value is `scale[r, b] * (code[r, i] - 128)`.
//!
//! Kernels: AVX-512 VNNI (`vpdpbusd`: unsigned codes times signed
//! activations, the +128 offset removed per block), AVX2 (sign trick, no
//! saturation since |code - 128| <= 128 and |activation| <= 127 give pair
//! sums <= 32,512), and a portable one the compiler vectorizes (NEON on ARM).

/// Block length (GGUF Q8_0).
pub const BLOCK: usize = 32;

/// An activation vector quantized per block of [`BLOCK`].
#[derive(Debug, Clone, Default)]
pub struct QuantizedVector {
    /// int8 codes, `width` of them.
    pub codes: Vec<i8>,
    /// One scale per block: value ≈ scale * code.
    pub scales: Vec<f32>,
    /// Per block: `128 * scale * Σ codes`, what the +128 code offset adds.
    offsets: Vec<f32>,
}

impl QuantizedVector {
    /// Quantize `x` (length a multiple of [`BLOCK`]): per block the scale is
    /// `max |x| / 127` and each code `round(x / scale)`, ties to even.
    pub fn quantize(x: &[f32], out: &mut QuantizedVector) {
        debug_assert!(x.len() % BLOCK == 0);
        out.codes.clear();
        out.scales.clear();
        out.offsets.clear();
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for &v in block {
                let q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32;
                sum += q;
                out.codes.push(q as i8);
            }
            out.scales.push(scale);
            out.offsets.push(128.0 * scale * sum as f32);
        }
    }
}

/// `out[r] = Σ_b f16(scales[r, b]) * x.scales[b] * Σ_i (codes[r, b, i] - 128) * x.codes[b, i]`
/// for the `out.len()` rows held by `codes` (`out.len() * width` bytes) and
/// `scales` (`out.len() * width / 32` float16 bits).
pub fn dot_rows(codes: &[u8], scales: &[u16], x: &QuantizedVector, out: &mut [f32]) {
    let width = x.codes.len();
    assert!(width % BLOCK == 0 && codes.len() == out.len() * width && scales.len() == out.len() * (width / BLOCK));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features the kernel enables were detected above; lengths asserted.
            return unsafe { x86::rows_vnni(codes, scales, x, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { x86::rows_avx2(codes, scales, x, out) };
        }
    }
    rows_portable(codes, scales, x, out)
}

/// The row's block scales as f32 (float16 bits in).
fn row_scales(bits: &[u16], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(bits) {
        *o = half::f16::from_bits(b).to_f32();
    }
}

/// Any target: plain loops over each block (auto-vectorized).
fn rows_portable(codes: &[u8], scales: &[u16], x: &QuantizedVector, out: &mut [f32]) {
    let width = x.codes.len();
    let nb = width / BLOCK;
    let mut sw = vec![0f32; nb];
    for (r, o) in out.iter_mut().enumerate() {
        row_scales(&scales[r * nb..(r + 1) * nb], &mut sw);
        let row = &codes[r * width..(r + 1) * width];
        let mut acc = 0f32;
        for b in 0..nb {
            let (c, q) = (&row[b * BLOCK..(b + 1) * BLOCK], &x.codes[b * BLOCK..(b + 1) * BLOCK]);
            let dot: i32 = c.iter().zip(q).map(|(&c, &q)| (c as i32 - 128) * q as i32).sum();
            acc += sw[b] * x.scales[b] * dot as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{QuantizedVector, BLOCK};

    /// Widest block count a row may have on the stack path (width 8,192).
    const MAX_BLOCKS: usize = 256;

    /// Convert a row's float16 scales to f32 into `out` (padded to 8).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn scales_f32(bits: &[u16], out: &mut [f32; MAX_BLOCKS + 8]) {
        let mut i = 0;
        while i + 8 <= bits.len() {
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr().add(i) as *const __m128i)));
            i += 8;
        }
        super::row_scales(&bits[i..], &mut out[i..]);
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)))
    }

    /// AVX-512 VNNI: two blocks per 64-byte load; `vpdpbusd` multiplies the
    /// unsigned (offset) codes by the signed activations, and the offset's
    /// share (`x.offsets`) is taken off once per block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")]
    pub unsafe fn rows_vnni(codes: &[u8], scales: &[u16], x: &QuantizedVector, out: &mut [f32]) {
        let width = x.codes.len();
        let nb = width / BLOCK;
        if nb > MAX_BLOCKS {
            return super::rows_portable(codes, scales, x, out);
        }
        let mut sw = [0f32; MAX_BLOCKS + 8];
        // combined activation scale per block, and the offset correction
        let (xs, xo) = (x.scales.as_slice(), x.offsets.as_slice());
        for (r, o) in out.iter_mut().enumerate() {
            scales_f32(&scales[r * nb..(r + 1) * nb], &mut sw);
            let row = codes.as_ptr().add(r * width);
            let mut acc512 = _mm512_setzero_ps();
            let mut correction = 0f32;
            let mut b = 0;
            while b + 2 <= nb {
                // the table streams from memory once a step (see crate::quant's PREFETCH)
                _mm_prefetch::<_MM_HINT_T0>(row.add(b * BLOCK + 4096) as *const i8);
                let c = _mm512_loadu_si512(row.add(b * BLOCK) as *const _);
                let q = _mm512_loadu_si512(x.codes.as_ptr().add(b * BLOCK) as *const _);
                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, q);
                let (s0, s1) = (sw[b] * xs[b], sw[b + 1] * xs[b + 1]);
                let s = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(s0)), _mm256_set1_ps(s1), 1);
                acc512 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc512);
                correction += sw[b] * xo[b] + sw[b + 1] * xo[b + 1];
                b += 2;
            }
            let mut acc = _mm256_add_ps(_mm512_castps512_ps256(acc512), _mm512_extractf32x8_ps(acc512, 1));
            if b < nb {
                let c = _mm256_loadu_si256(row.add(b * BLOCK) as *const __m256i);
                let q = _mm256_loadu_si256(x.codes.as_ptr().add(b * BLOCK) as *const __m256i);
                let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, q);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(sw[b] * xs[b]), acc);
                correction += sw[b] * xo[b];
            }
            *o = hsum256(acc) - correction;
        }
    }

    /// AVX2: `vpmaddubsw` on |w| and sign-adjusted activations (w = code ^ 0x80
    /// is the signed code), pairs widened by `vpmaddwd`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows_avx2(codes: &[u8], scales: &[u16], x: &QuantizedVector, out: &mut [f32]) {
        let width = x.codes.len();
        let nb = width / BLOCK;
        if nb > MAX_BLOCKS {
            return super::rows_portable(codes, scales, x, out);
        }
        let mut sw = [0f32; MAX_BLOCKS + 8];
        let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi16(1));
        for (r, o) in out.iter_mut().enumerate() {
            scales_f32(&scales[r * nb..(r + 1) * nb], &mut sw);
            let row = codes.as_ptr().add(r * width);
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                let w = _mm256_xor_si256(_mm256_loadu_si256(row.add(b * BLOCK) as *const __m256i), flip);
                let q = _mm256_loadu_si256(x.codes.as_ptr().add(b * BLOCK) as *const __m256i);
                // |w| * (q with w's sign): the products of w * q, unsigned x signed for maddubs.
                // w = -128 has no positive int8: abs gives 0x80 = 128 as unsigned, which is right.
                let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w));
                let dot = _mm256_madd_epi16(pairs, ones);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(sw[b] * x.scales[b]), acc);
            }
            *o = hsum256(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    /// Every kernel this machine can run agrees with a float64 evaluation of
    /// the same integer sums, extreme codes (0 and 255, i.e. -128 and 127) included.
    #[test]
    fn kernels_match_the_block_arithmetic() {
        let (rows, width) = (37, 96 + 32); // odd block count: the single-block tail runs too
        let mut seed = 7;
        let mut codes: Vec<u8> = (0..rows * width).map(|_| lcg(&mut seed) as u8).collect();
        codes[0] = 0;
        codes[1] = 255;
        let scales: Vec<u16> = (0..rows * width / BLOCK).map(|_| half::f16::from_f32(0.001 + (lcg(&mut seed) % 1000) as f32 * 1e-4).to_bits()).collect();
        let x: Vec<f32> = (0..width).map(|_| (lcg(&mut seed) % 2001) as f32 / 1000.0 - 1.0).collect();
        let mut q = QuantizedVector::default();
        QuantizedVector::quantize(&x, &mut q);
        let nb = width / BLOCK;
        let want: Vec<f64> = (0..rows)
            .map(|r| {
                (0..nb)
                    .map(|b| {
                        let dot: i64 = (0..BLOCK).map(|i| (codes[r * width + b * BLOCK + i] as i64 - 128) * q.codes[b * BLOCK + i] as i64).sum();
                        half::f16::from_bits(scales[r * nb + b]).to_f64() * q.scales[b] as f64 * dot as f64
                    })
                    .sum()
            })
            .collect();
        let mut got = vec![0f32; rows];
        let check = |got: &[f32], kernel: &str| {
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0), "{kernel} row {r}: {g} vs {w}");
            }
        };
        dot_rows(&codes, &scales, &q, &mut got);
        check(&got, "dispatched");
        rows_portable(&codes, &scales, &q, &mut got);
        check(&got, "portable");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("fma") {
                unsafe { x86::rows_avx2(&codes, &scales, &q, &mut got) };
                check(&got, "avx2");
            }
            if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vl") {
                unsafe { x86::rows_vnni(&codes, &scales, &q, &mut got) };
                check(&got, "avx512-vnni");
            }
        }
    }

    #[test]
    fn quantization_is_per_block_and_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| if i < 32 { i as f32 * 0.1 - 1.0 } else { 0.0 }).collect();
        let mut q = QuantizedVector::default();
        QuantizedVector::quantize(&x, &mut q);
        assert_eq!(q.scales.len(), 2);
        assert_eq!(q.scales[1], 0.0, "an all-zero block has scale 0");
        assert!(q.codes[32..].iter().all(|&c| c == 0));
        for (v, &c) in x[..32].iter().zip(&q.codes[..32]) {
            assert!((v - q.scales[0] * c as f32).abs() <= q.scales[0] * 0.5 + 1e-7);
        }
        assert_eq!(q.codes.iter().map(|c| c.unsigned_abs()).max(), Some(127));
    }
}
