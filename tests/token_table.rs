//! The token table mmrt reads itself (`src/stages/token_table.rs`): a
//! GGUF Q8_0 embedding, planar on disk, used for the lookup and as the tied
//! output layer.
//!
//! * A table written here (odd sizes, extreme codes) gives the rows and the
//!   logits a straightforward float64 evaluation of the Q8_0 arithmetic
//!   written in this file gives (with the activations quantized per block of
//!   32, each block sum an exact integer), over every thread split.
//! * A file of the wrong size, a token id outside the table and a hidden state
//!   of the wrong width are clear errors; through the CLI, a manifest whose
//!   table does not fit its file or its graph fails cleanly, naming both.
//! * The real Gemma 3 bundle's table (when built) gives the same logits as
//!   that evaluation. Its rows equal gguf-py's dequantization of the GGUF's
//!   `token_embd` exactly (checked by the exporter as it writes the table,
//!   `exporters/gguf/table.py`); end to end, `tests/gemma3_real.rs` and
//!   `tests/gguf_real.rs` check the bundles that use it against
//!   transformers-verified float32 bundles.

mod common;

use std::path::Path;

use mmrt::manifest::{TokenTableFormat, TokenTableSpec};
use mmrt::stages::token_table::TokenTable;

const BLOCK: usize = 32;

fn lcg(seed: &mut u64) -> u32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 33) as u32
}

struct Table {
    codes: Vec<u8>,
    scales: Vec<u16>,
    vocab: usize,
    width: usize,
}

impl Table {
    fn random(vocab: usize, width: usize, seed: u64) -> Self {
        let mut s = seed;
        let mut codes: Vec<u8> = (0..vocab * width).map(|_| lcg(&mut s) as u8).collect();
        codes[0] = 0; // int8 -128
        codes[1] = 255; // int8 127
        let scales = (0..vocab * width / BLOCK).map(|_| half::f16::from_f32(1e-3 + (lcg(&mut s) % 4000) as f32 * 1e-5).to_bits()).collect();
        Self { codes, scales, vocab, width }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.codes.clone();
        out.extend(self.scales.iter().flat_map(|s| s.to_le_bytes()));
        out
    }

    fn spec(&self, file: &str, scale: f32) -> TokenTableSpec {
        TokenTableSpec { file: file.into(), format: TokenTableFormat::Q8_0, vocab: self.vocab, width: self.width, scale }
    }

    fn value(&self, row: usize, i: usize) -> f64 {
        half::f16::from_bits(self.scales[row * self.width / BLOCK + i / BLOCK]).to_f64() * (self.codes[row * self.width + i] as f64 - 128.0)
    }

    /// The Q8_0 output layer in float64: activations per block of 32 scaled
    /// by max|x| / 127 and rounded half to even, integer block sums.
    fn logits(&self, x: &[f32]) -> Vec<f64> {
        let blocks: Vec<(f32, Vec<i64>)> = x
            .chunks(BLOCK)
            .map(|b| {
                let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                let q = b.iter().map(|v| if d > 0.0 { (v / d).round_ties_even() as i64 } else { 0 }).collect();
                (d, q)
            })
            .collect();
        (0..self.vocab)
            .map(|r| {
                blocks
                    .iter()
                    .enumerate()
                    .map(|(b, (d, q))| {
                        let sum: i64 = q.iter().enumerate().map(|(i, q)| (self.codes[r * self.width + b * BLOCK + i] as i64 - 128) * q).sum();
                        half::f16::from_bits(self.scales[r * self.width / BLOCK + b]).to_f64() * *d as f64 * sum as f64
                    })
                    .sum()
            })
            .collect()
    }
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-5 * scale, "{what}: row {r}: {g} vs {w}");
    }
}

#[test]
fn logits_and_rows_match_the_q8_0_arithmetic_over_every_thread_split() {
    // 10,007 rows (prime: uneven splits), width 96 (three blocks: the kernels' single-block tail)
    let t = Table::random(10_007, 96, 11);
    let path = common::temp_file("table.bin", &t.bytes());
    let mut s = 5;
    let x: Vec<f32> = (0..t.width).map(|_| (lcg(&mut s) % 20001) as f32 / 1000.0 - 10.0).collect();
    let want = t.logits(&x);
    for threads in [1, 2, 3, 8] {
        let mut table = TokenTable::open(&path, Path::new("bundle.json"), &t.spec("table.bin", 1.0), threads).expect("open");
        let mut got = Vec::new();
        table.logits(&x, &mut got).expect("logits");
        assert_close(&got, &want, &format!("{threads} threads"));
    }
    let table = TokenTable::open(&path, Path::new("bundle.json"), &t.spec("table.bin", 2.5), 1).expect("open");
    let mut rows = Vec::new();
    table.embed(&[0, 10_006, 17], &mut rows).expect("embed");
    for (k, id) in [0usize, 10_006, 17].into_iter().enumerate() {
        for i in 0..t.width {
            assert_eq!(rows[k * t.width + i] as f64, t.value(id, i) * 2.5, "row {id} value {i}");
        }
    }
}

