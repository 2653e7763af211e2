//! The fast tokenizer.json reader against the `tokenizers` crate's own reader,
//! on every tokenizer the project's bundles carry: Gemma 3's 262k BPE (pair
//! merges, byte fallback, 6k added tokens), SmolLM2's byte-level BPE, Whisper's
//! legacy "a b" merges, the tiny fixture. The fast reader must not decline
//! any of them, and must build the very tokenizer the crate builds: the same
//! serialization and the same ids and text on mixed input.

mod common;

use std::path::PathBuf;

use common::bundles;
use tokenizers::Tokenizer;

const TEXTS: &[&str] = &[
    "The history of the lighthouse is a story of engineering, commerce and human courage.",
    "  leading spaces, tabs\tand\nnew lines; unicode: naïve café, 東京, emoji 🚀, digits 1234567",
    "<start_of_turn>user\nHello<end_of_turn>\n<|im_start|>assistant\n<|endoftext|> <image> <video> <unk>",
    "fn main() { println!(\"{}\", x.iter().map(|v| v * 2).sum::<i32>()); }",
];

fn tokenizers() -> Vec<PathBuf> {
    let mut paths = vec![common::tiny_dir().join("tokenizer.json")];
    let real = [
        bundles::gemma3("gemma3-270m-q4-text"),
        bundles::gguf("smollm2-135m-text", true),
        bundles::whisper("whisper-base-int8"),
    ];
    paths.extend(real.into_iter().flatten().map(|dir| dir.join("tokenizer.json")));
    paths
}

#[test]
fn fast_reader_builds_the_crates_tokenizer_for_every_bundle() {
    for path in tokenizers() {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference = Tokenizer::from_bytes(&bytes).unwrap();
        let fast = mmrt::tokenizer::json::fast(&bytes).unwrap_or_else(|why| panic!("{}: the fast reader declined: {why}", path.display()));
        assert!(
            fast.to_string(false).unwrap() == reference.to_string(false).unwrap(),
            "{}: serializations differ",
            path.display()
        );
        for text in TEXTS {
            for special in [false, true] {
                let (a, b) = (fast.encode(*text, special).unwrap(), reference.encode(*text, special).unwrap());
                assert_eq!(a.get_ids(), b.get_ids(), "{}: ids of {text:?}", path.display());
                assert_eq!(
                    fast.decode(a.get_ids(), false).unwrap(),
                    reference.decode(b.get_ids(), false).unwrap(),
                    "{}: text of {text:?}",
                    path.display()
                );
            }
        }
        eprintln!("{}: same tokenizer ({} tokens)", path.display(), reference.get_vocab_size(true));
    }
}
