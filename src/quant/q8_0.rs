//! GGUF Q8_0 (`block_q8_0`): 32 values in 34 bytes, `f16 d` then 32 int8
//! codes; value = `d·q`.

use super::{half_to_f32, le16};

pub const BLOCK_BYTES: usize = 34;
const QK: usize = 32;

pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
    for (block, o) in w.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = half_to_f32(le16(block, 0));
        for (o, &q) in o.iter_mut().zip(&block[2..]) {
            *o = d * q as i8 as f32;
        }
    }
}

/// `out[r] = row r · x` (`x.len()` = K).
pub fn dot_rows(w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = x.len() / QK * BLOCK_BYTES;
    assert!(w.len() == out.len() * row_bytes);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: features detected above; lengths asserted.
            return unsafe { x86::rows_avx512(w, x, out) };
        }
    }
    rows_portable(w, x, out)
}

fn rows_portable(w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = x.len() / QK * BLOCK_BYTES;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut acc = 0f32;
        for (block, xb) in row.chunks_exact(BLOCK_BYTES).zip(x.chunks_exact(QK)) {
            let dot: f32 = block[2..].iter().zip(xb).map(|(&q, &v)| q as i8 as f32 * v).sum();
            acc += half_to_f32(le16(block, 0)) * dot;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::x86::half;
    use super::super::PREFETCH;
    use super::{BLOCK_BYTES, QK};

    #[target_feature(enable = "avx512f,f16c,fma")]
    pub unsafe fn rows_avx512(w: &[u8], x: &[f32], out: &mut [f32]) {
        let nb = x.len() / QK;
        let row_bytes = nb * BLOCK_BYTES;
        for (r, o) in out.iter_mut().enumerate() {
            let row = w.as_ptr().add(r * row_bytes);
            let mut acc = _mm512_setzero_ps();
            for b in 0..nb {
                let block = row.add(b * BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(block.add(PREFETCH) as *const i8);
                let d = half(block);
                let q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(block.add(2) as *const __m128i)));
                let q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(block.add(18) as *const __m128i)));
                let xb = x.as_ptr().add(b * QK);
                let t = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb.add(16)), _mm512_mul_ps(q0, _mm512_loadu_ps(xb)));
                acc = _mm512_fmadd_ps(_mm512_set1_ps(d), t, acc);
            }
            *o = _mm512_reduce_add_ps(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::tests::{blocks, noise, reference};
    use crate::quant::{BlockMatrix, BlockType};

    /// The portable kernel (the AVX-512 one is what the dispatcher picks here and the
    /// module's product test covers) against the f64 product over the dequantized rows.
    #[test]
    fn portable_kernel_equals_the_dequantized_product() {
        let (n, k) = (3, 64);
        let w = blocks(BlockType::Q8_0, n, k, 5);
        let x: Vec<f32> = noise(9, k).iter().map(|&b| b as f32 / 50.0 - 2.5).collect();
        let mut out = vec![f32::NAN; n];
        rows_portable(&w, &x, &mut out);
        let (want, _) = reference(&BlockMatrix::new(BlockType::Q8_0, &w, n, k).unwrap(), &x);
        for (r, (o, want)) in out.iter().zip(want).enumerate() {
            assert!((o - want).abs() <= 1e-4 * (1.0 + want.abs()), "row {r}: {o} vs {want}");
        }
    }

    /// ggml's `block_q8_0`, written out by hand: d = -2, codes j − 16 as int8.
    #[test]
    fn dequantizes_ggml_block_q8_0() {
        let mut block = vec![0x00, 0xC0]; // f16 -2.0
        block.extend((0..32i8).map(|j| (j - 16) as u8));
        let mut out = [0f32; 32];
        dequantize_row(&block, &mut out);
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v, -2.0 * (j as f32 - 16.0), "value {j}");
        }
    }
}
