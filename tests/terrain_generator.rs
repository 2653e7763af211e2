//! The terrain consistency generator (`models/terrain`, built by `exporters/terrain/build.sh`
//! from PyPI adaptive-terrain-diffusion 0.4.2) against its parity data in `models/terrain/reference/`:
//!
//! * one step from the noise the package drew equals `TerrainGenerator.generate(...)`;
//! * 3 and 4 steps equal mmrt's numpy reference of multistep consistency sampling;
//! * `mmrt run`: `--steps N` makes N graph calls (one timing each in `--json`), the PNG is 16-bit
//!   gray and agrees with the `.f32` heights, which equal the library's for the same seed;
//! * bad requests and bad manifests fail cleanly (one `error:` line, no panic).
//!
//! Skipped with a note when the bundle is not built, unless `MMRT_REQUIRE_REAL` is set (CI).

mod common;

use std::path::{Path, PathBuf};

use common::{bundles, cli};
use mmrt::diffusion::Noise;
use mmrt::runtime::SessionPlan;
use mmrt::stages::consistency::{ConsistencyGenerator, ConsistencySettings};
use mmrt::Bundle;
use serde::Deserialize;
use serde_json::Value;

/// Largest |mmrt - reference| height accepted (the heights span 0 to 22.2).
const TOLERANCE: f32 = 1e-3;

#[derive(Deserialize)]
struct Index {
    heights_shape: [usize; 2],
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    difficulty: i64,
    steps: usize,
    sigmas: Vec<f64>,
    noise: String,
    heights: String,
}

