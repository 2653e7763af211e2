//! GGUF Q5_0 (`block_q5_0`): 32 values in 22 bytes: `f16 d`, 4 bytes whose
//! bit j is the fifth bit of value j, then 16 bytes whose low nibbles are
//! values 0..16 and high nibbles values 16..32; value = `d·(q − 16)`.

use super::{half_to_f32, le16, madd, prefetch};

pub const BLOCK_BYTES: usize = 22;
const QK: usize = 32;

/// The 32 codes of a block, `q − 16` (−16..=15).
#[inline(always)]
fn codes(block: &[u8; BLOCK_BYTES]) -> [i32; QK] {
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let mut q = [0i32; QK];
    for j in 0..16 {
        let byte = block[6 + j] as u32;
        q[j] = ((byte & 0x0F) | ((qh >> j) & 1) << 4) as i32 - 16;
        q[j + 16] = ((byte >> 4) | ((qh >> (j + 16)) & 1) << 4) as i32 - 16;
    }
    q
}

pub fn dequantize_row(w: &[u8], out: &mut [f32]) {
    for (block, o) in w.as_chunks::<BLOCK_BYTES>().0.iter().zip(out.chunks_exact_mut(QK)) {
        let d = half_to_f32(le16(block, 0));
        for (o, q) in o.iter_mut().zip(codes(block)) {
            *o = d * q as f32;
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
            let d = half_to_f32(le16(block, 0));
            let q = codes(block);
            let mut t = [0f32; 16];
            for j in 0..16 {
                t[j] = madd::<FMA>(q[j + 16] as f32, xb[j + 16], q[j] as f32 * xb[j]);
            }
            for j in 0..16 {
                acc[j] = madd::<FMA>(d, t[j], acc[j]);
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

    /// AVX-512: a block's low nibbles index a table of `nibble − 16`, and the lanes whose fifth
    /// bit is set (a mask straight from the block's 32 bits) add 16.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    #[inline]
    pub unsafe fn dots<const R: usize>(rows: [*const u8; R], x: *const f32, _sums: &[f32], nb: usize) -> [f32; R] {
        let table = _mm512_setr_ps(-16., -15., -14., -13., -12., -11., -10., -9., -8., -7., -6., -5., -4., -3., -2., -1.);
        let sixteen = _mm512_set1_ps(16.0);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let (x0, x1) = (_mm512_loadu_ps(x.add(b * QK)), _mm512_loadu_ps(x.add(b * QK + 16)));
            for r in 0..R {
                let block = rows[r].add(b * BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH) as *const i8);
                let high = std::ptr::read_unaligned(block.add(2) as *const u32);
                let v = bytes16(block.add(6));
                let lo = lookup(v, table);
                let lo = _mm512_mask_add_ps(lo, high as u16, lo, sixteen);
                let hi = lookup(_mm512_srli_epi32(v, 4), table);
                let hi = _mm512_mask_add_ps(hi, (high >> 16) as u16, hi, sixteen);
                let t = _mm512_fmadd_ps(hi, x1, _mm512_mul_ps(lo, x0));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(half(block)), t, acc[r]);
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `block_q5_0`, written out by hand: d = 0.25; value j has low nibble j % 16 and fifth bit
    /// set for odd j, so its code is j % 16 + 16·(j odd) and its value 0.25·(code − 16).
    #[test]
    fn dequantizes_ggml_block_q5_0() {
        let mut block = vec![0x00, 0x34]; // f16 0.25
        block.extend(0xAAAA_AAAAu32.to_le_bytes()); // bit j set for odd j
        block.extend((0..16u8).map(|j| j | (15 - j) << 4)); // value 16 + j has low nibble 15 − j
        let mut out = [0f32; 32];
        dequantize_row(&block, &mut out);
        for j in 0..32 {
            let nibble = if j < 16 { j } else { 15 - (j - 16) } as f32;
            let code = nibble + if j % 2 == 1 { 16.0 } else { 0.0 };
            assert_eq!(out[j], 0.25 * (code - 16.0), "value {j}");
        }
    }
}
