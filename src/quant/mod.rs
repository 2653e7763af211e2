//! GGUF block-quantized weights used in place: `y = x · Wᵀ` where `W`'s
//! rows are the GGUF's own blocks, bytes unchanged, read from the mapped
//! weight file. Nothing is unpacked or prepacked at load, so the weights
//! cost their file size once (in the page cache) and nothing in the heap.
//!
//! The arithmetic is float32 over the exact weight values: each block's
//! codes are turned into floats in registers and multiplied with the float
//! activations, so the result equals `x · dequantize(W)ᵀ` up to float
//! summation order. (llama.cpp and ONNX Runtime's int8 path quantize the
//! activations to 8 bits instead, which costs agreement with the float
//! model; see `exporters/gguf/blocks.py` for the same formats in Python.)
//!
//! One module per block type holds its layout, a row dequantizer and the
//! one-row dot kernels; [`matmul`] picks the decode path (one activation row,
//! fused dot) or the prefill path (rows dequantized into a float tile, then
//! [`tile`]'s register-blocked product).

pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q6_k;
pub mod q8_0;
pub mod tile;

use std::fmt;
use std::str::FromStr;

/// Activations are summed per block of this many elements (every type's
/// block length is a multiple of it) for the types whose blocks carry a
/// minimum (`value = d·q + m`): `Σ m·x` is `m · Σ x`.
pub const SUM_BLOCK: usize = 32;

/// The GGUF block types with kernels here (named as GGUF names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum BlockType {
    /// 32 values: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit codes; `d·q + m`.
    Q4_1,
    /// 32 values: f16 scale `d`, 32 int8 codes; `d·q`.
    Q8_0,
    /// 32 values: f16 scale `d`, 5-bit codes; `d·(q − 16)`.
    Q5_0,
    /// 256 values: f16 `d`, `dmin`, 6-bit scales and minimums per 32, 4-bit codes; `d·sc·q − dmin·m`.
    Q4_K,
    /// 256 values: 6-bit codes, int8 scales per 16, f16 `d`; `d·sc·(q − 32)`.
    Q6_K,
}

/// Every type with kernels, in the order errors list them.
pub const BLOCK_TYPES: [BlockType; 5] = [BlockType::Q4_1, BlockType::Q8_0, BlockType::Q5_0, BlockType::Q4_K, BlockType::Q6_K];

impl BlockType {
    /// Values per block.
    pub fn block_len(self) -> usize {
        match self {
            BlockType::Q4_1 | BlockType::Q8_0 | BlockType::Q5_0 => 32,
            BlockType::Q4_K | BlockType::Q6_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockType::Q4_1 => q4_1::BLOCK_BYTES,
            BlockType::Q8_0 => q8_0::BLOCK_BYTES,
            BlockType::Q5_0 => q5_0::BLOCK_BYTES,
            BlockType::Q4_K => q4_k::BLOCK_BYTES,
            BlockType::Q6_K => q6_k::BLOCK_BYTES,
        }
    }

    /// Byte offsets of a block's float16 fields (scales, minimums).
    pub fn half_fields(self) -> &'static [usize] {
        match self {
            BlockType::Q4_1 | BlockType::Q4_K => &[0, 2],
            BlockType::Q8_0 | BlockType::Q5_0 => &[0],
            BlockType::Q6_K => &[208],
        }
    }

    /// Bytes of one row of `k` values, or `None` when `k` is not a whole
    /// number of blocks.
    pub fn row_bytes(self, k: usize) -> Option<usize> {
        (k > 0 && k % self.block_len() == 0).then(|| k / self.block_len() * self.block_bytes())
    }

    /// Whether the dot kernels need the activations' per-block sums.
    fn needs_sums(self) -> bool {
        matches!(self, BlockType::Q4_1 | BlockType::Q4_K)
    }

    /// `out[r] = row r · x` for the rows held by `w` (`out.len()` rows).
    fn dot_rows(self, w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
        match self {
            BlockType::Q4_1 => q4_1::dot_rows(w, x, sums, out),
            BlockType::Q8_0 => q8_0::dot_rows(w, x, out),
            BlockType::Q5_0 => q5_0::dot_rows(w, x, sums, out),
            BlockType::Q4_K => q4_k::dot_rows(w, x, sums, out),
            BlockType::Q6_K => q6_k::dot_rows(w, x, sums, out),
        }
    }

    /// One row's values as float32 (`out.len()` values).
    fn dequantize_row(self, w: &[u8], out: &mut [f32]) {
        match self {
            BlockType::Q4_1 => q4_1::dequantize_row(w, out),
            BlockType::Q8_0 => q8_0::dequantize_row(w, out),
            BlockType::Q5_0 => q5_0::dequantize_row(w, out),
            BlockType::Q4_K => q4_k::dequantize_row(w, out),
            BlockType::Q6_K => q6_k::dequantize_row(w, out),
        }
    }
}