#[test]
fn bad_files_ids_and_widths_are_clear_errors() {
    let t = Table::random(64, 64, 3);
    let mut bytes = t.bytes();
    bytes.pop();
    let short = common::temp_file("short.bin", &bytes);
    let err = TokenTable::open(&short, Path::new("bundle.json"), &t.spec("short.bin", 1.0), 1).err().expect("a short file is refused").to_string();
    assert!(err.contains("bundle.json") && err.contains("short.bin") && err.contains("needs exactly"), "{err}");

    let path = common::temp_file("table.bin", &t.bytes());
    let mut wide = t.spec("table.bin", 1.0);
    wide.width = 48;
    let err = TokenTable::open(&path, Path::new("bundle.json"), &wide, 1).err().expect("a width not a multiple of 32 is refused").to_string();
    assert!(err.contains("multiple of 32"), "{err}");

    let mut table = TokenTable::open(&path, Path::new("bundle.json"), &t.spec("table.bin", 1.0), 1).expect("open");
    let err = table.embed(&[64], &mut Vec::new()).expect_err("id 64 is outside 64 rows").to_string();
    assert!(err.contains("64"), "{err}");
    let err = table.logits(&[0.5; 32], &mut Vec::new()).expect_err("wrong width").to_string();
    assert!(err.contains("64") && err.contains("32"), "{err}");
}

#[test]
fn gemma3_table_logits_match_the_q8_0_arithmetic() {
    let Some(q4) = common::bundles::gemma3("gemma3-270m-q4-text") else { return };
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(q4.join("bundle.json")).unwrap()).unwrap();
    let spec: TokenTableSpec = serde_json::from_value(manifest["stages"][0]["token_table"].clone()).expect("the q4 bundle has a token table");
    let bytes = std::fs::read(q4.join(&spec.file)).unwrap();
    let (vocab, width) = (spec.vocab, spec.width);
    let t = Table {
        codes: bytes[..vocab * width].to_vec(),
        scales: bytes[vocab * width..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
        vocab,
        width,
    };
    let mut s = 9;
    let x: Vec<f32> = (0..width).map(|_| ((lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0) * 3.0).collect();
    let mut table = TokenTable::open(&q4.join(&spec.file), Path::new("bundle.json"), &spec, 2).expect("open");
    let mut got = Vec::new();
    table.logits(&x, &mut got).expect("logits");
    assert_close(&got, &t.logits(&x), "gemma3 table");
}

/// A manifest whose `token_table` disagrees with its file or its graph fails
/// cleanly through the CLI (SmolLM2's bundle, which has a token table).
#[test]
fn a_table_that_does_not_fit_its_manifest_is_a_clean_cli_error() {
    let Some(src) = common::bundles::gguf("smollm2-135m-text", true) else { return };
    type Edit = fn(&mut serde_json::Map<String, serde_json::Value>);
    let cases: [(&str, Edit, &[&str]); 2] = [
        ("vocab", |d| d["token_table"]["vocab"] = 1000.into(), &["bundle.json", "token_table \"token_table.bin\"", "needs exactly"]),
        // the same file size (49152 x 576 = 55296 x 512), so only the graph's width can tell
        ("width", |d| { d["token_table"]["width"] = 512.into(); d["token_table"]["vocab"] = 55296.into() }, &["inputs_embeds", "the token table's width"]),
    ];
    for (what, edit, needles) in cases {
        let dir = common::target_tmp("token_table", what);
        common::bundles::copy_bundle(&src, &dir);
        common::bundles::edit_manifest(&dir, |json| edit(common::bundles::stage_mut(json, "kind", "llm_decoder")));
        let out = common::cli::run_bundle(&dir, "Hello", &[], &["--max-tokens", "2"]);
        let problems = common::cli::failure_problems(&out, needles);
        assert!(problems.is_empty(), "{what}: {problems:?}\n{}", out.stderr);
    }
}
