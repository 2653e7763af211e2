//! The streaming detokenizer emits text as ids arrive without ever splitting
//! a multi-byte character, and its pieces add up to the full decode.
//! Uses the tiny bundle's real byte-level BPE tokenizer.

mod common;

use mmrt::generate::Detokenizer;
use mmrt::tokenizer::TextTokenizer;

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_json(&common::tiny_dir().join("tokenizer.json")).unwrap()
}

#[test]
fn pieces_concatenate_to_the_full_decode_for_multibyte_text() {
    let tok = tokenizer();
    for text in ["café naïve", "日本語のテキスト", "emoji 🙂 and 🐈 cats", "a plain sentence about a cat.", "mixed: é日🙂x"] {
        let ids = tok.encode(text, false).unwrap();
        assert!(ids.len() > 1, "{text}");
        let mut stream = Detokenizer::new();
        let mut pieces = Vec::new();
        for &id in &ids {
            if let Some(piece) = stream.push(&tok, id).unwrap() {
                pieces.push(piece);
            }
        }
        pieces.extend(stream.finish(&tok).unwrap());
        for piece in &pieces {
            assert!(!piece.contains('\u{FFFD}'), "{text:?}: piece {piece:?} splits a character");
        }
        assert_eq!(pieces.concat(), tok.decode(&ids, true).unwrap(), "{text:?}");
        assert_eq!(pieces.concat(), text, "byte-level BPE round-trips {text:?}");
    }
}

#[test]
fn a_split_character_is_held_back_until_complete() {
    let tok = tokenizer();
    // A character outside the tiny vocabulary: one token per UTF-8 byte.
    let text = "龘";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(ids.len(), 3, "split into its three UTF-8 bytes");
    let mut stream = Detokenizer::new();
    for &id in &ids[..ids.len() - 1] {
        assert_eq!(stream.push(&tok, id).unwrap(), None, "nothing is emitted before the character is complete");
    }
    assert_eq!(stream.push(&tok, ids[ids.len() - 1]).unwrap().as_deref(), Some(text));
}
