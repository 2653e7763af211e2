//! The output side of the tiny bundle against PyTorch and diffusers
//! (`tests/golden/any_to_any.json`, written by `exporters/tiny/build.sh`):
//!
//! * hidden states at the signal tokens (Rust generation loop, forced run) and
//!   the output projector's conditioning within 1e-4 of PyTorch;
//! * final latents of the Rust DDIM and Euler loops over the ONNX denoiser
//!   within 1e-3 of `StableDiffusionPipeline`'s, with and without guidance,
//!   from the same initial noise, and their decoded pixels within 2/255;
//! * end to end: the signal request writes a PNG whose pixels are within 2/255
//!   of the Python pipeline's image; the other request writes nothing.

use std::path::{Path, PathBuf};

use mmrt::diffusion::{Noise, SchedulerConfig};
use mmrt::generate::{generate, Decoding, GenerationConfig, StepInput};
use mmrt::media::Media;
use mmrt::runtime::{OrtRuntime, SessionConfig, SessionPlan};
use mmrt::stages::graph::StageLoader;
use mmrt::stages::decoder::Decoder;
use mmrt::stages::generator::GenerationSettings;
use mmrt::{Bundle, Pipeline, Request};
use ndarray::ArrayD;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden() -> Value {
    let text = std::fs::read_to_string(root().join("tests/golden/any_to_any.json")).expect("golden file");
    serde_json::from_str(&text).expect("golden JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("float list").iter().map(|x| x.as_f64().expect("float") as f32).collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape").iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn pipeline() -> Pipeline {
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)");
    let bundle = Bundle::open(root().join("models/tiny")).expect("tiny bundle");
    let config = SessionConfig { threads: Some(1), ..SessionConfig::default() };
    Pipeline::load(&runtime, bundle, &config).expect("pipeline")
}