impl FromStr for BlockType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        BLOCK_TYPES.into_iter().find(|t| t.to_string() == lower).ok_or_else(|| {
            let names: Vec<String> = BLOCK_TYPES.iter().map(|t| t.to_string()).collect();
            format!("block type {lower:?} has no kernel (supported: {})", names.join(", "))
        })
    }
}

impl fmt::Display for BlockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockType::Q4_1 => "q4_1",
            BlockType::Q8_0 => "q8_0",
            BlockType::Q5_0 => "q5_0",
            BlockType::Q4_K => "q4_k",
            BlockType::Q6_K => "q6_k",
        })
    }
}

/// A weight `W [n, k]` as GGUF blocks, row-major (`n` rows of
/// `row_bytes(k)` bytes), checked once.
#[derive(Debug, Clone, Copy)]
pub struct BlockMatrix<'a> {
    pub kind: BlockType,
    pub bytes: &'a [u8],
    pub n: usize,
    pub k: usize,
}

impl<'a> BlockMatrix<'a> {
    /// `bytes` must hold exactly `n` rows of `k` values of `kind`.
    pub fn new(kind: BlockType, bytes: &'a [u8], n: usize, k: usize) -> Result<Self, String> {
        let row = kind.row_bytes(k).ok_or_else(|| format!("K = {k} is not a positive multiple of the {kind} block ({})", kind.block_len()))?;
        if n == 0 || n.checked_mul(row) != Some(bytes.len()) {
            return Err(format!("{} bytes of weights do not hold N = {n} rows of {row} bytes ({kind}, K = {k})", bytes.len()));
        }
        Ok(BlockMatrix { kind, bytes, n, k })
    }

    fn row_bytes(&self) -> usize {
        self.bytes.len() / self.n
    }

    /// The bytes of rows `rows`.
    fn rows(&self, rows: std::ops::Range<usize>) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.bytes[rows.start * rb..rows.end * rb]
    }
}

/// Scratch reused across calls (per kernel instance).
#[derive(Debug, Default)]
pub struct Scratch {
    sums: Vec<f32>,
}

/// How far ahead of the block being read the kernels ask for the weights
/// (x86 prefetch): a step streams them all from memory once, and without
/// it one core read only ~5.5 GB/s here. SmolLM2's 30 layers, one core:
/// 12.5 → 6.9 ms a step at 4 KiB; 0.5 KiB gained little, 16 KiB lost some.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 4096;

/// Rows of `W` a parallel task takes; a multiple of the tile height.
const ROWS_PER_TASK: usize = 64;

