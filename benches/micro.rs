//! Criterion micro-benchmarks of the orchestrator's own hot paths:
//!
//! * `preprocess/jpeg_1920x1080`: decode a 1920×1080 JPEG photo, resize, crop
//!   and normalize it to the tiny bundle's encoder input (the same work
//!   `benches/peers/peers.py` times with Pillow + numpy, for the ratio);
//! * `sampling/*`: one token from a 262,144-entry vocabulary, greedy and with
//!   temperature + top-k + top-p;
//! * `kv_cache/*`: handing step n's `present` tensors to step n+1's `past`
//!   inputs by move (what mmrt does) against copying them (what it avoids),
//!   and one whole decode step of the tiny decoder for scale;
//! * `tokenizer/*` (when `models/gemma3-270m-q4-text` is built): opening
//!   Gemma 3's compact tokenizer, and encoding a 4 KiB prompt with it and with
//!   the `tokenizers` crate on the same bundle's `tokenizer.json`.
//!
//! `cargo bench --bench micro`; under `cargo test --all-targets` criterion runs
//! each benchmark once (test mode), so CI stays fast.

use std::borrow::Cow;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mmrt::generate::{DecoderModel, Sampler, Sampling, StepInput};
use mmrt::manifest::{Modality, Preprocess};
use mmrt::runtime::{OrtRuntime, SessionConfig, SessionPlan};
use mmrt::stages::decoder::Decoder;
use mmrt::stages::graph::StageLoader;
use mmrt::stages::io::KvCache;
use mmrt::Bundle;
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor};
use rand::{Rng, SeedableRng};

/// Gemma 3's vocabulary size: the large-vocabulary case the issue names.
const VOCAB: usize = 262_144;
/// Gemma 3's published sampling defaults (its generation_config.json).
const SAMPLING: Sampling = Sampling::Random { temperature: 1.0, top_k: Some(64), top_p: 0.95 };
/// Cached positions when the KV cache is handed over.
const KV_POSITIONS: usize = 64;

fn tiny() -> Bundle {
    Bundle::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny")).expect("models/tiny")
}