fn index(dir: &Path) -> Index {
    let path = dir.join("reference/index.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("reference/index.json")).expect("index.json")
}

/// A raw little-endian float32 file.
fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{}: not whole float32s", path.display());
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn generator(dir: &Path) -> ConsistencyGenerator {
    let bundle = Bundle::open(dir).expect("models/terrain");
    ConsistencyGenerator::open(&common::runtime(), &bundle, &SessionPlan::uniform(common::session_config(2))).expect("open the generator")
}

/// Generate every reference case with `steps` in `which` from its noise; returns (case, max abs diff).
fn parity(dir: &Path, which: impl Fn(usize) -> bool) -> Vec<(String, f32)> {
    let index = index(dir);
    let mut generator = generator(dir);
    let mut measured = Vec::new();
    for case in index.cases.iter().filter(|c| which(c.steps)) {
        let ref_dir = dir.join("reference");
        let settings =
            ConsistencySettings { steps: Some(case.steps), condition: Some(case.difficulty), noise: Noise::Given(read_f32(&ref_dir.join(&case.noise))) };
        let out = generator.generate(&settings).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (mine, theirs) in out.used.sigmas.iter().zip(&case.sigmas) {
            assert!((mine - theirs).abs() <= 1e-12 * theirs, "{}: noise levels {:?} vs {:?}", case.name, out.used.sigmas, case.sigmas);
        }
        assert_eq!(out.timings.step_ms.len(), case.steps, "{}: one graph call per step", case.name);
        let [h, w] = index.heights_shape;
        assert_eq!((out.height_map.height as usize, out.height_map.width as usize), (h, w));
        let diff = common::max_abs(&out.height_map.heights, &read_f32(&ref_dir.join(&case.heights)));
        eprintln!("{}: max |mmrt - reference| = {diff:.3e}", case.name);
        measured.push((case.name.clone(), diff));
    }
    measured
}

#[track_caller]
fn assert_within(measured: &[(String, f32)], count: usize) {
    assert!(measured.len() >= count, "expected at least {count} reference cases, found {}", measured.len());
    let bad: Vec<_> = measured.iter().filter(|(_, d)| d.is_nan() || *d > TOLERANCE).collect();
    assert!(bad.is_empty(), "heights differ by more than {TOLERANCE}: {bad:?}");
}

#[test]
fn one_step_equals_the_packages_generate() {
    let Some(dir) = bundles::terrain() else { return };
    assert_within(&parity(&dir, |steps| steps == 1), 4);
}

#[test]
fn multistep_equals_the_numpy_reference() {
    let Some(dir) = bundles::terrain() else { return };
    let measured = parity(&dir, |steps| steps > 1);
    assert_within(&measured, 2);
}

fn run_json(dir: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["run", "--bundle", dir.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "--json", "--threads", "2"];
    args.extend_from_slice(extra);
    let run = cli::mmrt(&args);
    assert!(run.ok, "mmrt {args:?} failed: {}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("--json output: {e}\n{}", run.stdout))
}

#[test]
fn steps_flag_sets_the_graph_calls_and_files_agree() {
    let Some(dir) = bundles::terrain() else { return };
    let tmp = common::TempDir::new("terrain");
    for steps in [1usize, 2, 4] {
        let out = tmp.join(&format!("steps{steps}"));
        let json = run_json(&dir, &out, &["--steps", &steps.to_string(), "--seed", "9", "--difficulty", "64"]);
        assert_eq!(json["steps"], steps);
        assert_eq!(json["timings"]["step_ms"].as_array().expect("step_ms").len(), steps, "{json}");
        assert_eq!(json["sigmas"].as_array().expect("sigmas").len(), steps);
        assert_eq!(json["shape"], serde_json::json!([128, 128]));
        assert_eq!(json["condition"]["value"], 64);
        let heights = read_f32(Path::new(json["heights"].as_str().expect("heights path")));
        assert_eq!(heights.len(), 128 * 128);
        check_png(Path::new(json["png"].as_str().expect("png path")), &heights, json["height_range"].as_f64().unwrap());
        // The command line's seeded run is the library's.
        let mut generator = generator(&dir);
        let lib = generator.generate(&ConsistencySettings { steps: Some(steps), condition: Some(64), noise: Noise::Seed(9) }).unwrap();
        let diff = common::max_abs(&lib.height_map.heights, &heights);
        assert!(diff <= 1e-5, "steps {steps}: mmrt run and the library differ by {diff}");
    }
    // The bundle's defaults: one step at difficulty 50.
    let json = run_json(&dir, &tmp.join("defaults"), &[]);
    assert_eq!((json["steps"].as_u64(), json["condition"]["value"].as_i64()), (Some(1), Some(50)));
}

/// The PNG is 128x128 16-bit gray, each level `round(h / height_range * 65535)`.
fn check_png(path: &Path, heights: &[f32], range: f64) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(image.color(), image::ColorType::L16, "{}", path.display());
    let gray = image.into_luma16();
    assert_eq!(gray.dimensions(), (128, 128));
    for (level, &h) in gray.as_raw().iter().zip(heights) {
        assert_eq!(*level, (h as f64 / range * 65535.0).round() as u16);
    }
}

/// A copy of models/terrain (graph and manifest) with an edited bundle.json.
fn edited(tmp: &common::TempDir, name: &str, dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let copy = tmp.join(name);
    bundles::copy_bundle(dir, &copy);
    bundles::edit_manifest(&copy, |json| edit(&mut json["stages"][0]));
    copy
}

#[test]
fn bad_requests_and_manifests_fail_cleanly() {
    let Some(dir) = bundles::terrain() else { return };
    let tmp = common::TempDir::new("terrain-bad");
    let out = tmp.s("out");
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--bundle", d, "--out-dir", out.as_str()];
        args.extend_from_slice(extra);
        cli::mmrt(&args)
    };
    let sigma = edited(&tmp, "sigma", &dir, |s| s["sigma_min"] = 80.0.into());
    let shape = edited(&tmp, "shape", &dir, |s| s["sample_shape"] = serde_json::json!([1, 64, 64]));
    let steps = edited(&tmp, "steps", &dir, |s| s["steps"] = 0.into());
    let range = edited(&tmp, "range", &dir, |s| s["condition"]["default"] = 101.into());
    let on = |bundle: &Path| bundle.to_str().unwrap().to_string();
    let rows = vec![
        ("--difficulty 0".to_string(), run(&["--difficulty", "0"]), cli::strings(&["difficulty must be a whole number from 1 to 100, got 0"])),
        ("--difficulty 101".into(), run(&["--difficulty", "101"]), cli::strings(&["from 1 to 100, got 101"])),
        ("--difficulty 2.5".into(), run(&["--difficulty", "2.5"]), cli::strings(&["--difficulty"])),
        ("--steps 0".into(), run(&["--steps", "0"]), cli::strings(&["steps must be at least 1, got 0"])),
        ("--steps 1001".into(), run(&["--steps", "1001"]), cli::strings(&["--steps must be in 1..=1000", "MAX_CONSISTENCY_STEPS"])),
        ("--prompt".into(), run(&["--prompt", "hills"]), cli::strings(&["is a consistency generator", "no --prompt"])),
        ("no --out-dir".into(), cli::mmrt(&["run", "--bundle", d]), cli::strings(&["pass --out-dir DIR"])),
        (
            "--difficulty on an LLM bundle".into(),
            cli::mmrt(&["run", "--bundle", common::TINY, "--prompt", "hi", "--difficulty", "3"]),
            cli::strings(&["--difficulty applies to consistency generator bundles"]),
        ),
        (
            "sigma_min >= sigma_max".into(),
            cli::mmrt(&["run", "--bundle", &on(&sigma), "--out-dir", &out]),
            cli::strings(&["invalid manifest", "`sigma_min` (80) must be smaller than `sigma_max` (80)"]),
        ),
        (
            "sample_shape unlike the graph".into(),
            cli::mmrt(&["run", "--bundle", &on(&shape), "--out-dir", &out]),
            cli::strings(&["tensor \"noisy\"", "[?, 1, 64, 64] (from `sample_shape` in bundle.json)", "[?, 1, 128, 128] declared by the graph"]),
        ),
        ("steps 0 in the manifest".into(), cli::mmrt(&["run", "--bundle", &on(&steps), "--out-dir", &out]), cli::strings(&["`steps` must be in 1..=1000"])),
        (
            "default outside the range".into(),
            cli::mmrt(&["run", "--bundle", &on(&range), "--out-dir", &out]),
            cli::strings(&["`condition.default` 101 is outside"]),
        ),
    ];
    cli::assert_all_fail(rows);
}
