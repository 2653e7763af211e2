//! The vlm-shapes bundles on video: moving-shape clips (`.cache/video/shapes`,
//! written by `exporters/video/shapes_clips.py` during `exporters/vlm_shapes/build.sh`)
//! through the video stages (4 frames sampled uniformly, each encoded by the
//! image encoder, the image projector run per frame and its rows averaged:
//! `temporal: mean`), placed at the `<unused0>` video placeholder.
//!
//! * `models/vlm-shapes-f32`: the sampled indices, prompt ids and greedy ids equal
//!   the reference pipeline's (`tests/golden/vlm_shapes_video.json`: PyAV frames,
//!   onnxruntime encoder, PyTorch projector, rows averaged, transformers Gemma 3
//!   float32 `generate`);
//! * `models/vlm-shapes` (q4 decoder): the captions name the clip's shape and
//!   colour about as often as the reference does; `mmrt run --video --json` too.
//!
//! When a bundle or the clips are missing the tests say so and pass (set
//! `MMRT_REQUIRE_REAL=1` to make that a failure, as `.ci/run` does).

mod common;

use std::path::{Path, PathBuf};

use mmrt::{Pipeline, Request};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use common::bundles;
use common::golden::golden;
use common::{cli, root};

/// `tests/golden/vlm_shapes_video.json`.
#[derive(Debug, Deserialize)]
struct ShapesVideo {
    placeholder: String,
    frames: usize,
    default_prompt: String,
    max_new_tokens: usize,
    accuracy: Accuracy,
    clips: Vec<ClipCase>,
}

#[derive(Debug, Deserialize)]
struct Accuracy {
    shape: f64,
    colour: f64,
}

#[derive(Debug, Deserialize)]
struct ClipCase {
    file: String,
    sha256: String,
    shape: String,
    colour: String,
    caption: String,
    indices: Vec<u64>,
    prompt_ids: Vec<u32>,
    expected_ids: Vec<u32>,
    expected_text: String,
}

fn reference() -> ShapesVideo {
    golden("vlm_shapes_video.json")
}

/// `.cache/video/shapes`, when its clips are the ones the reference captioned.
#[track_caller]
fn clips(g: &ShapesVideo) -> Option<PathBuf> {
    let dir = root().join(".cache/video/shapes");
    let ready = g.clips.iter().all(|c| dir.join(&c.file).is_file());
    let dir = bundles::built(dir, ready, bundles::real_required(), "exporters/vlm_shapes/build.sh")?;
    for c in &g.clips {
        let bytes = std::fs::read(dir.join(&c.file)).expect("read clip");
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, c.sha256, "{}: not the clip the reference captioned; rebuild with `bash exporters/vlm_shapes/build.sh --force`", c.file);
    }
    Some(dir)
}

fn pipeline(dir: &Path) -> Pipeline {
    common::pipeline(dir, &common::session_config(2))
}

use common::shapes::named;

#[test]
fn reference_captions_name_most_clips() {
    let g = reference();
    assert_eq!((g.placeholder.as_str(), g.frames), ("<unused0>", 4));
    assert!(g.clips.len() >= 8, "{} clips", g.clips.len());
    let right = |c: &ClipCase| named(&c.expected_text) == (Some(c.shape.as_str()), Some(c.colour.as_str()));
    let n = g.clips.iter().filter(|c| right(c)).count();
    eprintln!("reference: shape {:.2}, colour {:.2}, both right on {n}/{}", g.accuracy.shape, g.accuracy.colour, g.clips.len());
    assert!(n * 10 >= g.clips.len() * 7, "the reference names shape and colour on only {n}/{} clips", g.clips.len());
}

