//! The real Whisper-base bundle (built by `exporters/whisper/build.sh`, not
//! committed): on the espeak-ng speech test set, mmrt's transcript and token
//! ids must equal the PyTorch transcript of the converted model on every
//! utterance, and the mean word error rate must stay within 15%. Also: VAD
//! segmentation, long audio chunking, and the CLI on bad audio.
//!
//! Without the bundle these tests print why and pass, unless
//! `MMRT_REQUIRE_WHISPER=1` (set by `.ci/run`), which makes a missing bundle a failure.

mod common;

use std::path::Path;

use mmrt::pipeline::LoadOptions;
use mmrt::vad::VadConfig;
use mmrt::{Bundle, Pipeline, Request};
use mmrt_cli::wer::{normalized_wer, word_error_rate};

use common::bundles;
use common::cli::mmrt;
use common::golden::WhisperReference;
use common::media::{mono16, write_wav};
use common::{audio_fixture, root, runtime, test_audio as tmp};

fn pipeline(dir: &Path, vad: bool) -> Pipeline {
    let options = LoadOptions { vad_model: vad.then(|| root().join("models/silero-vad")), ..Default::default() };
    Pipeline::load_with(&runtime(), Bundle::open(dir).unwrap(), &options).unwrap()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Raw word error rate: lowercase words with punctuation stripped, nothing else normalized.
fn wer(reference: &str, hypothesis: &str) -> f64 {
    word_error_rate(&words(reference).join(" "), &words(hypothesis).join(" "))
}

fn references(dir: &Path) -> Vec<WhisperReference> {
    WhisperReference::of(dir)
}

#[test]
fn transcripts_equal_pytorch_on_every_utterance() {
    let Some(dir) = bundles::whisper("whisper-base") else { return };
    let (raw, normalized) = transcribe_test_set(&dir, 1);
    println!("greedy: mean WER raw {:.1}%, normalized {:.1}% (see wer_within_15_percent)", 100.0 * raw, 100.0 * normalized);
}

/// Beam search (the width PyTorch's references used, 5), scored the way Whisper
/// results are: WER after English normalization of reference and hypothesis.
#[test]
fn wer_within_15_percent() {
    let Some(dir) = bundles::whisper("whisper-base") else { return };
    let beams = references(&dir)[0].beam_size.expect("references.json has beam references");
    let (raw, normalized) = transcribe_test_set(&dir, beams);
    println!("beam {beams}: mean WER raw {:.1}%, normalized {:.1}%", 100.0 * raw, 100.0 * normalized);
    assert!(normalized <= 0.15, "mean normalized WER {:.1}% > 15%", 100.0 * normalized);
}

/// Transcribe every test-set utterance with `beams` beams (1: greedy), assert
/// token ids and text equal PyTorch's (greedy or beam references), print the
/// per-utterance WER table; returns the mean WER, raw and normalized
/// (mmrt_cli::wer::normalize_english on both sides, the usual way Whisper is scored).
fn transcribe_test_set(dir: &Path, beams: usize) -> (f64, f64) {
    let refs = references(dir);
    assert!(refs.len() >= 10, "the test set has {} utterances", refs.len());
    let mut p = pipeline(dir, false);
    let eos = p.bundle().manifest.prompt.eos_token_ids.clone();
    let (mut total_wer, mut total_norm, mut mismatches) = (0.0, 0.0, Vec::new());
    let (mut audio_s, mut wall_s) = (0.0, 0.0);
    println!("{:<18} {:>6} {:>6}  {:<44} | mmrt ({beams} beam(s))", "file", "raw", "norm", "sentence");
    for r in &refs {
        let file = &r.file;
        let (want_text, want_ids) = r.expected(beams);
        let start = std::time::Instant::now();
        let out = p.run(&Request::transcribe(dir.join("testset").join(file)).with_beams(beams), |_| Ok(())).unwrap();
        wall_s += start.elapsed().as_secs_f64();
        audio_s += out.audio_seconds;
        let mut ids: Vec<u32> = out.windows.iter().flat_map(|w| w.token_ids.iter().copied()).collect();
        ids.retain(|i| !eos.contains(i));
        let mut want = want_ids.to_vec();
        want.retain(|i| !eos.contains(i));
        let sentence = &r.sentence;
        let (w, n) = (wer(sentence, &out.text), normalized_wer(sentence, &out.text));
        total_wer += w;
        total_norm += n;
        println!("{file:<18} {:>5.1}% {:>5.1}%  {sentence:<44} | {}", 100.0 * w, 100.0 * n, out.text);
        if out.text != want_text || ids != want {
            mismatches.push(format!("{file}: mmrt {:?} {ids:?} vs PyTorch {want_text:?} {want:?}", out.text));
        }
    }
    let (mean, norm) = (total_wer / refs.len() as f64, total_norm / refs.len() as f64);
    println!(
        "mean WER raw {:.1}%, normalized {:.1}% over {} utterances; real-time factor {:.3} ({wall_s:.2} s for {audio_s:.2} s of audio)",
        100.0 * mean,
        100.0 * norm,
        refs.len(),
        wall_s / audio_s
    );
    assert!(mismatches.is_empty(), "transcripts differ from PyTorch:\n{}", mismatches.join("\n"));
    (mean, norm)
}

#[test]
fn int8_bundle_transcribes_the_test_set() {
    let (Some(dir), Some(fp32)) = (bundles::whisper("whisper-base-int8"), bundles::whisper("whisper-base")) else { return };
    let refs = references(&fp32);
    let mut p = pipeline(&dir, false);
    let mut total = 0.0;
    for r in &refs {
        let out = p.run(&Request::transcribe(fp32.join("testset").join(&r.file)), |_| Ok(())).unwrap();
        let w = wer(&r.sentence, &out.text);
        println!("int8 {:<18} {:>5.1}%  {}", r.file, 100.0 * w, out.text);
        total += w;
    }
    let mean = total / refs.len() as f64;
    println!("int8 mean WER {:.1}%", 100.0 * mean);
    assert!(mean <= 0.35, "int8 mean WER {:.1}%", 100.0 * mean);
}

fn speech_16k() -> Vec<f32> {
    mmrt::preprocess::wav::read_wav(&audio_fixture("speech_16k.wav")).unwrap().samples
}

#[test]
fn long_audio_is_chunked_and_vad_splits_at_pauses() {
    let Some(dir) = bundles::whisper("whisper-base") else { return };
    // 2 s silence, speech, 30 s silence, speech, 1 s silence: 36 s, two 30 s windows without VAD.
    let speech = speech_16k();
    let mut x = vec![0.0f32; 32000];
    x.extend(&speech);
    x.extend(vec![0.0f32; 480000]);
    x.extend(&speech);
    x.extend(vec![0.0f32; 16000]);
    let path = tmp("long_two_utterances.wav");
    write_wav(&path, mono16(16000), &x);
    let mut p = pipeline(&dir, true);
    let plain = p.run(&Request::transcribe(path.clone()), |_| Ok(())).unwrap();
    assert_eq!(plain.windows.len(), 2, "{:?}", plain.windows);
    let gated = p.run(&Request::transcribe(path).with_vad(Some(VadConfig::default())), |_| Ok(())).unwrap();
    println!("plain: {}\nvad:   {}", plain.text, gated.text);
    for w in &gated.windows {
        println!("vad window {:.2}-{:.2} s: {}", w.start_s, w.end_s, w.text);
    }
    assert_eq!(gated.windows.len(), 2, "a 30 s pause splits the two utterances");
    assert!(gated.windows[0].start_s > 1.5 && gated.windows[1].start_s > 32.0, "silence trimmed: {:?}", gated.windows);
    for w in &gated.windows {
        let ws = words(&w.text);
        assert!(ws.contains(&"lazy".to_string()) && ws.contains(&"dog".to_string()), "{}", w.text);
    }
}

#[test]
fn vad_segments_match_silero_get_speech_timestamps() {
    let Some(vad_dir) = bundles::silero_vad() else { return };
    // 2 s silence, speech, 3 s silence, speech, 0.5 s silence.
    let speech = speech_16k();
    let mut x = vec![0.0f32; 32000];
    x.extend(&speech);
    x.extend(vec![0.0f32; 48000]);
    x.extend(&speech);
    x.extend(vec![0.0f32; 8000]);
    let runtime = runtime();
    let mut vad = mmrt::vad::SileroVad::open(&runtime, &vad_dir, 16000).unwrap();
    let got = vad.speech_segments(&x, &VadConfig::default()).unwrap();
    // silero_vad 6.2.3 get_speech_timestamps(audio, OnnxWrapper("silero_vad.onnx"), sampling_rate=16000)
    // on the same samples (exporters/common/audio.py reader).
    let want = [(32288usize, 73184usize), (124448, 165856)];
    println!("mmrt {got:?}\nsilero {want:?}");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(g.0.abs_diff(w.0) <= 512 && g.1.abs_diff(w.1) <= 512, "{g:?} vs {w:?} (one 512-sample window allowed)");
    }
}