/// `y [m, n] = x [m, k] · Wᵀ`. `parallel(tasks, f)` runs `f(0..tasks)`,
/// possibly on several threads (ONNX Runtime's pool in the operator); each
/// task writes its own columns of `y`. Returns what `parallel` returns.
pub fn matmul<R>(w: &BlockMatrix, x: &[f32], y: &mut [f32], scratch: &mut Scratch, parallel: impl FnOnce(usize, &(dyn Fn(usize) + Sync)) -> R) -> R {
    let (n, k) = (w.n, w.k);
    assert!(x.len() % k == 0 && y.len() == x.len() / k * n, "matmul: x and y do not fit K = {k}, N = {n}");
    let m = x.len() / k;
    // only the fused one-row kernels read the sums; the tile path dequantizes the minimums
    if m == 1 && w.kind.needs_sums() {
        block_sums(x, &mut scratch.sums);
    }
    let sums = scratch.sums.as_slice();
    let out = SharedOut(y.as_mut_ptr());
    let tasks = n.div_ceil(ROWS_PER_TASK);
    let task = |t: usize| {
        let rows = t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n);
        if m == 1 {
            // SAFETY: tasks take disjoint row ranges, so disjoint elements of row 0 of y.
            let out = unsafe { out.columns(0, n, rows.clone()) };
            w.kind.dot_rows(w.rows(rows), x, sums, out);
        } else {
            tile::matmul_rows(w, rows, x, m, |r, c, v| {
                // SAFETY: as above, columns `rows` of every row of y are this task's alone.
                unsafe { out.write(r * n + c, v) }
            });
        }
    };
    parallel(tasks, &task)
}

/// Per-[`SUM_BLOCK`] sums of every activation row (`x.len() / 32` of them).
pub(crate) fn block_sums(x: &[f32], sums: &mut Vec<f32>) {
    sums.clear();
    sums.extend(x.chunks_exact(SUM_BLOCK).map(|b| b.iter().sum::<f32>()));
}

/// `y`'s base pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: only used to write disjoint elements from the tasks of one `matmul` call.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Elements `cols` of row `row` (rows of `n`).
    unsafe fn columns<'a>(&self, row: usize, n: usize, cols: std::ops::Range<usize>) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(row * n + cols.start), cols.len())
    }

    unsafe fn write(&self, at: usize, v: f32) {
        *self.0.add(at) = v;
    }
}

#[inline(always)]
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// A float16's bits as f32 (scales and minimums are stored as IEEE halves),
/// in plain integer and float operations, so it inlines into every kernel
/// on any target: the exponent and
/// mantissa shifted into f32's places read as a number 2^112 too small
/// (subnormals included, exactly); infinities and NaNs keep their class.
#[inline(always)]
fn half_to_f32(bits: u16) -> f32 {
    let magnitude = (bits & 0x7FFF) as u32;
    let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000); // 2^112
    let value = if magnitude >= 0x7C00 { f32::from_bits(magnitude << 13 | 0x7F80_0000) } else { scaled };
    f32::from_bits(value.to_bits() | ((bits & 0x8000) as u32) << 16)
}

/// `a·b + c`, fused where the instruction set has FMA (`f32::mul_add`
/// without it is a library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Asks for the weights [`PREFETCH`] bytes ahead of `at` (x86; a no-op elsewhere).
#[inline(always)]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH) as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// `pub fn $name(w, x, sums, out)` over the widest kernel the CPU has,
/// picked once: the hand-written AVX-512 one (x86-64 only: `$dots`, the
/// dot products of `R` rows at once, run two rows at a time over blocks of
/// `$block_bytes` bytes and `$qk` values), else the `#[inline(always)]`
/// lane-wise kernel `$lanes::<FMA>` compiled for AVX2 + FMA, else for the
/// target's baseline (NEON with FMA on aarch64). The lane-wise kernels work
/// on fixed arrays of 16 lanes with no cross-lane dependence, so the compiler
/// maps them onto the vectors each instruction set has with no intrinsics
/// per type; they are the reference the AVX-512 ones are tested against.
/// `kernels()` lists every variant this CPU can run (tests, benches).
macro_rules! per_isa {
    ($name:ident, $lanes:ident, $dots:path, $block_bytes:expr, $qk:expr) => {
        pub fn $name(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
            static WIDEST: std::sync::OnceLock<fn(&[u8], &[f32], &[f32], &mut [f32])> = std::sync::OnceLock::new();
            let kernel = WIDEST.get_or_init(|| kernels().next().expect("the baseline kernel is always there").1);
            kernel(w, x, sums, out)
        }

        /// Every kernel this CPU can run, widest first.
        pub fn kernels() -> impl Iterator<Item = (&'static str, fn(&[u8], &[f32], &[f32], &mut [f32]))> {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma,f16c")]
            unsafe fn avx512(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
                let nb = x.len() / $qk;
                $crate::quant::by_pairs!(out, w.as_ptr(), nb * $block_bytes, |rows| $dots(rows, x.as_ptr(), sums, nb));
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
                $lanes::<true>(w, x, sums, out)
            }
            fn baseline(w: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
                $lanes::<{ cfg!(target_arch = "aarch64") }>(w, x, sums, out)
            }
            let mut found: Vec<(&'static str, fn(&[u8], &[f32], &[f32], &mut [f32]))> = Vec::with_capacity(3);
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx2") && has!("fma") && has!("f16c") {
                    // SAFETY: the features it was compiled for are present.
                    found.push(("avx512", |w, x, s, o| unsafe { avx512(w, x, s, o) }));
                }
                if has!("avx2") && has!("fma") {
                    // SAFETY: as above.
                    found.push(("avx2", |w, x, s, o| unsafe { avx2(w, x, s, o) }));
                }
            }
            found.push(("baseline", baseline));
            found.into_iter()
        }
    };
}
pub(crate) use per_isa;