fn preprocess(c: &mut Criterion) {
    let bundle = tiny();
    let encoder = bundle.manifest.encoder(Modality::Image).expect("tiny has an image encoder");
    let Preprocess::Image(cfg) = encoder.preprocess.clone() else { panic!("an image encoder has image preprocessing") };
    let dir = std::env::temp_dir().join(format!("mmrt-micro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("photo.jpg");
    mmrt_cli::bench::write_synthetic_photo(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    c.bench_function("preprocess/jpeg_1920x1080", |b| {
        b.iter(|| {
            let rgb = mmrt::preprocess::image::decode_image(black_box(&bytes)).unwrap();
            mmrt::preprocess::image::preprocess(std::slice::from_ref(&rgb), &cfg).unwrap()
        })
    });
}

fn sampling(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let logits: Vec<f32> = (0..VOCAB).map(|_| rng.random::<f32>() * 20.0 - 10.0).collect();
    let mut group = c.benchmark_group("sampling");
    let mut greedy = Sampler::new(Sampling::Greedy, 0);
    group.bench_function("greedy_262k", |b| b.iter(|| greedy.sample(black_box(&logits))));
    let mut filtered = Sampler::new(SAMPLING, 0);
    group.bench_function("top_k64_top_p0.95_262k", |b| b.iter(|| filtered.sample(black_box(&logits))));
    group.finish();
}

/// A cache of `KV_POSITIONS` positions shaped like the decoder's past inputs.
fn filled_cache(template: &KvCache) -> KvCache {
    let values = template
        .values()
        .iter()
        .map(|v| {
            let mut shape: Vec<usize> = mmrt::tensor::dims(v).iter().map(|&d| d as usize).collect();
            shape[2] = KV_POSITIONS;
            let n = shape.iter().product();
            Tensor::from_array((shape, vec![0.5f32; n])).unwrap().into_dyn()
        })
        .collect();
    KvCache::new(values, KV_POSITIONS)
}

fn kv_cache(c: &mut Criterion) {
    let runtime = OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)");
    let bundle = tiny();
    let stage = bundle.manifest.decoder().clone();
    let config = SessionConfig { threads: Some(1), ..SessionConfig::default() };
    let plan = SessionPlan::uniform(config);
    let mut decoder = Decoder::open(&StageLoader::new(&runtime, &bundle, &plan), &stage).expect("tiny decoder");
    let template = decoder.new_cache().unwrap();
    let names = stage.kv_cache.past_names();

    let mut group = c.benchmark_group("kv_cache");
    // Move: the present values become the next step's inputs; no tensor data is touched.
    group.bench_function("handover_move", |b| {
        b.iter_batched(
            || filled_cache(&template),
            |cache| {
                let inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
                    names.iter().zip(cache.into_values()).map(|(n, v)| (n.as_str().into(), v.into())).collect();
                inputs
            },
            BatchSize::SmallInput,
        )
    });
    // Copy: what a runtime that reads presents back to the host and rebuilds pasts pays.
    group.bench_function("handover_copy", |b| {
        b.iter_batched(
            || filled_cache(&template),
            |cache| {
                let copies: Vec<DynValue> = cache
                    .values()
                    .iter()
                    .map(|v| {
                        let (shape, data) = v.try_extract_tensor::<f32>().unwrap();
                        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                        Tensor::from_array((shape, data.to_vec())).unwrap().into_dyn()
                    })
                    .collect();
                let inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
                    names.iter().zip(copies).map(|(n, v)| (n.as_str().into(), v.into())).collect();
                (cache, inputs)
            },
            BatchSize::SmallInput,
        )
    });
    // One decode step of the tiny decoder (embed + forward over the handed-over cache), for scale.
    let mut logits = Vec::new();
    group.bench_function("tiny_decode_step", |b| {
        b.iter_batched(
            || filled_cache(&template),
            |cache| {
                decoder.step(StepInput::Ids(&[5]), cache, &mut logits).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn tokenizer(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gemma3-270m-q4-text");
    if !dir.join("tokenizer.bin").is_file() {
        eprintln!("tokenizer/*: skipped, {} is not built (bash exporters/gemma3/build.sh)", dir.display());
        return;
    }
    let compact_path = dir.join("tokenizer.bin");
    let compact = mmrt::tokenizer::CompactTokenizer::open(&compact_path).expect("tokenizer.bin");
    let crate_form = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer.json");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let prompt: String = readme.chars().take(4096).collect();
    let mut group = c.benchmark_group("tokenizer");
    group.bench_function("open_compact_gemma3", |b| b.iter(|| mmrt::tokenizer::CompactTokenizer::open(black_box(&compact_path)).unwrap()));
    group.bench_function("encode_4k_compact", |b| b.iter(|| compact.encode(black_box(&prompt), true)));
    group.bench_function("encode_4k_tokenizers_crate", |b| b.iter(|| crate_form.encode(black_box(prompt.as_str()), true).unwrap()));
    group.finish();
}

/// The GGUF block kernels on SmolLM2 135M's layer shapes: one decode step's
/// projections of its 30 layers (q/k/v stacked, o, gate/up stacked, down:
/// ~64 MiB of Q4_1, so the weights stream from memory as in a real step),
/// one activation row, serial (the operator splits the rows over threads).
fn quant_kernels(c: &mut Criterion) {
    use mmrt::quant::{matmul, BlockMatrix, BlockType, Scratch, BLOCK_TYPES};
    let smollm2: Vec<(usize, usize)> = (0..30).flat_map(|_| [(960, 576), (576, 576), (3072, 576), (576, 1536)]).collect();
    // Gemma-3-270M-sized (18 layers, q/k/v and gate/up stacked) with K a multiple of 256 for every type
    let layers: Vec<(usize, usize)> = (0..18).flat_map(|_| [(1536, 768), (768, 1024), (4096, 768), (768, 2048)]).collect();
    let mut group = c.benchmark_group("quant");
    let run = |group: &mut criterion::BenchmarkGroup<_>, kind: BlockType, name: &str, shapes: &[(usize, usize)]| {
        let weights: Vec<Vec<u8>> = shapes
            .iter()
            .map(|&(n, k)| {
                let mut bytes: Vec<u8> = (0..n * kind.row_bytes(k).unwrap()).map(|i| (i * 131 % 251) as u8).collect();
                for block in bytes.chunks_exact_mut(kind.block_bytes()) {
                    for &at in kind.half_fields() {
                        block[at..at + 2].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
                    }
                }
                bytes
            })
            .collect();
        let xs: Vec<Vec<f32>> = shapes.iter().map(|&(_, k)| (0..k).map(|i| (i % 7) as f32 - 3.0).collect()).collect();
        let mut ys: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0f32; n]).collect();
        let mut scratch = Scratch::default();
        group.throughput(criterion::Throughput::Bytes(weights.iter().map(|w| w.len() as u64).sum()));
        group.bench_function(format!("{kind}_{name}_decode"), |b| {
            b.iter(|| {
                for (((w, &(n, k)), x), y) in weights.iter().zip(shapes).zip(&xs).zip(ys.iter_mut()) {
                    let w = BlockMatrix::new(kind, w, n, k).unwrap();
                    matmul(&w, black_box(x), y, &mut scratch, |t, f| (0..t).for_each(f));
                }
            })
        });
    };
    for kind in [BlockType::Q4_1, BlockType::Q8_0] {
        run(&mut group, kind, "smollm2_step", &smollm2);
    }
    for kind in BLOCK_TYPES {
        run(&mut group, kind, "gemma_sized_layers", &layers);
    }
    group.finish();
}

fn config() -> Criterion {
    // Short windows: the development machines are small and shared.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = preprocess, sampling, kv_cache, tokenizer, quant_kernels }
criterion_main!(benches);
