//! Fuzz target: prompt rendering and placeholder expansion (`prompt::render_with`,
//! `prompt::encode`) with the tiny bundle's tokenizer, and the load-time check
//! of a prompt format against it (`prompt::check_tokenizer`). An input is four
//! control bytes (image count, audio count, flags choosing the chat template
//! and a prompt-format variant, a seed for rows per item) and the user text;
//! the corpus is `tests/fixtures/fuzz/prompt/` texts, mutated as bytes and
//! spliced with placeholders and template markers.
//! See `tests/fuzz_common/mod.rs` for the knobs (`MMRT_FUZZ_CASES`, ...).

mod fuzz_common;

use std::collections::BTreeMap;
use std::path::Path;

use fuzz_common::fuzz;
use mmrt::manifest::{Manifest, Modality, PromptFormat};
use mmrt::prompt::{check_tokenizer, encode, render_with};
use rand::{Rng, SeedableRng};

/// About 2 s in a debug build.
const DEFAULT_CASES: usize = 30_000;

const PIECES: [&str; 10] = ["<image>", "<audio>", "{content}", "<s>", "</s>", "USER:", " ", "\n", "<image", "[IMG0]"];

/// The tiny bundle's prompt format and variants of it that a manifest check
/// would refuse but the prompt code must still survive.
fn formats() -> Vec<PromptFormat> {
    let text = std::fs::read_to_string(fuzz_common::root().join("models/tiny/bundle.json")).unwrap();
    let tiny = Manifest::from_json(&text, Path::new("bundle.json")).unwrap().prompt;
    let mut chat = tiny.clone();
    chat.chat_template = Some("<s>[INST] {content} [/INST]".into());
    let mut letter = tiny.clone();
    letter.placeholders.insert(Modality::Image, "a".into());
    let mut shared = tiny.clone();
    shared.media_token_ids.insert(Modality::Audio, 3);
    shared.bos_token_id = None;
    let mut empty = tiny.clone();
    empty.placeholders.insert(Modality::Audio, String::new());
    empty.template = "{content}{content}".into();
    vec![tiny, chat, letter, shared, empty]
}

#[test]
fn fuzz_prompt() {
    let tokenizer = mmrt::tokenizer::TextTokenizer::from_json(&fuzz_common::root().join("models/tiny/tokenizer.json")).unwrap();
    let formats = formats();
    for f in &formats {
        let _ = check_tokenizer(f, &tokenizer);
    }
    assert!(check_tokenizer(&formats[0], &tokenizer).is_ok(), "the tiny bundle's prompt format passes its own check");
    let corpus: Vec<(String, Vec<u8>)> = fuzz_common::corpus(&["tests/fixtures/fuzz/prompt"], &[])
        .into_iter()
        .map(|(name, text)| (name, [vec![1, 1, 0, 7], text].concat()))
        .collect();
    fuzz(
        "prompt",
        DEFAULT_CASES,
        &corpus,
        |rng, corpus| {
            let mut input = fuzz_common::mutated_seed(rng, corpus);
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, PIECES[rng.random_range(0..PIECES.len())].bytes());
            }
            while input.len() < 4 {
                input.push(rng.random());
            }
            input
        },
        |input| {
            let (control, text) = input.split_at(4.min(input.len()));
            let [images, audio, flags, seed] = [0, 1, 2, 3].map(|i| control.get(i).copied().unwrap_or(0));
            let format = &formats[(flags >> 1) as usize % formats.len()];
            let chat = flags & 1 == 1;
            let prompt = String::from_utf8_lossy(text);
            let counts = BTreeMap::from([(Modality::Image, images as usize % 5), (Modality::Audio, audio as usize % 5)]);
            let Ok(rendered) = render_with(format, &prompt, &counts, chat) else { return false };
            let mut rows_rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
            let rows: BTreeMap<Modality, Vec<usize>> = counts
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(&m, &n)| (m, (0..n).map(|_| rows_rng.random_range(0..40)).collect()))
                .collect();
            let Ok(encoded) = encode(&tokenizer, format, &rendered, &rows) else { return false };
            let mut end = 0;
            let mut per_modality: BTreeMap<Modality, usize> = BTreeMap::new();
            for slot in &encoded.slots {
                assert!(slot.position >= end, "slots overlap or are out of order");
                end = slot.position + slot.len;
                assert!(end <= encoded.ids.len(), "slot past the ids");
                let id = format.media_token_ids[&slot.modality];
                assert!(encoded.ids[slot.position..end].iter().all(|&t| t == id), "slot not filled with its media token");
                assert_eq!(slot.len, rows[&slot.modality][slot.item]);
                *per_modality.entry(slot.modality).or_default() += 1;
            }
            for (m, r) in &rows {
                assert_eq!(per_modality.get(m).copied().unwrap_or(0), r.len(), "{m} items placed");
            }
            true
        },
    );
}
