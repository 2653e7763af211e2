//! GGUF Q4_1 (`block_q4_1`): 32 values in 20 bytes, `f16 d`, `f16 m`,
//! then 16 bytes whose low nibbles are values 0..16 and high nibbles values
//! 16..32; value = `d·q + m`.
//!
//! Dot with a float row: `Σ_b d_b · Σ_i q_i x_i + m_b · Σ_i x_i`, the
//! second sum being the caller's per-block activation sum.

use super::{half_to_f32, le16};

pub const BLOCK_BYTES: usize = 20;
const QK: usize = 32;

pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
    for (block, o) in w.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (half_to_f32(le16(block, 0)), half_to_f32(le16(block, 2)));
        for (j, &q) in block[4..].iter().enumerate() {
            o[j] = d * (q & 0x0F) as f32 + m;
            o[j + 16] = d * (q >> 4) as f32 + m;
        }
    }
}

/// `out[r] = row r · x` (`x.len()` = K, `sums` its per-32 sums).
pub fn dot_rows(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    let row_bytes = x.len() / QK * BLOCK_BYTES;
    assert!(w.len() == out.len() * row_bytes && sums.len() >= x.len() / QK);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: features detected above; lengths asserted.
            return unsafe { x86::rows_avx512(w, x, sums, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: as above.
            return unsafe { x86::rows_avx2(w, x, sums, out) };
        }
    }
    rows_portable(w, x, sums, out)
}

