//! The token table of an LLM, mapped from the bundle and used in place for
//! both of its jobs: the embedding lookup (token id -> row) and, tied, the
//! output layer (hidden state -> one logit per row).
//!
//! Why outside ONNX Runtime: the table is most of a small model (Gemma 3
//! 270M: 168M of its 268M weights). As a MatMulNBits initializer, ONNX
//! Runtime prepacks it into a private copy at session creation: ~240 MiB
//! more resident, ~270 ms more start-up, and the mapped original and the copy
//! are both resident while it is built. Read in place, the file's pages are
//! the only copy (shared with the page cache), the lookup touches only the
//! rows asked for, and the GGUF Q8_0 bytes are read per token, with float16
//! scales as in the GGUF (see [`super::q8_dot`] for the arithmetic).
//!
//! File layout (`format: "q8_0"`): `codes [vocab, width]` u8 (int8 + 128),
//! then `scales [vocab, width / 32]` float16, little-endian; nothing else, so
//! the size is checked exactly against the manifest's `vocab` and `width`.

use std::path::Path;

use super::q8_dot::{self, QuantizedVector, BLOCK};
use crate::error::{Error, Result};
use crate::limits;
use crate::manifest::TokenTableSpec;

/// A mapped Q8_0 token table.
pub struct TokenTable {
    map: memmap2::Mmap,
    vocab: usize,
    width: usize,
    /// Multiplies looked-up rows (Gemma: sqrt(hidden)).
    scale: f32,
    /// Threads for the output layer (rows split evenly).
    threads: usize,
    /// The hidden state's quantized form, reused every step.
    quantized: QuantizedVector,
}

impl TokenTable {
    /// Map `path` and check it holds exactly what `spec` (from the manifest at `manifest`) declares.
    pub fn open(path: &Path, manifest: &Path, spec: &TokenTableSpec, threads: usize) -> Result<Self> {
        let bad = |why: String| Error::Manifest { path: manifest.to_path_buf(), message: format!("token_table \"{}\": {why}", spec.file) };
        if spec.width == 0 || spec.width % BLOCK != 0 || spec.width > limits::MAX_HIDDEN {
            return Err(bad(format!("width {} must be a positive multiple of {BLOCK} up to {} (limits::MAX_HIDDEN)", spec.width, limits::MAX_HIDDEN)));
        }
        if spec.vocab == 0 || spec.vocab > limits::MAX_VOCAB_SIZE {
            return Err(bad(format!("vocab {} must be in 1..={} (limits::MAX_VOCAB_SIZE)", spec.vocab, limits::MAX_VOCAB_SIZE)));
        }
        let expected = spec.vocab * spec.width + spec.vocab * (spec.width / BLOCK) * 2;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if size != expected as u64 {
            return Err(bad(format!("{size} bytes, but vocab {} x width {} in q8_0 needs exactly {expected}", spec.vocab, spec.width)));
        }
        // Not populated here: the pages come in with the first step, after the tokenizer's transient
        // parse memory is freed (populating during the load raised Gemma's peak RSS by ~40 MiB).
        // SAFETY: the bundle's files are read-only inputs; a file changed while mapped is outside the contract (as for ONNX Runtime's own mapping).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let scale = if spec.scale.is_finite() && spec.scale > 0.0 { spec.scale } else { return Err(bad(format!("scale {} must be a positive number", spec.scale))) };
        Ok(Self { map, vocab: spec.vocab, width: spec.width, scale, threads: threads.max(1), quantized: QuantizedVector::default() })
    }

    /// Rows in the table (the vocabulary size).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Row length (the model's hidden size).
    pub fn width(&self) -> usize {
        self.width
    }

    fn codes(&self) -> &[u8] {
        &self.map[..self.vocab * self.width]
    }

    fn scales(&self) -> &[u16] {
        let bytes = &self.map[self.vocab * self.width..];
        // The scales start at vocab * width, an even offset (width is a multiple of 32) of a page-aligned
        // map; the length is checked at open. Read as native u16: the file is little-endian, as every
        // target mmrt builds for (x86-64, AArch64) is.
        let (head, scales, tail) = unsafe { bytes.align_to::<u16>() };
        debug_assert!(head.is_empty() && tail.is_empty());
        scales
    }

    /// The rows of `ids`, dequantized and scaled, appended to `out` (`ids.len() * width` values).
    pub fn embed(&self, ids: &[u32], out: &mut Vec<f32>) -> Result<()> {
        let nb = self.width / BLOCK;
        let (codes, scales) = (self.codes(), self.scales());
        out.reserve(ids.len() * self.width);
        for &id in ids {
            let id = id as usize;
            if id >= self.vocab {
                return Err(Error::Request(format!("token id {id} is outside the token table's {} rows", self.vocab)));
            }
            let row = &codes[id * self.width..(id + 1) * self.width];
            for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                let s = half::f16::from_bits(scales[id * nb + b]).to_f32();
                out.extend(block.iter().map(|&c| s * (c as i32 - 128) as f32 * self.scale));
            }
        }
        Ok(())
    }

    /// One logit per table row for each hidden row: `hidden` holds `n * width`
    /// values (one row per batch entry), `logits` becomes `n * vocab`:
    /// `logits[k, r] = row_r · hidden_k` (`hidden_k` quantized per block, see [`q8_dot`]).
    pub fn logits(&mut self, hidden: &[f32], logits: &mut Vec<f32>) -> Result<()> {
        if hidden.is_empty() || hidden.len() % self.width != 0 {
            return Err(Error::Request(format!(
                "the output layer takes hidden rows of {} values (one per batch entry), got {} values",
                self.width,
                hidden.len()
            )));
        }
        logits.clear();
        logits.resize(hidden.len() / self.width * self.vocab, 0.0);
        for (row, out) in hidden.chunks_exact(self.width).zip(logits.chunks_mut(self.vocab)) {
            self.row_logits(row, out);
        }
        Ok(())
    }

    /// `out[r] = row_r · hidden` for one hidden row, the table's rows split over the threads.
    fn row_logits(&mut self, hidden: &[f32], out: &mut [f32]) {
        QuantizedVector::quantize(hidden, &mut self.quantized);
        let (codes, scales, x, width) = (self.codes(), self.scales(), &self.quantized, self.width);
        let nb = width / BLOCK;
        // At least 4,096 rows a thread: below that a spawn costs more than it saves.
        let threads = self.threads.min(self.vocab.div_ceil(4096)).max(1);
        let chunk = self.vocab.div_ceil(threads);
        std::thread::scope(|scope| {
            let mut parts = out.chunks_mut(chunk).enumerate();
            let first = parts.next();
            for (t, out) in parts {
                let rows = t * chunk..t * chunk + out.len();
                scope.spawn(move || q8_dot::dot_rows(&codes[rows.start * width..rows.end * width], &scales[rows.start * nb..rows.end * nb], x, out));
            }
            if let Some((_, out)) = first {
                q8_dot::dot_rows(&codes[..out.len() * width], &scales[..out.len() * nb], x, out);
            }
        });
    }
}