fn golden_request(g: &Value, emits: bool) -> Value {
    g["signal"]["requests"].as_array().unwrap().iter().find(|r| r["emits_signal"] == emits).expect("request").clone()
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmrt-generator-parity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn signal_hidden_states_and_conditioning_match_pytorch() {
    let g = golden();
    let case = golden_request(&g, true);
    let runtime = OrtRuntime::load(None).unwrap();
    let bundle = Bundle::open(root().join("models/tiny")).unwrap();
    let plan = SessionPlan::uniform(SessionConfig::default());
    let mut decoder = Decoder::open(&StageLoader::new(&runtime, &bundle, &plan), bundle.manifest.decoder()).unwrap();
    let prompt = ids(&case["input_ids"]);
    let embeds = decoder.embed(&prompt).unwrap();
    let config = GenerationConfig { max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize, ..Default::default() };
    let signals = mmrt::generate::SignalTokens { ids: ids(&g["signal"]["ids"]) };
    let mut decoding = Decoding::new(&config, &[2]).with_signals(Some(&signals));
    let out = generate(&mut decoder, StepInput::Embeds(embeds), &prompt, &mut decoding, |_| Ok(())).unwrap();
    assert_eq!(out.ids, ids(&case["output_ids"]), "greedy ids with the forced signal run equal PyTorch generate()");
    assert_eq!(out.signal_hidden.len(), 1, "one complete run");
    let hidden_diff = max_abs(&out.signal_hidden[0], &floats(&case["hidden"]));
    assert!(hidden_diff <= 1e-4, "hidden states at the signal tokens differ by {hidden_diff}");
    eprintln!("signal hidden states: max |rust - torch| = {hidden_diff:.2e}");

    // The output projector on PyTorch's hidden states, and on ours.
    let mut p = pipeline();
    let side = p.output_side().expect("the tiny bundle has an output side");
    let k = signals.ids.len();
    let want = floats(&case["conditioning"]);
    let (cond, _) = side.projector_mut().project(&floats(&case["hidden"]), k).unwrap();
    assert_eq!(cond.shape(), &shape(&case["conditioning_shape"])[..]);
    let diff = max_abs(cond.as_slice().unwrap(), &want);
    assert!(diff <= 1e-4, "output projector conditioning differs from PyTorch by {diff}");
    eprintln!("output projector conditioning: max |rust - torch| = {diff:.2e}");
    let (cond_ours, _) = side.projector_mut().project(&out.signal_hidden[0], k).unwrap();
    let diff = max_abs(cond_ours.as_slice().unwrap(), &want);
    assert!(diff <= 1e-4, "conditioning from the Rust hidden states differs from PyTorch by {diff}");
}

#[test]
fn ddim_and_euler_latents_and_pixels_match_diffusers() {
    let g = golden();
    let case = golden_request(&g, true);
    let conditioning =
        ArrayD::from_shape_vec(shape(&case["conditioning_shape"]), floats(&case["conditioning"])).unwrap();
    let mut p = pipeline();
    let generator = p.output_side().unwrap().generator_mut();
    let cases = g["denoise"].as_object().unwrap();
    let kinds: Vec<&str> = cases.values().map(|c| c["scheduler"]["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"ddim") && kinds.contains(&"euler_discrete"));
    assert!(cases.values().any(|c| c["guidance_scale"].as_f64().unwrap() > 1.0));
    assert!(cases.values().any(|c| c["guidance_scale"].as_f64().unwrap() <= 1.0));
    for (name, c) in cases {
        let config: SchedulerConfig = serde_json::from_value(c["scheduler"].clone()).unwrap();
        generator.set_scheduler(config).unwrap();
        let settings = GenerationSettings {
            steps: Some(c["steps"].as_u64().unwrap() as usize),
            guidance_scale: Some(c["guidance_scale"].as_f64().unwrap() as f32),
            noise: Noise::Given(floats(&c["noise"])),
        };
        let (latents, step_ms) = generator.denoise(&conditioning, &settings, 0).unwrap();
        assert_eq!(step_ms.len(), settings.steps.unwrap());
        let diff = max_abs(&latents, &floats(&c["latents"]));
        assert!(diff <= 1e-3, "{name}: final latents differ from diffusers by {diff}");
        let Media::Image { pixels, width, height, channels } = generator.decode(latents).unwrap() else { panic!("image") };
        assert_eq!(vec![height as usize, width as usize, channels as usize], shape(&c["image_shape"]), "{name}");
        let want: Vec<u8> = c["pixels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        let worst = pixels.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 2, "{name}: pixels differ from the diffusers pipeline by {worst}/255");
        eprintln!("{name}: final latents max |rust - diffusers| = {diff:.2e}, pixels max diff {worst}/255");
    }
}

#[test]
fn signal_request_writes_the_pipelines_png_and_the_other_writes_nothing() {
    let g = golden();
    let e2e = &g["end_to_end"];
    let denoise = &g["denoise"][e2e["denoise"].as_str().unwrap()];
    let case = golden_request(&g, true);
    assert_eq!(case["name"], e2e["request"]);
    let mut p = pipeline();
    let dir = temp_dir("signal");
    // The manifest's defaults (DDIM, steps, guidance) are the end-to-end golden's; only the noise is given.
    let request = Request::new(case["prompt"].as_str().unwrap())
        .with_max_new_tokens(case["max_new_tokens"].as_u64().unwrap() as usize)
        .with_media_generation(GenerationSettings { noise: Noise::Given(floats(&denoise["noise"])), ..Default::default() })
        .with_out_dir(&dir);
    let out = p.run(&request, |_| Ok(())).unwrap();
    assert_eq!(out.token_ids, ids(&case["output_ids"]));
    assert_eq!(out.text, case["text"].as_str().unwrap(), "text (signal tokens are special, not in the text)");
    assert_eq!(out.media.len(), 1);
    let path = out.media[0].path.clone().expect("written");
    assert_eq!(path, dir.join("image_generator_0.png"));
    assert_eq!(out.media[0].settings.steps, denoise["steps"].as_u64().unwrap() as usize);
    assert_eq!(out.media[0].settings.guidance_scale as f64, denoise["guidance_scale"].as_f64().unwrap());
    let png = image::open(&path).expect("a PNG").to_rgb8();
    let want: Vec<u8> = denoise["pixels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    assert_eq!(png.as_raw().len(), want.len());
    let worst = png.as_raw().iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 2, "PNG pixels differ from the Python pipeline's by {worst}/255");
    eprintln!("end to end PNG: pixels max diff {worst}/255");
    for stage in ["output_projector", "denoise", "generator_decode"] {
        assert!(out.timings.get(stage).is_some(), "timing {stage}");
    }

    let silent = golden_request(&g, false);
    let dir = temp_dir("silent");
    let request = Request::new(silent["prompt"].as_str().unwrap())
        .with_max_new_tokens(silent["max_new_tokens"].as_u64().unwrap() as usize)
        .with_out_dir(&dir);
    let out = p.run(&request, |_| Ok(())).unwrap();
    assert_eq!(out.token_ids, ids(&silent["output_ids"]));
    assert!(out.media.is_empty());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file for a request without signal tokens");
}

#[test]
fn seeded_generation_is_reproducible() {
    let g = golden();
    let case = golden_request(&g, true);
    let mut p = pipeline();
    let run = |p: &mut Pipeline, seed| {
        let request = Request::new(case["prompt"].as_str().unwrap())
            .with_media_generation(GenerationSettings { steps: Some(3), noise: Noise::Seed(seed), ..Default::default() });
        let out = p.run(&request, |_| Ok(())).unwrap();
        assert_eq!(out.media.len(), 1);
        out.media[0].media.clone()
    };
    let a = run(&mut p, 5);
    assert_eq!(a, run(&mut p, 5), "same seed, same image");
    assert_ne!(a, run(&mut p, 6), "another seed, another image");
}