/// `out[r] = kernel(rows)` two weight rows at a time (they share the
/// activation loads), the last odd row alone: `$rows` is bound to an array
/// of 2, then of 1, row pointers (`row_bytes` apart from `$base`), so the
/// kernel's row count is inferred from it.
#[cfg(target_arch = "x86_64")]
macro_rules! by_pairs {
    ($out:expr, $base:expr, $row_bytes:expr, |$rows:ident| $kernel:expr) => {{
        let (out, base, row_bytes): (&mut [f32], *const u8, usize) = ($out, $base, $row_bytes);
        let mut r = 0;
        while r + 2 <= out.len() {
            let $rows = [base.add(r * row_bytes), base.add((r + 1) * row_bytes)];
            out[r..r + 2].copy_from_slice(&$kernel);
            r += 2;
        }
        if r < out.len() {
            let $rows = [base.add(r * row_bytes)];
            out[r] = $kernel[0];
        }
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use by_pairs;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The float16 at `at` as f32.
    #[target_feature(enable = "f16c")]
    #[inline]
    pub unsafe fn half(at: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(at as *const u16) as i32)))
    }

    /// `table[i & 15]` for the 16 int32 lanes of `index` (`vpermps` reads only the low 4 bits,
    /// so a nibble needs no mask and codes become floats with no conversion instruction).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn lookup(index: __m512i, table: __m512) -> __m512 {
        _mm512_permutexvar_ps(index, table)
    }

    /// 16 bytes at `at` widened to int32 lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn bytes16(at: *const u8) -> __m512i {
        _mm512_cvtepu8_epi32(_mm_loadu_si128(at as *const __m128i))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic stream of bytes / floats for test weights.
    pub(crate) fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n).map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        }).collect()
    }

    /// Valid blocks: random codes with small finite f16 scales/minimums.
    pub(crate) fn blocks(kind: BlockType, n: usize, k: usize, seed: u64) -> Vec<u8> {
        let mut bytes = noise(seed, n * kind.row_bytes(k).unwrap());
        let halves = kind.half_fields();
        for (i, block) in bytes.chunks_exact_mut(kind.block_bytes()).enumerate() {
            for &at in halves {
                let v = half::f16::from_f32(((i * 7 + at) % 23) as f32 / 97.0 - 0.1);
                block[at..at + 2].copy_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        bytes
    }

    /// The product in f64 over the dequantized weights, and per element the
    /// float rounding error the kernels may make.
    pub(crate) fn reference(w: &BlockMatrix, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let m = x.len() / w.k;
        let mut row = vec![0f32; w.k];
        let (mut y, mut bound) = (vec![0f32; m * w.n], vec![0f32; m * w.n]);
        for c in 0..w.n {
            w.kind.dequantize_row(w.rows(c..c + 1), &mut row);
            for r in 0..m {
                let xr = &x[r * w.k..(r + 1) * w.k];
                y[r * w.n + c] = row.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32;
                let magnitude: f32 = row.iter().zip(xr).map(|(a, b)| (a * b).abs()).sum();
                bound[r * w.n + c] = 1e-5 * (1.0 + magnitude);
            }
        }
        (y, bound)
    }

    fn serial(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..tasks).for_each(f)
    }

    #[test]
    fn decode_and_prefill_paths_equal_the_dequantized_product() {
        for kind in BLOCK_TYPES {
            for (n, k, m) in [(1, 256, 1), (70, 512, 1), (130, 768, 1), (67, 256, 3), (129, 512, 9)] {
                let bytes = blocks(kind, n, k, (n * k + m) as u64);
                let w = BlockMatrix::new(kind, &bytes, n, k).unwrap();
                let x: Vec<f32> = noise(m as u64 + 11, m * k).iter().map(|&b| b as f32 / 64.0 - 2.0).collect();
                let mut y = vec![f32::NAN; m * n];
                matmul(&w, &x, &mut y, &mut Scratch::default(), serial);
                let (want, bound) = reference(&w, &x);
                for (i, ((a, b), e)) in y.iter().zip(want).zip(bound).enumerate() {
                    assert!((a - b).abs() <= e, "{kind} n {n} k {k} m {m} at {i}: {a} vs {b} (bound {e})");
                }
            }
        }
    }

    /// Every compiled variant of the lane-wise kernels this CPU runs (the dispatcher only
    /// picks the widest), against the f64 product over the dequantized rows.
    #[test]
    fn every_lane_kernel_variant_equals_the_dequantized_product() {
        type Kernel = fn(&[u8], &[f32], &[f32], &mut [f32]);
        for (kind, variants) in [
            (BlockType::Q5_0, q5_0::kernels().collect::<Vec<(&str, Kernel)>>()),
            (BlockType::Q4_K, q4_k::kernels().collect()),
            (BlockType::Q6_K, q6_k::kernels().collect()),
        ] {
            let (n, k) = (5, 512);
            let bytes = blocks(kind, n, k, 3);
            let w = BlockMatrix::new(kind, &bytes, n, k).unwrap();
            let x: Vec<f32> = noise(4, k).iter().map(|&b| b as f32 / 50.0 - 2.5).collect();
            let mut sums = Vec::new();
            block_sums(&x, &mut sums);
            let (want, bound) = reference(&w, &x);
            for (name, kernel) in variants {
                let mut out = vec![f32::NAN; n];
                kernel(&bytes, &x, &sums, &mut out);
                for (r, ((a, b), e)) in out.iter().zip(&want).zip(&bound).enumerate() {
                    assert!((a - b).abs() <= *e, "{kind} {name} row {r}: {a} vs {b} (bound {e})");
                }
            }
        }
    }

    /// The inlined float16 conversion against the `half` crate on every bit pattern.
    #[test]
    fn half_to_f32_matches_half_on_every_value() {
        for bits in 0..=u16::MAX {
            let (got, want) = (half_to_f32(bits), half::f16::from_bits(bits).to_f32());
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{bits:#06x}: {got} vs {want}");
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        assert!(BlockMatrix::new(BlockType::Q4_1, &[0; 40], 2, 32).is_ok());
        assert!(BlockMatrix::new(BlockType::Q4_1, &[0; 41], 2, 32).unwrap_err().contains("41 bytes"));
        assert!(BlockMatrix::new(BlockType::Q4_1, &[0; 40], 2, 48).unwrap_err().contains("multiple"));
        assert!(BlockMatrix::new(BlockType::Q8_0, &[], 0, 32).is_err());
        assert!("q5_k".parse::<BlockType>().unwrap_err().contains("no kernel"));
        assert_eq!("Q6_K".parse::<BlockType>(), Ok(BlockType::Q6_K));
        assert!(BlockMatrix::new(BlockType::Q4_K, &[0; 144], 1, 32).unwrap_err().contains("multiple"));
    }
}