#[test]
fn f32_bundle_video_ids_equal_reference() {
    let g = reference();
    let Some(dir) = bundles::vlm_shapes("vlm-shapes-f32") else { return };
    let Some(clips) = clips(&g) else { return };
    let mut p = pipeline(&dir);
    assert_eq!(p.bundle().manifest.prompt.default_prompt.as_deref(), Some(g.default_prompt.as_str()));
    let mut failures = Vec::new();
    for case in &g.clips {
        let request = Request::new(g.default_prompt.clone()).with_videos([clips.join(&case.file)]).with_max_new_tokens(g.max_new_tokens);
        let out = p.run(&request, |_| Ok(())).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let indices: Vec<u64> = out.input_report.videos.iter().flat_map(|v| v.indices.clone()).collect();
        eprintln!("{}: {:?} (reference {:?}, truth {:?})", case.file, out.text, case.expected_text, case.caption);
        if indices != case.indices {
            failures.push(format!("{}: indices {indices:?}, reference {:?}", case.file, case.indices));
        }
        if out.prompt_ids != case.prompt_ids {
            failures.push(format!("{}: prompt ids differ ({} vs {} ids)", case.file, out.prompt_ids.len(), case.prompt_ids.len()));
        }
        if out.token_ids != case.expected_ids {
            failures.push(format!("{}: {:?}, reference {:?}", case.file, out.text, case.expected_text));
        }
    }
    assert!(failures.is_empty(), "{} difference(s) from the reference:\n  {}", failures.len(), failures.join("\n  "));
}

#[test]
fn q4_bundle_video_captions_name_shape_and_colour() {
    let g = reference();
    let Some(dir) = bundles::vlm_shapes("vlm-shapes") else { return };
    let Some(clips) = clips(&g) else { return };
    let mut p = pipeline(&dir);
    let (mut shapes, mut colours) = (0, 0);
    for case in &g.clips {
        let request = Request::new(g.default_prompt.clone()).with_videos([clips.join(&case.file)]);
        let out = p.run(&request, |_| Ok(())).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let (shape, colour) = named(&out.text);
        eprintln!("{}: {:?} (reference {:?}, truth {:?})", case.file, out.text, case.expected_text, case.caption);
        shapes += usize::from(shape == Some(case.shape.as_str()));
        colours += usize::from(colour == Some(case.colour.as_str()));
    }
    let n = g.clips.len();
    eprintln!("q4 video: shape {shapes}/{n}, colour {colours}/{n} (reference f32: shape {:.2}, colour {:.2})", g.accuracy.shape, g.accuracy.colour);
    // Chance: 1/5 shapes, 1/6 colours; the q4 decoder may lose a clip or two against the f32 reference.
    assert!(shapes * 10 >= n * 7 && colours * 10 >= n * 7, "q4 video: shape {shapes}/{n}, colour {colours}/{n}, want >= 70% each");
}

/// `mmrt run --bundle models/vlm-shapes --video CLIP --json` (the bundle's default prompt):
/// the caption names the clip's shape and colour, and the report gives the sampled frames.
#[test]
fn cli_run_video_names_shape_and_colour() {
    let g = reference();
    let Some(dir) = bundles::vlm_shapes("vlm-shapes") else { return };
    let Some(clips) = clips(&g) else { return };
    // The first clip the reference captions right.
    let case = g
        .clips
        .iter()
        .find(|c| named(&c.expected_text) == (Some(c.shape.as_str()), Some(c.colour.as_str())))
        .expect("a clip the reference captions right");
    let clip = clips.join(&case.file);
    let args = ["run", "--bundle", dir.to_str().unwrap(), "--video", clip.to_str().unwrap(), "--json"];
    let out = cli::mmrt(&args);
    assert!(out.ok, "mmrt {} failed:\n{}", args.join(" "), out.stderr);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("--json output");
    let text = json["text"].as_str().expect("text");
    let indices: Vec<u64> = json["inputs"]["videos"][0]["indices"].as_array().expect("inputs.videos[0].indices").iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(indices, case.indices, "{}: sampled frames", case.file);
    assert_eq!(named(text), (Some(case.shape.as_str()), Some(case.colour.as_str())), "{}: {text:?} (truth {:?}, reference {:?})", case.file, case.caption, case.expected_text);
}
