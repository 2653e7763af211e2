//! Execution providers through the `mmrt` binary on this CPU-only machine:
//! bad provider options and placements are clear errors; a GPU provider the
//! library lacks is a reported fallback (or, with `--strict-ep`, an error),
//! never a panic; `run --json` and `inspect` report where every stage's nodes
//! landed, read from ONNX Runtime's placement log; a manifest's `sessions`
//! block is checked like the flags.

mod common;

use common::bundles::{copy_bundle, edit_manifest};
use common::cli::{assert_all_fail, mmrt, run_bundle, strings};
use common::{tiny_dir, TempDir};

#[test]
fn bad_provider_flags_name_what_is_wrong() {
    let tiny = tiny_dir();
    let bundle = tiny.to_str().unwrap();
    let case = |what: &str, args: &[&str], needles: &[&str]| {
        let mut all = vec!["inspect", "--bundle", bundle];
        all.extend_from_slice(args);
        (what.to_string(), mmrt(&all), strings(needles))
    };
    assert_all_fail(vec![
        case("unknown option", &["--ep", "cuda:device=1"], &["no option \"device\"", "device_id"]),
        case("bad value", &["--ep", "cuda:gpu_mem_limit=lots"], &["gpu_mem_limit", "byte count"]),
        case("option without a value", &["--ep", "tensorrt:trt_fp16_enable"], &["no '='"]),
        case("unknown provider", &["--ep", "gpu"], &["unknown execution provider \"gpu\""]),
        case("CPU takes no options", &["--ep", "cpu:device_id=0"], &["its options: none"]),
        case("unknown stage", &["--ep-stage", "visionx=cuda"], &["\"visionx\"", "vision_encoder"]),
        case("per-stage bad option", &["--ep-stage", "vision_encoder=coreml:MLComputeUnits=GPU"], &["MLComputeUnits", "CPUAndGPU"]),
        case("per-stage option for another provider", &["--stage", "decoder:ep.trt_fp16_enable=1"], &["decoder", "cpu has no option \"trt_fp16_enable\""]),
        case("strict on a library without CUDA", &["--ep", "cuda", "--strict-ep"], &["cuda", "does not include CUDAExecutionProvider", "setup-ort-gpu"]),
    ]);
}

#[test]
fn a_missing_gpu_provider_falls_back_with_its_reason_and_placement_is_reported() {
    let tiny = tiny_dir();
    let out = run_bundle(&tiny, "hi", &[], &["--max-tokens", "2", "--ep", "cuda:device_id=0", "--ep-stage", "projector=cpu", "--json"]);
    assert!(out.ok, "a fallback is not an error: {}", out.stderr);
    assert!(out.stderr.contains("CUDAExecutionProvider"), "the fallback is said on stderr: {}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("run --json prints JSON");
    let report = &json["execution_provider"];
    assert_eq!(report["requested"], "cuda");
    assert_eq!(report["active"], "cpu");
    let stages = report["stages"].as_array().expect("a placement per opened graph");
    let decoder = stages.iter().find(|s| s["stage"] == "decoder").expect("the decoder's placement");
    assert_eq!(decoder["requested"], "cuda");
    assert_eq!(decoder["registered"], serde_json::json!(["cpu"]), "CUDA did not register, the CPU behind it did");
    assert!(decoder["fallback_reason"].as_str().unwrap().contains("CPU build"), "{decoder}");
    let placement = &decoder["placement"];
    assert_eq!(placement["known"], true, "read from ONNX Runtime's placement log: {placement}");
    let providers = placement["per_provider"].as_array().unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["provider"], "CPUExecutionProvider");
    assert!(providers[0]["nodes"].as_u64().unwrap() > 10, "{placement}");
    let projector = stages.iter().find(|s| s["stage"] == "projector").expect("the projector's placement");
    assert_eq!(projector["requested"], "cpu", "--ep-stage placed it apart");
    assert!(projector["fallback_reason"].is_null());
}

#[test]
fn inspect_lists_each_stage_placement() {
    let tiny = tiny_dir();
    let out = mmrt(&["inspect", "--bundle", tiny.to_str().unwrap()]);
    assert!(out.ok, "{}", out.stderr);
    for stage in ["decoder", "vision_encoder", "projector"] {
        let line = out.stdout.lines().find(|l| l.starts_with("placement") && l.split_whitespace().nth(1) == Some(stage));
        let line = line.unwrap_or_else(|| panic!("no placement line for {stage}:\n{}", out.stdout));
        assert!(line.contains("CPUExecutionProvider") && line.contains("providers: cpu"), "{line}");
    }
}

#[test]
fn the_manifest_sessions_block_is_checked_like_the_flags() {
    let dir = TempDir::new("providers-manifest");
    let bundle = dir.path().join("tiny");
    copy_bundle(&tiny_dir(), &bundle);
    edit_manifest(&bundle, |json| {
        json["sessions"] = serde_json::json!({"vision_encoder": {"ep": "cuda", "ep_options": {"device_id": 0, "enable_cuda_graph": true}}});
    });
    let ok = mmrt(&["inspect", "--bundle", bundle.to_str().unwrap()]);
    assert!(ok.ok, "numbers and booleans are accepted as option values: {}", ok.stderr);
    assert!(ok.stdout.contains("cuda did not register"), "{}", ok.stdout);
    edit_manifest(&bundle, |json| {
        json["sessions"] = serde_json::json!({"vision_encoder": {"ep": "cuda", "ep_options": {"gpu_memory": "2GiB"}}});
    });
    let bad = mmrt(&["inspect", "--bundle", bundle.to_str().unwrap()]);
    assert_all_fail(vec![("manifest option".into(), bad, strings(&["vision_encoder", "no option \"gpu_memory\""]))]);
}
