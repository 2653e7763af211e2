//! GGUF Q4_K (`block_q4_K`): 256 values in 144 bytes: `f16 d`, `f16 dmin`,
//! 12 bytes packing eight 6-bit scales `sc` and eight 6-bit minimums `m`
//! (one each per 32 values), then 128 bytes of 4-bit codes in four groups
//! of 32 bytes: a group's low nibbles are one 32-value sub-block, its high
//! nibbles the next. Value = `d·sc_j·q − dmin·m_j`.
//!
//! Dot with a float row: `Σ_j d·sc_j · Σ q·x − dmin·m_j · Σx_j`, the last
//! sum being the caller's per-32 activation sum.

use super::{half_to_f32, le16, madd, prefetch, SUM_BLOCK};

pub const BLOCK_BYTES: usize = 144;
pub const QK: usize = 256;

/// The eight 6-bit scales and minimums of a super-block (ggml's `get_scale_min_k4`).
#[inline(always)]
fn scales_mins(block: &[u8; BLOCK_BYTES]) -> ([u8; 8], [u8; 8]) {
    let s = &block[4..16];
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0F) | (s[j] >> 6) << 4;
        mn[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
    }
    (sc, mn)
}

pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
    for (block, o) in w.as_chunks::<BLOCK_BYTES>().0.iter().zip(out.chunks_exact_mut(QK)) {
        let (d, dmin) = (half_to_f32(le16(block, 0)), half_to_f32(le16(block, 2)));
        let (sc, mn) = scales_mins(block);
        for g in 0..4 {
            let qs = &block[16 + 32 * g..48 + 32 * g];
            let (s0, m0) = (d * sc[2 * g] as f32, dmin * mn[2 * g] as f32);
            let (s1, m1) = (d * sc[2 * g + 1] as f32, dmin * mn[2 * g + 1] as f32);
            for (l, &q) in qs.iter().enumerate() {
                o[64 * g + l] = s0 * (q & 0x0F) as f32 - m0;
                o[64 * g + 32 + l] = s1 * (q >> 4) as f32 - m1;
            }
        }
    }
}

/// `out[r] = row r · x`, lane by lane (see [`super::per_isa`]); `sums` are x's per-32 sums.
#[inline(always)]
fn rows_lanes<const FMA: bool>(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    let xs = x.as_chunks::<QK>().0;
    let sums = sums.as_chunks::<{ QK / SUM_BLOCK }>().0;
    let row_bytes = xs.len() * BLOCK_BYTES;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut acc = [0f32; 16];
        let mut mins = 0f32;
        for ((block, xb), sb) in row.as_chunks::<BLOCK_BYTES>().0.iter().zip(xs).zip(sums) {
            prefetch(block.as_ptr());
            let (d, dmin) = (half_to_f32(le16(block, 0)), half_to_f32(le16(block, 2)));
            let (sc, mn) = scales_mins(block);
            let mut block_mins = 0f32;
            for g in 0..4 {
                let qs = &block[16 + 32 * g..48 + 32 * g];
                let x0 = &xb[64 * g..64 * g + 32];
                let x1 = &xb[64 * g + 32..64 * g + 64];
                let (mut t0, mut t1) = ([0f32; 16], [0f32; 16]);
                for j in 0..16 {
                    let (a, b) = (qs[j], qs[j + 16]);
                    t0[j] = madd::<FMA>((b & 0x0F) as f32, x0[j + 16], (a & 0x0F) as f32 * x0[j]);
                    t1[j] = madd::<FMA>((b >> 4) as f32, x1[j + 16], (a >> 4) as f32 * x1[j]);
                }
                let (s0, s1) = (d * sc[2 * g] as f32, d * sc[2 * g + 1] as f32);
                for j in 0..16 {
                    acc[j] = madd::<FMA>(s1, t1[j], madd::<FMA>(s0, t0[j], acc[j]));
                }
                block_mins += mn[2 * g] as f32 * sb[2 * g] + mn[2 * g + 1] as f32 * sb[2 * g + 1];
            }
            mins = madd::<FMA>(dmin, block_mins, mins);
        }
        *o = acc.iter().sum::<f32>() - mins;
    }
}