#[test]
fn cli_transcribes_and_reports_bad_audio_clearly() {
    let Some(dir) = bundles::whisper("whisper-base") else { return };
    let bundle = dir.to_str().unwrap();
    // 8 kHz audio is resampled and works.
    let eight = tmp("speech_8k.wav");
    let s = speech_16k();
    write_wav(&eight, mono16(8000), &s.iter().step_by(2).copied().collect::<Vec<_>>());
    let out = mmrt(&["run", "--bundle", bundle, "--audio", eight.to_str().unwrap(), "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    println!("8 kHz: {}", json["text"]);
    assert!(words(json["text"].as_str().unwrap()).iter().any(|w| w == "fox"), "{json}");
    assert!(json["stages"]["audio_encoder"].as_f64().unwrap() > 0.0 && json["real_time_factor"].as_f64().unwrap() > 0.0);

    let not_wav = tmp("not_audio.wav");
    std::fs::write(&not_wav, b"this is text, not audio").unwrap();
    let good = std::fs::read(audio_fixture("speech_16k.wav")).unwrap();
    let truncated = tmp("truncated.wav");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let empty = tmp("zero_length.wav");
    write_wav(&empty, mono16(16000), &[]);
    let mulaw = tmp("mulaw.wav");
    let mut b = good.clone();
    b[20..22].copy_from_slice(&7u16.to_le_bytes());
    std::fs::write(&mulaw, b).unwrap();
    let cases = [
        (not_wav, "not a WAV file"),
        (truncated, "truncated WAV"),
        (empty, "holds no samples"),
        (mulaw, "unsupported WAV encoding"),
        (tmp("does_not_exist.wav"), "cannot read"),
    ];
    for (path, needle) in cases {
        let out = mmrt(&["run", "--bundle", bundle, "--audio", path.to_str().unwrap()]);
        let stderr = &out.stderr;
        assert!(!out.ok, "{}", path.display());
        assert!(stderr.contains(needle) && stderr.contains(path.file_name().unwrap().to_str().unwrap()), "{}: {stderr}", path.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = mmrt(&["run", "--bundle", bundle, "--audio", eight.to_str().unwrap(), "--prompt", "hi"]);
    assert!(!out.ok && out.stderr.contains("remove --prompt"), "{}", out.stderr);
    let out = mmrt(&["inspect", "--bundle", bundle]);
    assert!(out.ok && out.stdout.contains("seq2seq_decoder") && out.stdout.contains("cross.5.value"), "{}{}", out.stdout, out.stderr);
    let out = mmrt(&["run", "--bundle", bundle]);
    assert!(!out.ok && out.stderr.contains("pass --audio"), "{}", out.stderr);
    let out = mmrt(&["run", "--bundle", bundle, "--audio", eight.to_str().unwrap(), "--vad", "--vad-model", "/nonexistent"]);
    assert!(!out.ok && out.stderr.contains("/nonexistent/vad.json does not exist"), "{}", out.stderr);
}

#[test]
fn two_hours_of_silence_with_vad_finds_no_speech() {
    let Some(dir) = bundles::whisper("whisper-base") else { return };
    let path = tmp("silence_2h.wav");
    if !path.is_file() {
        // 8-bit mono 16 kHz: 115 MB.
        let spec = hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 8, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..2 * 3600 * 16000u64 {
            w.write_sample(0i8).unwrap();
        }
        w.finalize().unwrap();
    }
    let start = std::time::Instant::now();
    let out = mmrt(&["run", "--bundle", dir.to_str().unwrap(), "--audio", path.to_str().unwrap(), "--vad", "--vad-model", root().join("models/silero-vad").to_str().unwrap()]);
    let stderr = &out.stderr;
    println!("2 h silence with --vad: {:.1} s: {stderr}", start.elapsed().as_secs_f64());
    assert!(!out.ok && stderr.contains("found no speech in 7200.0 s"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}
