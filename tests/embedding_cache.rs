//! The embedding cache: a picture seen before skips the encoder and gives the
//! very embeddings the encoder gave (bit for bit), in memory and on disk
//! across pipelines; a cache with a budget of 0 never hits. Checked on the
//! tiny bundle's image branch and on the tiny video bundle's frames (a clip
//! repeated in one request, decoded frames handed in as `MediaInput::Frames`).

mod common;

use std::sync::Arc;

use mmrt::manifest::Modality;
use mmrt::pipeline::cache::EmbeddingCache;
use mmrt::pipeline::request::{MediaOptions, StageTimings};
use mmrt::pipeline::{LoadOptions, MediaInput, Pipeline};
use mmrt::runtime::SessionPlan;
use mmrt::Bundle;

use common::{image_fixture, root, runtime, session_config, TempDir};


fn pipeline_with(name: &str, cache: Arc<EmbeddingCache>) -> Pipeline {
    let options = LoadOptions { sessions: SessionPlan::uniform(session_config(1)), embedding_cache: Some(cache), ..LoadOptions::default() };
    let bundle = Bundle::open(root().join("models").join(name)).expect(name);
    Pipeline::load_with(&runtime(), bundle, &options).expect("pipeline")
}

fn encode(pipeline: &mut Pipeline, modality: Modality, inputs: &[MediaInput]) -> (ndarray::Array2<f32>, mmrt::pipeline::cache::CacheStats) {
    encode_with(pipeline, modality, inputs, &MediaOptions::default())
}

fn encode_with(pipeline: &mut Pipeline, modality: Modality, inputs: &[MediaInput], options: &MediaOptions) -> (ndarray::Array2<f32>, mmrt::pipeline::cache::CacheStats) {
    let mut timings = StageTimings::default();
    let embedded = pipeline.encode_media_with(modality, inputs, options, &mut timings).expect("encode");
    (embedded.rows().expect("rows"), embedded.cache)
}

#[test]
fn a_repeated_image_skips_the_encoder_and_gives_identical_rows() {
    let image = MediaInput::File(image_fixture("photo_97x61.png"));
    let other = MediaInput::File(image_fixture("gray_40x40.png"));
    // Reference: the encoder itself, with the cache off.
    let off = Arc::new(EmbeddingCache::in_memory(0));
    let (reference, stats) = encode(&mut pipeline_with("tiny", off.clone()), Modality::Image, &[image.clone()]);
    assert_eq!((stats.hits, stats.misses), (0, 1), "a cache of budget 0 never hits");

    let cache = Arc::new(EmbeddingCache::default());
    let mut pipeline = pipeline_with("tiny", cache.clone());
    let (first, stats) = encode(&mut pipeline, Modality::Image, &[image.clone(), other.clone()]);
    assert_eq!((stats.hits, stats.misses), (0, 2));
    let (again, stats) = encode(&mut pipeline, Modality::Image, &[other.clone(), image.clone(), image.clone()]);
    assert_eq!((stats.hits, stats.misses), (3, 0), "every picture was seen before");
    let rows = reference.nrows();
    assert_eq!(first.slice(ndarray::s![..rows, ..]), reference.view(), "a miss is the encoder's own output");
    assert_eq!(again.slice(ndarray::s![rows..2 * rows, ..]), reference.view(), "a hit gives the encoder's rows bit for bit");
    assert_eq!(again.slice(ndarray::s![2 * rows.., ..]), reference.view());
    assert_eq!(cache.stats().hits, 3);
}

#[test]
fn the_disk_cache_serves_another_pipeline() {
    let dir = TempDir::new("embedding-cache");
    let image = MediaInput::File(image_fixture("a_32.png"));
    let first_cache = Arc::new(EmbeddingCache::default().with_dir(dir.path()).expect("cache dir"));
    let (reference, stats) = encode(&mut pipeline_with("tiny", first_cache), Modality::Image, &[image.clone()]);
    assert_eq!(stats.misses, 1);
    // A new process would start with an empty memory cache and the same directory.
    let second_cache = Arc::new(EmbeddingCache::default().with_dir(dir.path()).expect("cache dir"));
    let (rows, stats) = encode(&mut pipeline_with("tiny", second_cache), Modality::Image, &[image]);
    assert_eq!((stats.hits, stats.disk_hits, stats.misses), (1, 1, 0), "{stats:?}");
    assert_eq!(rows, reference);
}

#[test]
fn repeated_video_frames_are_encoded_once() {
    let bundle = root().join("models/tiny-video");
    let clip = root().join(".cache/video/clips/carphone_pristine.mp4");
    if !bundle.join("bundle.json").is_file() || !clip.is_file() {
        assert!(!common::bundles::real_required(), "models/tiny-video or the clips are missing: run `bash exporters/tiny/build.sh --video`");
        eprintln!("skipping: models/tiny-video or the clips are missing (bash exporters/tiny/build.sh --video)");
        return;
    }
    let sampling = mmrt::video::Sampling::Uniform { frames: 4 };
    let frames: Vec<_> = {
        let mut frames = Vec::new();
        mmrt::video::read_sampled(&mmrt::video::VideoSpec::File(clip.clone()), &sampling, &mut |f| Ok(frames.push(f))).expect("decode");
        frames
    };
    let window = MediaInput::Frames { name: "window".into(), frames: frames.clone() };
    let off = Arc::new(EmbeddingCache::in_memory(0));
    let (reference, _) = encode(&mut pipeline_with("tiny-video", off), Modality::Video, &[window.clone()]);

    let mut pipeline = pipeline_with("tiny-video", Arc::new(EmbeddingCache::default()));
    let (rows, stats) = encode(&mut pipeline, Modality::Video, &[window.clone(), window.clone()]);
    assert_eq!((stats.hits, stats.misses), (4, 4), "the second copy of each frame is a hit");
    let half = rows.nrows() / 2;
    assert_eq!(rows.slice(ndarray::s![..half, ..]), reference.view());
    assert_eq!(rows.slice(ndarray::s![half.., ..]), reference.view());
    // The same clip from its file, sampled alike: the decoded frames are the ones handed in, so every frame hits.
    let options = MediaOptions { video_sampling: Some(sampling) };
    let (from_file, stats) = encode_with(&mut pipeline, Modality::Video, &[MediaInput::File(clip)], &options);
    assert_eq!((stats.hits, stats.misses), (4, 0), "{stats:?}");
    assert_eq!(from_file, reference);
}
