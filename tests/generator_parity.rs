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

mod common;

use mmrt::diffusion::{Noise, SchedulerConfig};
use mmrt::generate::{generate, Decoding, GenerationConfig, StepInput};
use mmrt::media::Media;
use mmrt::runtime::SessionConfig;
use mmrt::stages::generator::DiffusionSettings;
use mmrt::{Pipeline, Request};
use ndarray::ArrayD;

use common::golden::any_to_any as golden;
use common::{max_abs, runtime, tiny_dir, tiny_pipeline as pipeline, TempDir};

/// The `kind` tag of a scheduler config, as the goldens write it.
fn scheduler_kind(config: &SchedulerConfig) -> &'static str {
    match config {
        SchedulerConfig::Ddim(_) => "ddim",
        SchedulerConfig::EulerDiscrete(_) => "euler_discrete",
    }
}

#[test]
fn signal_hidden_states_and_conditioning_match_pytorch() {
    let g = golden();
    let case = g.request(true);
    let runtime = runtime();
    let mut decoder = common::decoder(&runtime, &tiny_dir(), SessionConfig::default());
    let prompt = &case.input_ids;
    let embeds = decoder.embed(prompt).unwrap();
    let config = GenerationConfig { max_new_tokens: case.max_new_tokens, ..Default::default() };
    let signals = mmrt::generate::SignalTokens { ids: g.signal.ids.clone() };
    let mut decoding = Decoding::new(&config, &[2]).with_signals(Some(&signals));
    let out = generate(&mut decoder, StepInput::Embeds(embeds), prompt, &mut decoding, |_| Ok(())).unwrap();
    assert_eq!(out.ids, case.output_ids, "greedy ids with the forced signal run equal PyTorch generate()");
    assert_eq!(out.signal_hidden.len(), 1, "one complete run");
    let hidden_diff = max_abs(&out.signal_hidden[0], &case.hidden);
    assert!(hidden_diff <= 1e-4, "hidden states at the signal tokens differ by {hidden_diff}");
    eprintln!("signal hidden states: max |rust - torch| = {hidden_diff:.2e}");

    // The output projector on PyTorch's hidden states, and on ours.
    let mut p = pipeline();
    let side = p.output_side().expect("the tiny bundle has an output side");
    let k = signals.ids.len();
    let want = &case.conditioning;
    let (cond, _) = side.projector_mut().project(&case.hidden, k).unwrap();
    assert_eq!(cond.shape(), &case.conditioning_shape[..]);
    let diff = max_abs(cond.as_slice().unwrap(), want);
    assert!(diff <= 1e-4, "output projector conditioning differs from PyTorch by {diff}");
    eprintln!("output projector conditioning: max |rust - torch| = {diff:.2e}");
    let (cond_ours, _) = side.projector_mut().project(&out.signal_hidden[0], k).unwrap();
    let diff = max_abs(cond_ours.as_slice().unwrap(), want);
    assert!(diff <= 1e-4, "conditioning from the Rust hidden states differs from PyTorch by {diff}");
}

