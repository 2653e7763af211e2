//! GGUF Q6_K (`block_q6_K`): 256 values in 210 bytes: 128 bytes of low
//! nibbles `ql`, 64 bytes of high bit pairs `qh`, sixteen int8 scales (one
//! per 16 values), then `f16 d`. Value = `d·sc·(q − 32)`, q 6 bits.
//!
//! Each half of 128 values uses 64 bytes of `ql` and 32 of `qh`: value
//! `32g + l` of the half (quarter g, l < 32) has its low nibble in the low
//! (g = 0, 1) or high (g = 2, 3) half of `ql[l + 32·(g % 2)]`, and its two
//! high bits in bits `2g, 2g + 1` of `qh[l]`.

use super::{half_to_f32, le16, madd, prefetch};

pub const BLOCK_BYTES: usize = 210;
pub const QK: usize = 256;

/// Codes `q − 32` of values `32g + l0 .. 32g + l0 + 16` of half `h`, for the four quarters g.
#[inline(always)]
fn codes16(block: &[u8; BLOCK_BYTES], h: usize, l0: usize) -> [[i32; 16]; 4] {
    let (ql, qh) = (&block[64 * h..64 * h + 64], &block[128 + 32 * h..160 + 32 * h]);
    let mut q = [[0i32; 16]; 4];
    for j in 0..16 {
        let l = l0 + j;
        let (a, b, c) = (ql[l] as i32, ql[l + 32] as i32, qh[l] as i32);
        q[0][j] = ((a & 0x0F) | (c & 3) << 4) - 32;
        q[1][j] = ((b & 0x0F) | (c >> 2 & 3) << 4) - 32;
        q[2][j] = ((a >> 4) | (c >> 4 & 3) << 4) - 32;
        q[3][j] = ((b >> 4) | (c >> 6 & 3) << 4) - 32;
    }
    q
}

/// `d·sc` of the 16 values starting at `32g + l0` of half `h`.
#[inline(always)]
fn scale(block: &[u8; BLOCK_BYTES], d: f32, h: usize, g: usize, l0: usize) -> f32 {
    d * block[192 + 8 * h + 2 * g + l0 / 16] as i8 as f32
}

pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
    for (block, o) in w.as_chunks::<BLOCK_BYTES>().0.iter().zip(out.chunks_exact_mut(QK)) {
        let d = half_to_f32(le16(block, 208));
        for h in 0..2 {
            for l0 in [0, 16] {
                for (g, q) in codes16(block, h, l0).iter().enumerate() {
                    let s = scale(block, d, h, g, l0);
                    for (j, &q) in q.iter().enumerate() {
                        o[128 * h + 32 * g + l0 + j] = s * q as f32;
                    }
                }
            }
        }
    }
}

/// `out[r] = row r · x`, lane by lane (see [`super::per_isa`]); `_sums` unused (no minimums).
#[inline(always)]
fn rows_lanes<const FMA: bool>(w: &[u8], x: &[f32], _sums: &[f32], out: &mut [f32]) {
    let xs = x.as_chunks::<QK>().0;
    let row_bytes = xs.len() * BLOCK_BYTES;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut acc = [0f32; 16];
        for (block, xb) in row.as_chunks::<BLOCK_BYTES>().0.iter().zip(xs) {
            prefetch(block.as_ptr());
            let d = half_to_f32(le16(block, 208));
            for h in 0..2 {
                for l0 in [0, 16] {
                    for (g, q) in codes16(block, h, l0).iter().enumerate() {
                        let xq = &xb[128 * h + 32 * g + l0..128 * h + 32 * g + l0 + 16];
                        let mut t = [0f32; 16];
                        for j in 0..16 {
                            t[j] = q[j] as f32 * xq[j];
                        }
                        let s = scale(block, d, h, g, l0);
                        for j in 0..16 {
                            acc[j] = madd::<FMA>(s, t[j], acc[j]);
                        }
                    }
                }
            }
        }
        *o = acc.iter().sum();
    }
}

