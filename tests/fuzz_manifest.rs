//! Fuzz target: the manifest parser and validator (`Manifest::from_json`),
//! then what a loader derives from an accepted manifest without a graph:
//! tensor name lists, scheduler tables, the log-mel plan, the prompt template.
//! Inputs are the tiny bundles' manifests and `tests/fixtures/fuzz/manifest/`,
//! mutated structurally (a JSON value replaced, removed, copied) or as bytes.
//! See `tests/fuzz_common/mod.rs` for the knobs (`MMRT_FUZZ_CASES`, ...).

mod fuzz_common;

use std::collections::BTreeMap;
use std::path::Path;

use fuzz_common::{fuzz, mutate_bytes, FuzzRng};
use mmrt::diffusion::Scheduler;
use mmrt::manifest::{Manifest, Modality, Preprocess, Stage};
use rand::Rng;
use serde_json::Value;

/// About 3 s in a debug build.
const DEFAULT_CASES: usize = 2000;

fn interesting_value(rng: &mut FuzzRng, donor: &Value) -> Value {
    match rng.random_range(0..24) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => 0.into(),
        3 => 1.into(),
        4 => (-1).into(),
        5 => 4_294_967_296u64.into(),
        6 => u64::MAX.into(),
        7 => (1u64 << 62).into(),
        8 => 1e308.into(),
        9 => (-1e308).into(),
        10 => 0.5.into(),
        11 => 1e-300.into(),
        12 => rng.random_range(0..100_000u64).into(),
        13 => "".into(),
        14 => " ".into(),
        15 => "{layer}".into(),
        16 => "{content}".into(),
        17 => "../outside.onnx".into(),
        18 => "/etc/passwd".into(),
        19 => "<image>".into(),
        20 => Value::Array(Vec::new()),
        21 => Value::Object(Default::default()),
        22 => Value::Array(vec![rng.random_range(0..1_000_000_000u64).into(); rng.random_range(1..6)]),
        _ => donor.clone(),
    }
}

/// Every value of a JSON tree, in document order (pointers for `pointer_mut`).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        Value::Object(map) => map.iter().for_each(|(k, x)| pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        _ => {}
    }
}

/// 1 to 4 structural edits of a manifest.
fn mutate_json(rng: &mut FuzzRng, v: &mut Value) {
    for _ in 0..rng.random_range(1..=4) {
        let mut all = Vec::new();
        pointers(v, String::new(), &mut all);
        let target = all[rng.random_range(0..all.len())].clone();
        // A value from elsewhere in the document (not the whole document), to copy in.
        let donor = v.pointer(&all[rng.random_range(1.min(all.len() - 1)..all.len())]).cloned().unwrap_or(Value::Null);
        match rng.random_range(0..5) {
            // Replace a value.
            0 | 1 => {
                let new = interesting_value(rng, &donor);
                if let Some(slot) = v.pointer_mut(&target) {
                    *slot = new;
                }
            }
            // Remove an object key or an array element.
            2 => {
                if let Some((parent, key)) = target.rsplit_once('/') {
                    match v.pointer_mut(parent) {
                        Some(Value::Object(map)) => {
                            map.remove(&key.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(i) = key.parse::<usize>() {
                                if i < items.len() {
                                    items.remove(i);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Duplicate an array element (a second stage, token, dimension).
            3 => {
                if let Some(Value::Array(items)) = v.pointer_mut(&target) {
                    if !items.is_empty() {
                        let i = rng.random_range(0..items.len());
                        let copy = items[i].clone();
                        items.push(copy);
                    }
                }
            }
            // Add an unknown or known key.
            _ => {
                if let Some(Value::Object(map)) = v.pointer_mut(&target) {
                    let key = ["foo", "name", "modality", "kind", "num_layers", "latent_shape", "head_dim", "steps"][rng.random_range(0..8)];
                    let new = interesting_value(rng, &donor);
                    map.insert(key.into(), new);
                }
            }
        }
    }
}

/// What a loader computes from an accepted manifest before any graph is opened;
/// every count here was bounded by validation, so none of it may panic or balloon.
fn exercise(m: &Manifest) {
    let _ = m.files();
    if let Some(d) = m.llm_decoder() {
        assert!(d.kv_cache.num_layers <= mmrt::limits::MAX_LAYERS);
        assert_eq!(d.kv_cache.past_names().len(), 2 * d.kv_cache.num_layers);
        assert!(d.context_length <= mmrt::limits::MAX_CONTEXT_LENGTH);
    }
    if let Some(d) = m.seq2seq_decoder() {
        assert_eq!(d.cross_kv.names(d.kv_cache.num_layers).len(), 2 * d.kv_cache.num_layers);
        let _ = d.decoder_prompt.ids();
    }
    assert!(m.generation.max_new_tokens <= mmrt::limits::MAX_NEW_TOKENS);
    let _ = m.generation.validate();
    for stage in &m.stages {
        match stage {
            Stage::ModalityGenerator(g) => {
                let n = mmrt::limits::checked_product(&g.latent_shape).expect("validated latent shape");
                assert!(n <= mmrt::limits::MAX_LATENT_ELEMENTS);
                let _ = Scheduler::new(&g.scheduler, g.steps);
                let _ = Scheduler::new(&g.scheduler, 1);
            }
            Stage::ModalityEncoder(e) => match &e.preprocess {
                Preprocess::Audio(a) => {
                    let mel = mmrt::preprocess::audio::LogMel::new(a).expect("a validated audio block plans");
                    // Small spectrograms only: the fuzzer must stay fast.
                    if mel.frames() * mel.n_mels() <= 20_000 && mel.frames() * a.n_fft <= 100_000 {
                        let samples: Vec<f32> = (0..mel.window_samples().min(40_000)).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
                        let features = mel.compute(&samples);
                        assert_eq!(features.len(), mel.frames() * mel.n_mels());
                    }
                }
                Preprocess::Image(p) | Preprocess::Video(mmrt::manifest::VideoPreprocess { image: p, .. }) => {
                    let img = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 99]));
                    let _ = mmrt::preprocess::image::preprocess(&[img], p);
                }
            },
            _ => {}
        }
    }
    let counts = BTreeMap::from([(Modality::Image, 1), (Modality::Audio, 1)]);
    let _ = mmrt::prompt::render_with(&m.prompt, "<image> hi <audio>", &counts, false);
    let _ = mmrt::prompt::render_with(&m.prompt, "hi", &counts, true);
}

#[test]
fn fuzz_manifest() {
    let corpus = fuzz_common::corpus(&["models/tiny", "models/tiny-f16", "tests/fixtures/fuzz/manifest"], &[".json"]);
    let parsed: Vec<Value> = corpus.iter().filter_map(|(_, b)| serde_json::from_slice(b).ok()).collect();
    fuzz(
        "manifest",
        DEFAULT_CASES,
        &corpus,
        |rng, corpus| {
            if rng.random_bool(0.8) {
                let mut v = parsed[rng.random_range(0..parsed.len())].clone();
                mutate_json(rng, &mut v);
                let mut text = if rng.random_bool(0.5) { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap() }.into_bytes();
                if rng.random_bool(0.1) {
                    mutate_bytes(rng, &mut text, corpus);
                }
                text
            } else {
                fuzz_common::mutated_seed(rng, corpus)
            }
        },
        |input| {
            let text = String::from_utf8_lossy(input);
            match Manifest::from_json(&text, Path::new("bundle.json")) {
                Ok(m) => {
                    exercise(&m);
                    true
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("invalid manifest bundle.json: "), "{msg}");
                    false
                }
            }
        },
    );
}