#[test]
fn ddim_and_euler_latents_and_pixels_match_diffusers() {
    let g = golden();
    let case = g.request(true);
    let conditioning = ArrayD::from_shape_vec(case.conditioning_shape.clone(), case.conditioning.clone()).unwrap();
    let mut p = pipeline();
    let generator = p.output_side().unwrap().generator_mut();
    let cases = &g.denoise;
    let kinds: Vec<&str> = cases.values().map(|c| scheduler_kind(&c.scheduler)).collect();
    assert!(kinds.contains(&"ddim") && kinds.contains(&"euler_discrete"));
    assert!(cases.values().any(|c| c.guidance_scale > 1.0));
    assert!(cases.values().any(|c| c.guidance_scale <= 1.0));
    for (name, c) in cases {
        generator.set_scheduler(c.scheduler.clone()).unwrap();
        let settings = DiffusionSettings {
            steps: Some(c.steps),
            guidance_scale: Some(c.guidance_scale as f32),
            noise: Noise::Given(c.noise.clone()),
        };
        let (latents, step_ms) = generator.denoise(&conditioning, &settings, 0).unwrap();
        assert_eq!(step_ms.len(), settings.steps.unwrap());
        let diff = max_abs(&latents, &c.latents);
        assert!(diff <= 1e-3, "{name}: final latents differ from diffusers by {diff}");
        let Media::Image { pixels, width, height, channels } = generator.decode(latents).unwrap() else { panic!("image") };
        assert_eq!(vec![height as usize, width as usize, channels as usize], c.image_shape, "{name}");
        let want = &c.pixels;
        let worst = pixels.iter().zip(want).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 2, "{name}: pixels differ from the diffusers pipeline by {worst}/255");
        eprintln!("{name}: final latents max |rust - diffusers| = {diff:.2e}, pixels max diff {worst}/255");
    }
}

#[test]
fn signal_request_writes_the_pipelines_png_and_the_other_writes_nothing() {
    let g = golden();
    let e2e = &g.end_to_end;
    let denoise = g.denoise_case(&e2e.denoise);
    let case = g.request(true);
    assert_eq!(case.name, e2e.request);
    let mut p = pipeline();
    let dir = TempDir::new("signal");
    // The manifest's defaults (DDIM, steps, guidance) are the end-to-end golden's; only the noise is given.
    let request = Request::new(case.prompt.as_str())
        .with_max_new_tokens(case.max_new_tokens)
        .with_media_generation(DiffusionSettings { noise: Noise::Given(denoise.noise.clone()), ..Default::default() })
        .with_out_dir(dir.path());
    let out = p.run(&request, |_| Ok(())).unwrap();
    assert_eq!(out.token_ids, case.output_ids);
    assert_eq!(out.text, case.text, "text (signal tokens are special, not in the text)");
    assert_eq!(out.media.len(), 1);
    let path = out.media[0].path.clone().expect("written");
    assert_eq!(path, dir.join("image_generator_0.png"));
    assert_eq!(out.media[0].settings.steps, denoise.steps);
    assert_eq!(out.media[0].settings.guidance_scale as f64, denoise.guidance_scale);
    let png = image::open(&path).expect("a PNG").to_rgb8();
    let want = &denoise.pixels;
    assert_eq!(png.as_raw().len(), want.len());
    let worst = png.as_raw().iter().zip(want).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 2, "PNG pixels differ from the Python pipeline's by {worst}/255");
    eprintln!("end to end PNG: pixels max diff {worst}/255");
    for stage in ["output_projector", "denoise", "generator_decode"] {
        assert!(out.timings.get(stage).is_some(), "timing {stage}");
    }

    let silent = g.request(false);
    let dir = TempDir::new("silent");
    let request = Request::new(silent.prompt.as_str())
        .with_max_new_tokens(silent.max_new_tokens)
        .with_out_dir(dir.path());
    let out = p.run(&request, |_| Ok(())).unwrap();
    assert_eq!(out.token_ids, silent.output_ids);
    assert!(out.media.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file for a request without signal tokens");
}

#[test]
fn seeded_generation_is_reproducible() {
    let g = golden();
    let case = g.request(true);
    let mut p = pipeline();
    let run = |p: &mut Pipeline, seed| {
        let request = Request::new(case.prompt.as_str())
            .with_media_generation(DiffusionSettings { steps: Some(3), noise: Noise::Seed(seed), ..Default::default() });
        let out = p.run(&request, |_| Ok(())).unwrap();
        assert_eq!(out.media.len(), 1);
        out.media[0].media.clone()
    };
    let a = run(&mut p, 5);
    assert_eq!(a, run(&mut p, 5), "same seed, same image");
    assert_ne!(a, run(&mut p, 6), "another seed, another image");
}