super::per_isa!(dot_rows, rows_lanes, x86::dots, BLOCK_BYTES, QK);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::x86::{bytes16, half, lookup};
    use super::super::{PREFETCH, SUM_BLOCK};
    use super::{scales_mins, BLOCK_BYTES, QK};

    /// AVX-512: each 32-byte group's nibbles become floats by a `vpermps` lookup; the scales
    /// and minimums are unpacked per super-block in scalar code (16 per 256 values).
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    #[inline]
    pub unsafe fn dots<const R: usize>(rows: [*const u8; R], x: *const f32, sums: &[f32], nb: usize) -> [f32; R] {
        let values = _mm512_setr_ps(0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in 0..nb {
            let sb = &sums[b * (QK / SUM_BLOCK)..(b + 1) * (QK / SUM_BLOCK)];
            let mut scales = [[0f32; 8]; R];
            for r in 0..R {
                let block = rows[r].add(b * BLOCK_BYTES);
                let (sc, mn) = scales_mins(&*(block as *const [u8; BLOCK_BYTES]));
                let d = half(block);
                scales[r] = sc.map(|s| d * s as f32);
                mins[r] += half(block.add(2)) * mn.iter().zip(sb).map(|(&m, &s)| m as f32 * s).sum::<f32>();
            }
            for g in 0..4 {
                let xg = x.add(b * QK + 64 * g);
                let xs = [0, 16, 32, 48].map(|at| _mm512_loadu_ps(xg.add(at)));
                for r in 0..R {
                    let codes = rows[r].add(b * BLOCK_BYTES + 16 + 32 * g);
                    _mm_prefetch::<_MM_HINT_T0>(codes.wrapping_add(PREFETCH) as *const i8);
                    let (v0, v1) = (bytes16(codes), bytes16(codes.add(16)));
                    let t0 = _mm512_fmadd_ps(lookup(v1, values), xs[1], _mm512_mul_ps(lookup(v0, values), xs[0]));
                    let t1 = _mm512_fmadd_ps(
                        lookup(_mm512_srli_epi32(v1, 4), values),
                        xs[3],
                        _mm512_mul_ps(lookup(_mm512_srli_epi32(v0, 4), values), xs[2]),
                    );
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(scales[r][2 * g]), t0, acc[r]);
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(scales[r][2 * g + 1]), t1, acc[r]);
                }
            }
        }
        std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) - mins[r])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `block_q4_K`, written out by hand: d = 0.5, dmin = 0.25; sub-block j has scale 8j + 1
    /// and minimum 2j + 3 (for j ≥ 4 the 6-bit values split into a low nibble in bytes 8..12 and two
    /// high bits in the top of bytes 0..8); code l of group g is (l + g) % 16 low, (l + 2g) % 16 high.
    #[test]
    fn dequantizes_ggml_block_q4_k() {
        let (sc, mn): ([u8; 8], [u8; 8]) = (std::array::from_fn(|j| 8 * j as u8 + 1), std::array::from_fn(|j| 2 * j as u8 + 3));
        let mut packed = [0u8; 12];
        for j in 0..4 {
            packed[j] = sc[j] | (sc[j + 4] >> 4) << 6;
            packed[j + 4] = mn[j] | (mn[j + 4] >> 4) << 6;
            packed[j + 8] = (sc[j + 4] & 0x0F) | (mn[j + 4] & 0x0F) << 4;
        }
        let mut block = vec![0x00, 0x38, 0x00, 0x34]; // f16 0.5, f16 0.25
        block.extend(packed);
        for g in 0..4 {
            block.extend((0..32).map(|l| ((l + g) % 16) as u8 | (((l + 2 * g) % 16) as u8) << 4));
        }
        let mut out = [0f32; 256];
        dequantize_row(&block, &mut out);
        for g in 0..4 {
            for l in 0..32 {
                let (lo, hi) = (((l + g) % 16) as f32, ((l + 2 * g) % 16) as f32);
                let (j0, j1) = (2 * g, 2 * g + 1);
                assert_eq!(out[64 * g + l], 0.5 * sc[j0] as f32 * lo - 0.25 * mn[j0] as f32, "group {g} low {l}");
                assert_eq!(out[64 * g + 32 + l], 0.5 * sc[j1] as f32 * hi - 0.25 * mn[j1] as f32, "group {g} high {l}");
            }
        }
    }
}
