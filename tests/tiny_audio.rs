//! Audio into the LLM path on the tiny bundle: log-mel of the encoder's 2 s
//! windows and projected audio embeddings within 1e-4 of transformers /
//! PyTorch, greedy ids equal to PyTorch `generate()` with the audio rows
//! spliced in (audio alone, audio placed in text, audio with an image in either
//! order) — `tests/golden/tiny_audio.json`, written by `exporters/tiny/build.sh` —
//! and clear errors for bad audio requests through the binary.

mod common;

use std::path::PathBuf;
use std::process::Command;

use mmrt::manifest::{Modality, Preprocess};
use mmrt::pipeline::StageTimings;
use mmrt::preprocess::audio::LogMel;
use mmrt::preprocess::wav::read_wav;
use mmrt::{Bundle, Request};
use serde_json::Value;

use common::{floats, golden, ids, root, tiny_pipeline};


fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("list").iter().map(|x| x.as_u64().expect("int") as usize).collect()
}

fn paths(v: &Value) -> Vec<PathBuf> {
    v.as_array().expect("paths").iter().map(|p| root().join(p.as_str().expect("path"))).collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn log_mel_windows_match_whisper_feature_extractor() {
    let bundle = Bundle::open(root().join("models/tiny")).expect("tiny bundle");
    let Preprocess::Audio(settings) = &bundle.manifest.encoder(Modality::Audio).expect("audio encoder").preprocess else {
        panic!("audio encoder without audio preprocessing")
    };
    let mel = LogMel::new(settings).unwrap();
    for entry in golden("tiny_audio.json")["audio"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let wave = read_wav(&root().join(file)).unwrap();
        assert_eq!(wave.sample_rate, settings.sample_rate, "{file}");
        let shape = usizes(&entry["mel_shape"]);
        let windows = mmrt::preprocess::audio::windows(&wave.samples, mel.window_samples());
        assert_eq!(windows.len(), shape[0], "{file}: windows");
        let got: Vec<f32> = windows.iter().flat_map(|w| mel.compute(w)).collect();
        let diff = max_abs(&got, &floats(&entry["mel"]));
        println!("{file}: {} windows, log-mel max|rust - transformers| = {diff:.2e}", shape[0]);
        assert!(diff <= 1e-4, "{file}: log-mel differs by {diff}");
    }
}

#[test]
fn audio_embeddings_match_pytorch() {
    let mut p = tiny_pipeline();
    let entries = golden("tiny_audio.json")["audio"].as_array().unwrap().clone();
    assert!(entries.len() >= 2);
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let got = p.encode_media(Modality::Audio, &[root().join(file)], &mut StageTimings::default()).expect("encode audio");
        let rows = got.rows().expect("rows");
        let shape = usizes(&entry["embeds_shape"]);
        assert_eq!(rows.shape(), &shape[..], "{file}: [windows * tokens, d_llm]");
        let values: Vec<f32> = rows.iter().copied().collect();
        let diff = max_abs(&values, &floats(&entry["embeds"]));
        println!("{file}: {} windows, {shape:?} embeddings, max|rust - torch| = {diff:.2e}", got.values.len());
        assert!(diff <= 1e-4, "{file}: audio embeddings differ by {diff}");
    }
}

#[test]
fn greedy_ids_match_pytorch_with_audio_spliced_in() {
    let mut p = tiny_pipeline();
    let cases = golden("tiny_audio.json")["generate"].as_array().unwrap().clone();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"audio_only") && names.contains(&"audio_then_image"), "{names:?}");
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let request = Request::new(case["prompt"].as_str().unwrap())
            .with_images(paths(&case["images"]))
            .with_audio(paths(&case["audio"]))
            .with_max_new_tokens(case["max_new_tokens"].as_u64().unwrap() as usize);
        let out = p.run(&request, |_| Ok(())).expect(name);
        assert_eq!(out.prompt_ids, ids(&case["input_ids"]), "{name}: prompt ids");
        assert_eq!(out.token_ids, ids(&case["output_ids"]), "{name}: generated ids");
        assert_eq!(out.text, case["text"].as_str().unwrap(), "{name}: text");
        assert!(out.timings.get("audio_encoder").is_some(), "{name}: audio encoder timing");
    }
}

fn mmrt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::mmrt_bin()).args(args).current_dir(root()).env_remove("RUST_LOG").output().expect("spawn mmrt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_splices_audio_and_reports_bad_requests() {
    let case = golden("tiny_audio.json")["generate"].as_array().unwrap().iter().find(|c| c["name"] == "audio_then_image").unwrap().clone();
    let mut args = vec!["run", "--bundle", "models/tiny", "--prompt", case["prompt"].as_str().unwrap(), "--json"];
    let max = case["max_new_tokens"].to_string();
    args.extend(["--max-tokens", max.as_str()]);
    for image in case["images"].as_array().unwrap() {
        args.extend(["--image", image.as_str().unwrap()]);
    }
    for audio in case["audio"].as_array().unwrap() {
        args.extend(["--audio", audio.as_str().unwrap()]);
    }
    let (ok, stdout, stderr) = mmrt(&args);
    assert!(ok, "{stderr}");
    let json: Value = serde_json::from_str(stdout.trim()).expect("JSON output");
    assert_eq!(ids(&json["token_ids"]), ids(&case["output_ids"]), "CLI ids");
    assert!(json["stages"]["audio_encoder"].is_number(), "{json}");

    let sweep = "tests/fixtures/audio/sweep_16k.wav";
    let bad: &[(&[&str], &str)] = &[
        // The float16 twin carries no audio branch.
        (&["run", "--bundle", "models/tiny-f16", "--prompt", "Hi.", "--audio", sweep], "has no audio path"),
        (&["run", "--bundle", "models/tiny", "--prompt", "<audio> and <audio>", "--audio", sweep], "2 \"<audio>\" placeholder(s) but 1 audio input(s)"),
        (&["run", "--bundle", "models/tiny", "--prompt", "hear <audio>"], "1 \"<audio>\" placeholder(s) but 0 audio input(s)"),
        (&["run", "--bundle", "models/tiny", "--prompt", "Hi.", "--audio", "tests/fixtures/images/a_32.png"], "not a WAV file"),
        (&["run", "--bundle", "models/tiny", "--prompt", "Hi.", "--audio", "tests/fixtures/audio/missing.wav"], "missing.wav"),
        // Beam search is the speech path's.
        (&["run", "--bundle", "models/tiny", "--prompt", "Hi.", "--beams", "2"], "--beams applies to speech-recognition bundles"),
        (&["run", "--bundle", "models/tiny", "--prompt", "Hi.", "--beams", "0"], "--beams must be at least 1"),
    ];
    for (args, want) in bad {
        let (ok, _, stderr) = mmrt(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: expected {want:?} in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}
