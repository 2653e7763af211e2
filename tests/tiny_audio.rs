//! Audio into the LLM path on the tiny bundle: log-mel of the encoder's 2 s
//! windows and projected audio embeddings within 1e-4 of transformers /
//! PyTorch, greedy ids equal to PyTorch `generate()` with the audio rows
//! spliced in (audio alone, audio placed in text, audio with an image in either
//! order) — `tests/golden/tiny_audio.json`, written by `exporters/tiny/build.sh` —
//! and clear errors for bad audio requests through the binary.

mod common;

use mmrt::manifest::{Modality, Preprocess};
use mmrt::pipeline::StageTimings;
use mmrt::preprocess::audio::LogMel;
use mmrt::preprocess::wav::read_wav;
use mmrt::{Bundle, Request};
use serde_json::Value;

use common::cli::mmrt;
use common::golden::{paths, tiny_audio};
use common::{ids, max_abs, root, tiny_dir, tiny_pipeline};

#[test]
fn log_mel_windows_match_whisper_feature_extractor() {
    let bundle = Bundle::open(tiny_dir()).expect("tiny bundle");
    let Preprocess::Audio(settings) = &bundle.manifest.encoder(Modality::Audio).expect("audio encoder").preprocess else {
        panic!("audio encoder without audio preprocessing")
    };
    let mel = LogMel::new(settings).unwrap();
    for entry in &tiny_audio().audio {
        let file = &entry.file;
        let wave = read_wav(&root().join(file)).unwrap();
        assert_eq!(wave.sample_rate, settings.sample_rate, "{file}");
        let shape = &entry.mel_shape;
        let windows = mmrt::preprocess::audio::windows(&wave.samples, mel.window_samples());
        assert_eq!(windows.len(), shape[0], "{file}: windows");
        let got: Vec<f32> = windows.iter().flat_map(|w| mel.compute(w)).collect();
        let diff = max_abs(&got, &entry.mel);
        println!("{file}: {} windows, log-mel max|rust - transformers| = {diff:.2e}", shape[0]);
        assert!(diff <= 1e-4, "{file}: log-mel differs by {diff}");
    }
}

#[test]
fn audio_embeddings_match_pytorch() {
    let mut p = tiny_pipeline();
    let entries = tiny_audio().audio;
    assert!(entries.len() >= 2);
    for entry in entries {
        let file = &entry.file;
        let got = p.encode_media(Modality::Audio, &[root().join(file).into()], &mut StageTimings::default()).expect("encode audio");
        let rows = got.rows().expect("rows");
        let shape = &entry.embeds_shape;
        assert_eq!(rows.shape(), &shape[..], "{file}: [windows * tokens, d_llm]");
        let values: Vec<f32> = rows.iter().copied().collect();
        let diff = max_abs(&values, &entry.embeds);
        println!("{file}: {} windows, {shape:?} embeddings, max|rust - torch| = {diff:.2e}", got.values.len());
        assert!(diff <= 1e-4, "{file}: audio embeddings differ by {diff}");
    }
}

#[test]
fn greedy_ids_match_pytorch_with_audio_spliced_in() {
    let mut p = tiny_pipeline();
    let cases = tiny_audio().generate;
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"audio_only") && names.contains(&"audio_then_image"), "{names:?}");
    for case in &cases {
        let name = &case.name;
        let request = Request::new(case.prompt.as_str())
            .with_images(paths(&case.images))
            .with_audio(paths(&case.audio))
            .with_max_new_tokens(case.max_new_tokens);
        let out = p.run(&request, |_| Ok(())).expect(name);
        assert_eq!(out.prompt_ids, case.input_ids, "{name}: prompt ids");
        assert_eq!(out.token_ids, case.output_ids, "{name}: generated ids");
        assert_eq!(out.text, case.text, "{name}: text");
        assert!(out.timings.get("audio_encoder").is_some(), "{name}: audio encoder timing");
    }
}

#[test]
fn cli_splices_audio_and_reports_bad_requests() {
    let golden = tiny_audio();
    let case = golden.generate.iter().find(|c| c.name == "audio_then_image").unwrap();
    let mut args = vec!["run", "--bundle", "models/tiny", "--prompt", case.prompt.as_str(), "--json"];
    let max = case.max_new_tokens.to_string();
    args.extend(["--max-tokens", max.as_str()]);
    for image in &case.images {
        args.extend(["--image", image.as_str()]);
    }
    for audio in &case.audio {
        args.extend(["--audio", audio.as_str()]);
    }
    let out = mmrt(&args);
    assert!(out.ok, "{}", out.stderr);
    let json: Value = serde_json::from_str(out.stdout.trim()).expect("JSON output");
    assert_eq!(ids(&json["token_ids"]), case.output_ids, "CLI ids");
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
        let out = mmrt(args);
        let stderr = &out.stderr;
        assert!(!out.ok, "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: expected {want:?} in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}
