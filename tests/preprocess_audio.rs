//! Audio preprocessing: log-mel parity with transformers' WhisperFeatureExtractor
//! on real (espeak-ng) speech, WAV decoding of every supported encoding, the
//! resampler, and clear errors for bad input.

mod common;

use mmrt::manifest::AudioPreprocess;
use mmrt::preprocess::audio::{self, AudioError, LogMel};
use mmrt::preprocess::wav::{decode_wav, read_wav};

use common::media::{mono16, write_wav};
use common::{audio_fixture, root, test_audio as tmp};

fn settings(n_mels: usize) -> AudioPreprocess {
    AudioPreprocess { sample_rate: 16000, n_fft: 400, hop_length: 160, n_mels, chunk_seconds: 30.0 }
}

#[test]
fn log_mel_matches_whisper_feature_extractor_within_1e_4() {
    let meta = common::golden::log_mel();
    let wave = read_wav(&audio_fixture(&meta.wav)).unwrap();
    assert_eq!(wave.sample_rate, 16000);
    assert_eq!(wave.samples.len(), meta.samples);
    for g in &meta.goldens {
        let n_mels = g.n_mels;
        let stored = g.frames_stored;
        let bytes = std::fs::read(root().join("tests/golden").join(&g.file)).unwrap();
        let golden: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(golden.len(), n_mels * stored);
        let mel = LogMel::new(&settings(n_mels)).unwrap();
        assert_eq!(mel.frames(), g.frames_total);
        let got = mel.compute(&wave.samples);
        assert_eq!(got.len(), n_mels * mel.frames());
        let pad = g.padding_value;
        let mut worst = 0.0f32;
        for m in 0..n_mels {
            for f in 0..mel.frames() {
                let want = if f < stored { golden[m * stored + f] } else { pad };
                worst = worst.max((got[m * mel.frames() + f] - want).abs());
            }
        }
        println!("log-mel {n_mels} bins: max |rust - transformers| = {worst:.2e}");
        assert!(worst <= 1e-4, "{n_mels} mel bins: max abs diff {worst}");
    }
}

fn sine(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
    (0..(rate as f32 * seconds) as usize).map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()).collect()
}

#[test]
fn every_pcm_and_float_encoding_decodes_to_the_same_mono_signal() {
    let x = sine(16000, 440.0, 0.25);
    let cases = [
        (hound::SampleFormat::Int, 8, 1, 1.0 / 127.0),
        (hound::SampleFormat::Int, 16, 1, 1e-4),
        (hound::SampleFormat::Int, 24, 2, 1e-6),
        (hound::SampleFormat::Int, 32, 1, 1e-6),
        (hound::SampleFormat::Float, 32, 3, 0.0),
    ];
    for (format, bits, channels, tol) in cases {
        let path = tmp(&format!("enc_{bits}_{channels}.wav"));
        let spec = hound::WavSpec { channels, sample_rate: 16000, bits_per_sample: bits, sample_format: format };
        write_wav(&path, spec, &x);
        let w = read_wav(&path).unwrap();
        assert_eq!((w.sample_rate, w.samples.len()), (16000, x.len()), "{bits}-bit {channels} ch");
        let worst = w.samples.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= tol + 1e-6, "{bits}-bit {channels} ch: max diff {worst}");
    }
}

#[test]
fn eight_khz_audio_is_resampled_to_sixteen_khz() {
    let path = tmp("tone_8k.wav");
    write_wav(&path, mono16(8000), &sine(8000, 440.0, 1.0));
    let w = read_wav(&path).unwrap();
    let y = audio::resample(&w.samples, w.sample_rate, 16000).unwrap();
    assert_eq!(y.len(), 16000);
    // Away from the edges the output is the same 440 Hz tone sampled at 16 kHz.
    let want = sine(16000, 440.0, 1.0);
    let worst = y[400..15600].iter().zip(&want[400..15600]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 2e-3, "resampled tone differs by {worst}");
}

#[test]
fn bad_wavs_give_clear_errors() {
    let good = tmp("good.wav");
    write_wav(&good, mono16(16000), &sine(16000, 300.0, 0.1));
    let bytes = std::fs::read(&good).unwrap();
    let header_only = {
        let mut b = bytes[..44].to_vec();
        b[40..44].copy_from_slice(&0u32.to_le_bytes());
        b[4..8].copy_from_slice(&36u32.to_le_bytes());
        b
    };
    let alaw = {
        let mut b = bytes.clone();
        b[20..22].copy_from_slice(&6u16.to_le_bytes()); // WAVE_FORMAT_ALAW
        b[34..36].copy_from_slice(&8u16.to_le_bytes());
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", vec![], "not a WAV file: found an empty file"),
        ("png", b"\x89PNG\r\n\x1a\n0000000000".to_vec(), "not a WAV file"),
        ("text", b"hello world, not audio".to_vec(), "not \"RIFF....WAVE\""),
        ("truncated data", bytes[..bytes.len() - 101].to_vec(), "truncated WAV: the header declares 1600 samples"),
        ("truncated header", bytes[..30].to_vec(), "corrupt WAV data"),
        ("zero length", header_only, "holds no samples"),
        ("a-law", alaw, "unsupported WAV encoding"),
    ];
    for (what, data, needle) in cases {
        let err = decode_wav(std::io::Cursor::new(data)).expect_err(what).to_string();
        assert!(err.contains(needle), "{what}: {err}");
    }
    let err: AudioError = LogMel::new(&AudioPreprocess { hop_length: 0, ..settings(80) }).err().unwrap();
    assert!(err.to_string().contains("hop_length 0"), "{err}");
}
