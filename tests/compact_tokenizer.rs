//! mmrt's compact tokenizer (`tokenizer.bin`, written by
//! `exporters/common/compact_tokenizer.py`) against the `tokenizers` crate
//! reading the same bundle's `tokenizer.json`: the same ids for every text
//! (prose, code, chat markup, added tokens, byte fallback, random Unicode),
//! the same text for every id sequence, the same token lookups; and a
//! corrupt file is a clean error, never a panic or a misread.

mod common;

use mmrt::tokenizer::CompactTokenizer;
use tokenizers::Tokenizer;

/// The Gemma 3 bundle's two forms: (compact, crate reference).
fn gemma3_pair() -> Option<(CompactTokenizer, Tokenizer, std::path::PathBuf)> {
    let dir = common::bundles::gemma3("gemma3-270m-q4-text")?;
    let compact = CompactTokenizer::open(&dir.join("tokenizer.bin")).expect("compact tokenizer");
    let reference = Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer.json");
    Some((compact, reference, dir))
}

/// A deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that exercise every path: added tokens (special and not, whole and cut), whitespace runs,
/// the normalizer's own symbol, text that looks like a byte token, scripts, emoji, private-use and
/// control characters (byte fallback), combining marks.
const PIECES: &[&str] = &[
    "the", " the", "The", "  ", " ", "\n", "\n\n", "\t", "\t\t", "\r\n", "<start_of_turn>", "<end_of_turn>", "user\n", "model\n",
    "<start_of", "turn>", "<bos>", "<eos>", "<pad>", "<image_soft_token>", "<unused7>", "[multimodal]", "<0x41>", "<0x", "▁", "▁▁x",
    "hello", "world", "Hello, world!", "don't", "12345", "3.14159", "x = f(y) + 1;", "fn main() {}", "<div class=\"a\">", "&amp;",
    "日本語", "東京", "中文字符", "한국어", "русский", "ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย", "😀", "👩‍💻", "🇯🇵",
    "\u{e000}", "\u{10ffff}", "\u{0}", "\u{7}", "\u{1b}[0m", "e\u{301}", "ﬁ", "Ａ", "\u{200b}", "\u{feff}", "…", "—", "“quoted”",
];