fn rows_portable(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    let row_bytes = x.len() / QK * BLOCK_BYTES;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut acc = 0f32;
        for ((block, xb), s) in row.chunks_exact(BLOCK_BYTES).zip(x.chunks_exact(QK)).zip(sums) {
            let mut dot = 0f32;
            for (j, &q) in block[4..].iter().enumerate() {
                dot += (q & 0x0F) as f32 * xb[j] + (q >> 4) as f32 * xb[j + 16];
            }
            acc += half_to_f32(le16(block, 0)) * dot + half_to_f32(le16(block, 2)) * s;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::PREFETCH;
    use super::{BLOCK_BYTES, QK};

    /// `(d, m)` of a block: its first 4 bytes are two IEEE halves.
    #[inline(always)]
    unsafe fn scale_min(block: *const u8) -> __m128 {
        _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(block as *const i32)))
    }

    /// AVX-512: a block's 16 code bytes widen to 16 lanes; the low and high
    /// nibbles are values 0..16 and 16..32, converted and multiplied with
    /// the activations, and the block's sum scaled by `d` into the
    /// accumulator. Two rows at a time share the activation loads.
    #[target_feature(enable = "avx512f,f16c,fma,avx2")]
    pub unsafe fn rows_avx512(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
        let nb = x.len() / QK;
        let row_bytes = nb * BLOCK_BYTES;
        // codes 0..15 as floats: `vpermps` reads only an index's low 4 bits, so the low nibble
        // needs no mask and the lookup replaces two int-to-float conversions on the busier port
        let values = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut r = 0;
        while r + 2 <= out.len() {
            let (row0, row1) = (wp.add(r * row_bytes), wp.add((r + 1) * row_bytes));
            let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let (mut min0, mut min1) = (_mm_setzero_ps(), _mm_setzero_ps());
            for b in 0..nb {
                let (x0, x1) = (_mm512_loadu_ps(xp.add(b * QK)), _mm512_loadu_ps(xp.add(b * QK + 16)));
                let s = _mm_set1_ps(*sums.get_unchecked(b));
                for (row, acc, min) in [(row0, &mut acc0, &mut min0), (row1, &mut acc1, &mut min1)] {
                    let block = row.add(b * BLOCK_BYTES);
                    _mm_prefetch::<_MM_HINT_T0>(block.add(PREFETCH) as *const i8);
                    let dm = scale_min(block);
                    let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(block.add(4) as *const __m128i));
                    let lo = _mm512_permutexvar_ps(v, values);
                    let hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), values);
                    let t = _mm512_fmadd_ps(hi, x1, _mm512_mul_ps(lo, x0));
                    *acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(dm), t, *acc);
                    // lane 1 gathers m·Σx
                    *min = _mm_fmadd_ps(dm, s, *min);
                }
            }
            out[r] = _mm512_reduce_add_ps(acc0) + lane1(min0);
            out[r + 1] = _mm512_reduce_add_ps(acc1) + lane1(min1);
            r += 2;
        }
        if r < out.len() {
            super::rows_portable(&w[r * row_bytes..], x, sums, &mut out[r..]);
        }
    }

    #[inline(always)]
    unsafe fn lane1(v: __m128) -> f32 {
        _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1))
    }

    /// AVX2: the same, 8 lanes (values 0..8 / 16..24, then 8..16 / 24..32).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows_avx2(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
        let nb = x.len() / QK;
        let row_bytes = nb * BLOCK_BYTES;
        let nibble = _mm256_set1_epi32(0x0F);
        let xp = x.as_ptr();
        for (r, o) in out.iter_mut().enumerate() {
            let row = w.as_ptr().add(r * row_bytes);
            let mut acc = _mm256_setzero_ps();
            let mut min = _mm_setzero_ps();
            for b in 0..nb {
                let block = row.add(b * BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(block.add(PREFETCH) as *const i8);
                let dm = scale_min(block);
                let xb = xp.add(b * QK);
                let mut t = _mm256_setzero_ps();
                for half in 0..2 {
                    let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(block.add(4 + half * 8) as *const __m128i));
                    let lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, nibble));
                    let hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
                    t = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xb.add(half * 8)), t);
                    t = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xb.add(16 + half * 8)), t);
                }
                acc = _mm256_fmadd_ps(_mm256_set1_ps(_mm_cvtss_f32(dm)), t, acc);
                min = _mm_fmadd_ps(dm, _mm_set1_ps(*sums.get_unchecked(b)), min);
            }
            let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            *o = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1))) + lane1(min);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::tests::{blocks, noise, reference};
    use crate::quant::{block_sums, BlockMatrix, BlockType};

    /// Every kernel this machine can run (the dispatcher only picks the widest), against the
    /// f64 product over the dequantized rows.
    #[test]
    fn every_kernel_equals_the_dequantized_product() {
        let (n, k) = (5, 96);
        let w = blocks(BlockType::Q4_1, n, k, 7);
        let x: Vec<f32> = noise(3, k).iter().map(|&b| b as f32 / 50.0 - 2.5).collect();
        let mut sums = Vec::new();
        block_sums(&x, &mut sums);
        let (want, _) = reference(&BlockMatrix::new(BlockType::Q4_1, &w, n, k).unwrap(), &x);
        let mut kernels: Vec<(&str, fn(&[u8], &[f32], &[f32], &mut [f32]))> = vec![("portable", rows_portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c") {
                kernels.push(("avx2", |w, x, s, o| unsafe { x86::rows_avx2(w, x, s, o) }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("f16c") {
                kernels.push(("avx512", |w, x, s, o| unsafe { x86::rows_avx512(w, x, s, o) }));
            }
        }
        for (name, kernel) in kernels {
            let mut out = vec![f32::NAN; n];
            kernel(&w, &x, &sums, &mut out);
            for (r, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{name} row {r}: {a} vs {b}");
            }
        }
    }

    /// ggml's `block_q4_1`, written out by hand: d = 0.5, m = -1, byte j = (j + 1) | (15 - j) << 4,
    /// so value j = 0.5·(j + 1) − 1 and value 16 + j = 0.5·(15 − j) − 1.
    #[test]
    fn dequantizes_ggml_block_q4_1() {
        let mut block = vec![0x00, 0x38, 0x00, 0xBC]; // f16 0.5, f16 -1.0, little-endian
        block.extend((0..16u8).map(|j| ((j + 1) & 0x0F) | ((15 - j) << 4)));
        let mut out = [0f32; 32];
        dequantize_row(&block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], 0.5 * ((j as f32 + 1.0) % 16.0) - 1.0, "value {j}");
            assert_eq!(out[16 + j], 0.5 * (15.0 - j as f32) - 1.0, "value {}", 16 + j);
        }
    }
}
