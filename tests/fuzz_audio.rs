//! Fuzz target: the WAV reader (`decode_wav`), the resampler and the log-mel
//! spectrogram. Inputs are `tests/fixtures/fuzz/wav/` (8/16/24/32-bit PCM,
//! float, stereo, WAVE_FORMAT_EXTENSIBLE, extra chunks) and
//! `tests/fixtures/audio/`, mutated as bytes, plus WAV files built from random
//! header fields, plus raw bit patterns (NaN and infinities included) fed to
//! the resampler directly. Every decoded waveform is resampled to a rate and
//! turned into spectrogram windows with settings derived from the input.
//! See `tests/fuzz_common/mod.rs` for the knobs (`MMRT_FUZZ_CASES`, ...).

mod fuzz_common;

use fuzz_common::{fuzz, hash, random_bytes, FuzzRng, INTERESTING_U32};
use mmrt::manifest::AudioPreprocess;
use mmrt::preprocess::audio::{resample, windows, AudioError, LogMel};
use mmrt::preprocess::wav::decode_wav;
use rand::Rng;

/// About 3 s in a debug build.
const DEFAULT_CASES: usize = 1500;

/// First byte of a generated input: how the rest is used.
const AS_WAV: u8 = 0;
const AS_RAW_SAMPLES: u8 = 1;

/// A WAV file from random header fields (some consistent, some not).
fn random_wav(rng: &mut FuzzRng) -> Vec<u8> {
    let pick = |rng: &mut FuzzRng, common: &[u32]| {
        if rng.random_bool(0.7) {
            common[rng.random_range(0..common.len())]
        } else {
            INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())]
        }
    };
    let tag = pick(rng, &[1, 3, 0xfffe, 2, 6]) as u16;
    let channels = pick(rng, &[1, 2, 3, 8, 64, 65]) as u16;
    let rate = pick(rng, &[8000, 16000, 44100, 48000, 1000, 999, 384_000, 384_001, 1, 11025]);
    let bits = pick(rng, &[8, 16, 24, 32, 12, 64]) as u16;
    let block = channels.wrapping_mul(bits / 8);
    let n = rng.random_range(0..3000);
    let mut data = random_bytes(rng, n);
    if tag == 3 && rng.random_bool(0.5) {
        // Mostly sane floats with a few special values.
        for chunk in data.chunks_exact_mut(4) {
            let v: f32 = match rng.random_range(0..40) {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => f32::MAX,
                _ => rng.random_range(-1.0..1.0),
            };
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    let declared = if rng.random_bool(0.7) { data.len() as u32 } else { pick(rng, &[0, 1, 100_000, 8_000_000]) };
    let mut fmt = Vec::new();
    fmt.extend(tag.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend(if rng.random_bool(0.8) { rate.wrapping_mul(block as u32) } else { rng.random() }.to_le_bytes());
    fmt.extend(block.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    if tag == 0xfffe {
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(bits.to_le_bytes());
        fmt.extend(3u32.to_le_bytes());
        fmt.extend([if rng.random_bool(0.5) { 1 } else { 3 }, 0]);
        fmt.extend(b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71");
    }
    let mut out = vec![AS_WAV];
    out.extend(b"RIFF");
    out.extend((4 + 8 + fmt.len() as u32 + 8 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    out.extend(b"data");
    out.extend(declared.to_le_bytes());
    out.extend(data);
    out
}

/// Spectrogram settings at `rate`, chosen by `h`.
fn settings(rate: u32, h: u64) -> AudioPreprocess {
    AudioPreprocess {
        sample_rate: rate,
        n_fft: [2, 64, 100, 400][(h & 3) as usize],
        hop_length: [1, 32, 160][(h >> 2) as usize % 3],
        n_mels: [1, 8, 80][(h >> 4) as usize % 3],
        chunk_seconds: [0.01, 0.05, 0.2][(h >> 6) as usize % 3],
    }
}

fn check_waveform(samples: &[f32], from: u32, h: u64) {
    let to = [16000, 8000, 22050, 44100, from, 999, 400_000][(h >> 8) as usize % 7];
    let resampled = match resample(samples, from, to) {
        Ok(r) => r,
        Err(AudioError::Resample { .. }) if !(1000..=384_000).contains(&to) => return,
        Err(e) => panic!("resampling a decoded waveform {from} -> {to} Hz failed: {e}"),
    };
    let want = (samples.len() as f64 * to as f64 / from as f64).round() as usize;
    assert_eq!(resampled.len(), want);
    assert!(resampled.iter().all(|x| x.is_finite()), "non-finite resampled output");
    let settings = settings(to, h);
    let Ok(mel) = LogMel::new(&settings) else { return };
    // Small spectrograms only, so the fuzzer stays fast in a debug build.
    if mel.frames() * mel.n_mels() > 50_000 || mel.frames() * settings.n_fft > 200_000 {
        return;
    }
    for window in windows(&resampled, mel.window_samples()).into_iter().take(3) {
        let features = mel.compute(window);
        assert_eq!(features.len(), mel.frames() * mel.n_mels());
        assert!(features.iter().all(|x| x.is_finite()), "non-finite log-mel");
    }
}

#[test]
fn fuzz_audio() {
    // WAV seeds get the "decode this" mode byte; `tests/fixtures/fuzz/audio/`
    // holds whole harness inputs (mode byte included): inputs that once crashed.
    let mut corpus: Vec<(String, Vec<u8>)> = fuzz_common::corpus(&["tests/fixtures/fuzz/wav", "tests/fixtures/audio"], &[".wav"])
        .into_iter()
        .map(|(name, bytes)| (name, [vec![AS_WAV], bytes].concat()))
        .collect();
    corpus.extend(fuzz_common::corpus(&["tests/fixtures/fuzz/audio"], &[".bin"]));
    fuzz(
        "audio",
        DEFAULT_CASES,
        &corpus,
        |rng, corpus| match rng.random_range(0..10) {
            0..=5 => {
                let mut input = corpus[rng.random_range(0..corpus.len())].1.clone();
                let mut body = input.split_off(1);
                fuzz_common::mutate_bytes(rng, &mut body, corpus);
                [input, body].concat()
            }
            6..=8 => random_wav(rng),
            _ => {
                let n = 4 * rng.random_range(0..2000);
                [vec![AS_RAW_SAMPLES], random_bytes(rng, n)].concat()
            }
        },
        |input| {
            let Some((&mode, body)) = input.split_first() else { return false };
            let h = hash(input);
            if mode == AS_RAW_SAMPLES {
                // Arbitrary bit patterns straight into the resampler: NaN and
                // infinities must be refused, never reach the FFT.
                let samples: Vec<f32> = body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                let from = [8000, 16000, 44100, 1, 0, 1000, 384_001][(h & 7) as usize % 7];
                return match resample(&samples, from, 16000) {
                    Ok(out) => {
                        assert!(samples.iter().all(|x| x.is_finite()));
                        out.iter().all(|x| x.is_finite())
                    }
                    Err(_) => false,
                };
            }
            match decode_wav(std::io::Cursor::new(body)) {
                Ok(wave) => {
                    assert!(!wave.samples.is_empty());
                    assert!(wave.samples.iter().all(|x| x.is_finite()), "non-finite decoded sample");
                    assert!((1000..=384_000).contains(&wave.sample_rate), "rate {}", wave.sample_rate);
                    assert!(wave.seconds() <= mmrt::limits::MAX_AUDIO_SECONDS);
                    check_waveform(&wave.samples, wave.sample_rate, h);
                    true
                }
                Err(e) => {
                    let _ = e.to_string();
                    false
                }
            }
        },
    );
}