fn random_text(rng: &mut Rng) -> String {
    let pieces = 1 + rng.below(12);
    let mut text = String::new();
    for _ in 0..pieces {
        if rng.below(5) == 0 {
            // a random scalar value from the BMP or beyond
            let c = loop {
                let v = if rng.below(4) == 0 { rng.below(0x11_0000) } else { rng.below(0x3000) } as u32;
                if let Some(c) = char::from_u32(v) {
                    break c;
                }
            };
            text.push(c);
        } else {
            text.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    text
}

/// Real prose and code: this repository's README and Rust sources, cut into lines and paragraphs.
fn repository_texts() -> Vec<String> {
    let root = common::root();
    let mut texts = Vec::new();
    for file in ["README.md", "src/tokenizer/bpe.rs", "src/chat.rs", "exporters/common/compact_tokenizer.py"] {
        let body = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        texts.extend(body.split("\n\n").map(str::to_string));
        texts.extend(body.lines().take(300).map(str::to_string));
        texts.push(body);
    }
    texts
}

fn reference_ids(reference: &Tokenizer, text: &str, add_special: bool) -> Vec<u32> {
    reference.encode(text, add_special).unwrap_or_else(|e| panic!("reference encode {text:?}: {e}")).get_ids().to_vec()
}

#[test]
fn gemma3_compact_encodes_as_the_tokenizers_crate_does() {
    let Some((compact, reference, _)) = gemma3_pair() else { return };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut texts = repository_texts();
    texts.extend((0..3000).map(|_| random_text(&mut rng)));
    texts.extend(PIECES.iter().map(|p| p.to_string()));
    texts.push(String::new());
    for (i, text) in texts.iter().enumerate() {
        let add_special = i % 2 == 0;
        let want = reference_ids(&reference, text, add_special);
        let got = compact.encode(text, add_special);
        assert_eq!(got, want, "text #{i} {text:?} (add_special {add_special})");
    }
}

#[test]
fn gemma3_compact_decodes_as_the_tokenizers_crate_does() {
    let Some((compact, reference, _)) = gemma3_pair() else { return };
    let vocab = reference.get_vocab_size(true) as u32;
    assert_eq!(compact.vocab_size(), vocab as usize);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let byte_tokens: Vec<u32> = (0..=255u8).map(|b| reference.token_to_id(&format!("<0x{b:02X}>")).expect("byte token")).collect();
    let mut sequences: Vec<Vec<u32>> = repository_texts().iter().map(|t| reference_ids(&reference, t, true)).collect();
    for _ in 0..2000 {
        let len = rng.below(24);
        sequences.push(
            (0..len)
                .map(|_| match rng.below(6) {
                    // runs of byte tokens: valid UTF-8 pieces and invalid ones
                    0 | 1 => byte_tokens[rng.below(256)],
                    // special and added tokens live at the low and high ends of Gemma's vocabulary
                    2 => rng.below(300) as u32,
                    // ids beyond the vocabulary are dropped by both
                    3 if rng.below(8) == 0 => vocab + rng.below(10) as u32,
                    _ => rng.below(vocab as usize) as u32,
                })
                .collect(),
        );
    }
    for (i, ids) in sequences.iter().enumerate() {
        for skip_special in [true, false] {
            let want = reference.decode(ids, skip_special).unwrap_or_else(|e| panic!("reference decode {ids:?}: {e}"));
            assert_eq!(compact.decode(ids, skip_special), want, "sequence #{i} {ids:?} (skip_special {skip_special})");
        }
    }
}

#[test]
fn gemma3_compact_looks_tokens_up_as_the_tokenizers_crate_does() {
    let Some((compact, reference, _)) = gemma3_pair() else { return };
    for id in (0..compact.vocab_size() as u32).step_by(61).chain([0, 1, 2, 3, 106, 107, 262_143, 262_144, u32::MAX]) {
        let want = reference.id_to_token(id);
        assert_eq!(compact.token(id).map(str::to_string), want, "id {id}");
        if let Some(text) = want {
            assert_eq!(compact.id_of(&text), reference.token_to_id(&text), "token {text:?}");
        }
    }
    for absent in ["", "no such token at all", "<start_of_turn", "▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁x"] {
        assert_eq!(compact.id_of(absent), reference.token_to_id(absent), "{absent:?}");
    }
}

/// Section `name`'s byte range, from the file's header.
fn section(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
    let at = header["sections"][name][0].as_u64().unwrap() as usize;
    at..at + header["sections"][name][1].as_u64().unwrap() as usize
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn a_corrupt_compact_tokenizer_is_a_clean_error() {
    let Some((_, _, dir)) = gemma3_pair() else { return };
    let good = std::fs::read(dir.join("tokenizer.bin")).unwrap();
    type Corrupt = fn(&mut Vec<u8>);
    let cases: [(&str, Corrupt, &str); 9] = [
        ("truncated", |b| b.truncate(b.len() / 2), "beyond the file"),
        ("magic", |b| b[0] = b'X', "no MMRTBPE1 magic"),
        ("header", |b| b[20] = b'{', "header"),
        ("vocab", |b| edit_header(b, "\"vocab\": 262144", "\"vocab\": 262145"), "section \"offsets\""),
        ("offset", |b| { let s = section(b, "offsets"); put_u32(b, s.start + 4 * 5, u32::MAX) }, "not a piece of the strings"),
        ("sorted", |b| { let s = section(b, "sorted"); b.copy_within(s.start..s.start + 4, s.start + 4) }, "strictly increasing"),
        ("merged id", |b| { let s = section(b, "merges"); put_u32(b, s.start + 8, 300_000) }, "beyond the vocabulary"),
        // a group running past the merges, though the last start is right
        ("merge group", |b| { let s = section(b, "merge_start"); put_u32(b, s.start + 4, u32::MAX) }, "not a range of the"),
        ("prefix id", |b| edit_header(b, "\"prefix\": [2]", "\"prefix\": [999999]"), "post-processor id 999999"),
    ];
    for (what, corrupt, needle) in cases {
        let mut bytes = good.clone();
        corrupt(&mut bytes);
        let path = common::target_tmp("compact_tokenizer", what).join("tokenizer.bin");
        std::fs::write(&path, &bytes).unwrap();
        let err = match mmrt::tokenizer::TextTokenizer::from_compact(&path) {
            Ok(_) => panic!("{what}: a corrupt file was accepted"),
            Err(e) => e,
        };
        assert!(err.contains(needle) && err.contains("tokenizer.bin"), "{what}: {err}");
    }
}

/// Replace `from` by `to` in the JSON header, keeping its length (the writer pads it with spaces).
fn edit_header(bytes: &mut [u8], from: &str, to: &str) {
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[12..12 + len]).unwrap();
    assert!(header.contains(from), "{from:?} not in the header");
    let edited = header.trim_end().replacen(from, to, 1);
    assert!(edited.len() <= len, "no room in the header's padding for {to:?}");
    let mut padded = edited.into_bytes();
    padded.resize(len, b' ');
    bytes[12..12 + len].copy_from_slice(&padded);
}
