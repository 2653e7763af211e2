//! Several activation rows (prefill): a tile of weight rows is dequantized
//! to float32 once and then multiplied with every activation row, 4 × 4
//! dot products at a time so each load feeds four multiply-adds.

use std::ops::Range;

use super::BlockMatrix;

/// Weight rows dequantized at a time (16 × K floats: 96 KiB at K = 1,536).
const TILE_ROWS: usize = 16;

/// `write(r, c, x_r · W_c)` for every activation row `r < m` and weight
/// row `c` in `rows`.
pub fn matmul_rows(w: &BlockMatrix, rows: Range<usize>, x: &[f32], m: usize, write: impl Fn(usize, usize, f32)) {
    let k = w.k;
    let mut tile = vec![0f32; TILE_ROWS * k];
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + TILE_ROWS).min(rows.end);
        for (c, dst) in (start..end).zip(tile.chunks_exact_mut(k)) {
            w.kind.dequantize_row(w.rows(c..c + 1), dst);
        }
        let tile = &tile[..(end - start) * k];
        products(tile, x, k, m, |r, t, v| write(r, start + t, v));
        start = end;
    }
}

/// `write(r, t, x_r · tile_t)` for all rows of `x` and `tile` (both `k` wide).
fn products(tile: &[f32], x: &[f32], k: usize, m: usize, write: impl Fn(usize, usize, f32)) {
    #[cfg(target_arch = "x86_64")]
    {
        if k % 16 == 0 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f detected; every load stays inside rows of k (a multiple of 16).
            return unsafe { x86::products_avx512(tile, x, k, m, write) };
        }
    }
    for r in 0..m {
        let xr = &x[r * k..(r + 1) * k];
        for (t, wr) in tile.chunks_exact(k).enumerate() {
            write(r, t, wr.iter().zip(xr).map(|(a, b)| a * b).sum());
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 4 activation rows × 4 weight rows per pass (16 accumulators); edges
    /// take the same loop with fewer rows.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn products_avx512(tile: &[f32], x: &[f32], k: usize, m: usize, write: impl Fn(usize, usize, f32)) {
        let n = tile.len() / k;
        let mut r = 0;
        while r < m {
            let rh = (m - r).min(4);
            let mut t = 0;
            while t < n {
                let th = (n - t).min(4);
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                let mut i = 0;
                while i < k {
                    let mut wv = [_mm512_setzero_ps(); 4];
                    for (j, v) in wv.iter_mut().enumerate().take(th) {
                        *v = _mm512_loadu_ps(tile.as_ptr().add((t + j) * k + i));
                    }
                    for a in 0..rh {
                        let xv = _mm512_loadu_ps(x.as_ptr().add((r + a) * k + i));
                        for j in 0..4 {
                            acc[a][j] = _mm512_fmadd_ps(xv, wv[j], acc[a][j]);
                        }
                    }
                    i += 16;
                }
                for a in 0..rh {
                    for j in 0..th {
                        write(r + a, t + j, _mm512_reduce_add_ps(acc[a][j]));
                    }
                }
                t += 4;
            }
            r += 4;
        }
    }
}