super::per_isa!(dot_rows, rows_lanes, x86::dots, BLOCK_BYTES, QK);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::x86::{bytes16, half, lookup};
    use super::super::PREFETCH;
    use super::{BLOCK_BYTES, QK};

    /// AVX-512: a code `q − 32` is two lookups added, its low nibble's value (0..15) and its high
    /// bit pair's (16·hb − 32), both indexed by shifted bytes since `vpermps` reads only the low 4
    /// bits of an index (the high-pair table repeats every 4 entries).
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    #[inline]
    pub unsafe fn dots<const R: usize>(rows: [*const u8; R], x: *const f32, _sums: &[f32], nb: usize) -> [f32; R] {
        let nibbles = _mm512_setr_ps(0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.);
        let highs = _mm512_setr_ps(-32., -16., 0., 16., -32., -16., 0., 16., -32., -16., 0., 16., -32., -16., 0., 16.);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let mut scales = [[0f32; 16]; R];
            for r in 0..R {
                let block = rows[r].add(b * BLOCK_BYTES);
                let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(block.add(192) as *const __m128i)));
                _mm512_storeu_ps(scales[r].as_mut_ptr(), _mm512_mul_ps(sc, _mm512_set1_ps(half(block.add(208)))));
            }
            for h in 0..2 {
                for l0 in [0, 16] {
                    let xq = x.add(b * QK + 128 * h + l0);
                    let xs = [0, 32, 64, 96].map(|at| _mm512_loadu_ps(xq.add(at)));
                    for r in 0..R {
                        let block = rows[r].add(b * BLOCK_BYTES);
                        let (ql, qh) = (block.add(64 * h + l0), block.add(128 + 32 * h + l0));
                        _mm_prefetch::<_MM_HINT_T0>(ql.wrapping_add(PREFETCH) as *const i8);
                        let (a, c, e) = (bytes16(ql), bytes16(ql.add(32)), bytes16(qh));
                        let quarters = [
                            (a, e),
                            (c, _mm512_srli_epi32(e, 2)),
                            (_mm512_srli_epi32(a, 4), _mm512_srli_epi32(e, 4)),
                            (_mm512_srli_epi32(c, 4), _mm512_srli_epi32(e, 6)),
                        ];
                        for (g, (low, high)) in quarters.into_iter().enumerate() {
                            let q = _mm512_add_ps(lookup(low, nibbles), lookup(high, highs));
                            let s = scales[r][8 * h + 2 * g + l0 / 16];
                            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(s), _mm512_mul_ps(q, xs[g]), acc[r]);
                        }
                    }
                }
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `block_q6_K`, written out by hand: d = 0.5, scale i = i − 8; value v = 128h + 32g + l
    /// has code (v·7) % 64, stored as described in the module docs.
    #[test]
    fn dequantizes_ggml_block_q6_k() {
        let code = |v: usize| ((v * 7) % 64) as u8;
        let mut block = [0u8; BLOCK_BYTES];
        for h in 0..2 {
            for g in 0..4 {
                for l in 0..32 {
                    let q = code(128 * h + 32 * g + l);
                    let at = 64 * h + l + 32 * (g % 2);
                    block[at] |= if g < 2 { q & 0x0F } else { (q & 0x0F) << 4 };
                    block[128 + 32 * h + l] |= (q >> 4) << (2 * g);
                }
            }
        }
        for i in 0..16 {
            block[192 + i] = (i as i8 - 8) as u8;
        }
        block[208..210].copy_from_slice(&[0x00, 0x38]); // f16 0.5
        let mut out = [0f32; 256];
        dequantize_row(&block, &mut out);
        for (v, got) in out.iter().enumerate() {
            assert_eq!(*got, 0.5 * ((v / 16) as f32 - 8.0) * (code(v) as f32 - 32.0), "value {v}");
        }
    }
}
