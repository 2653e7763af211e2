//! End-to-end and preprocessing timings on the tiny bundle, reported as
//! medians (min–max) over repeated runs after warm-up.
//!
//! `cargo bench --bench pipeline` (set MMRT_BENCH_RUNS to change the run count).
//! Numbers from these shared machines are noisy: compare medians measured
//! side by side in one run, never absolute values across machines.

use std::path::Path;
use std::time::Instant;

use mmrt::manifest::{Preprocess, Stage};
use mmrt::runtime::{OrtRuntime, SessionConfig};
use mmrt::{Bundle, Pipeline, Request};

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn report(name: &str, samples: Vec<f64>, unit: &str) {
    let (med, min, max) = median_min_max(samples);
    println!("{name:<28} median {med:>9.3} {unit}  (min {min:.3}, max {max:.3})");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("MMRT_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)");
    let bundle = Bundle::open(root.join("models/tiny")).expect("bundle");

    // Image preprocessing of a 1920x1080 photo-sized input to the encoder size.
    let cfg = bundle
        .manifest
        .stages
        .iter()
        .find_map(|s| match s {
            Stage::ModalityEncoder(e) => match &e.preprocess {
                Preprocess::Image(p) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("image encoder");
    let big = image::RgbImage::from_fn(1920, 1080, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8]));
    let mut samples = Vec::new();
    for i in 0..runs + 3 {
        let t = Instant::now();
        let out = mmrt::preprocess::image::preprocess(std::slice::from_ref(&big), &cfg).expect("preprocess");
        std::hint::black_box(out);
        if i >= 3 {
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    report("preprocess 1920x1080", samples, "ms");

    let config = SessionConfig { threads: Some(1), ..SessionConfig::default() };
    let mut pipeline = Pipeline::load(&runtime, bundle, &config).expect("pipeline");
    let request = Request::new("Describe the image.")
        .with_images([root.join("tests/fixtures/images/photo_97x61.png")])
        .with_max_new_tokens(32);
    let mut per_stage: Vec<(String, Vec<f64>)> = Vec::new();
    let mut tok_s = Vec::new();
    for i in 0..runs + 3 {
        let out = pipeline.run(&request, |_| Ok(())).expect("run");
        if i < 3 {
            continue;
        }
        for (name, ms) in &out.timings.0 {
            match per_stage.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(*ms),
                None => per_stage.push((name.clone(), vec![*ms])),
            }
        }
        let decode_ms = out.timings.get("decode").unwrap_or(0.0);
        tok_s.push((out.token_ids.len() - 1) as f64 / (decode_ms / 1e3));
    }
    println!("tiny bundle, 1 thread, 1 image, 32 new tokens, {runs} runs:");
    for (name, v) in per_stage {
        report(&format!("  {name}"), v, "ms");
    }
    report("  decode", tok_s, "tok/s");
}
