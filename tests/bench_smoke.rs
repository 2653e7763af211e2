//! `mmrt bench` end to end on the tiny bundle, kept fast (2 runs, 1 warm-up,
//! few tokens): the JSON, CSV and SVG it writes hold every figure the issue
//! asks for, the figures are consistent with each other, and bad options fail
//! with a clear error. No assertion here is about speed.

mod common;

use std::path::{Path, PathBuf};

use common::cli::mmrt;
use common::TINY;
use serde_json::Value;

const RUNS: usize = 2;

fn out_dir(name: &str) -> PathBuf {
    common::target_tmp("bench_smoke", name)
}

/// Run the bench once with all three outputs; returns (stdout, json, csv, svg).
fn bench_tiny(dir: &Path, extra: &[&str]) -> (String, Value, String, String) {
    let (json, csv, svg) = (dir.join("out.json"), dir.join("out.csv"), dir.join("out.svg"));
    let runs = RUNS.to_string();
    let mut args = vec!["bench", "--bundle", TINY, "--runs", &runs, "--warmup", "1", "--new-tokens", "4", "--threads", "1"];
    args.extend_from_slice(extra);
    let (j, c, s) = (json.to_str().unwrap(), csv.to_str().unwrap(), svg.to_str().unwrap());
    args.extend_from_slice(&["--json", j, "--csv", c, "--svg", s]);
    let out = mmrt(&args);
    assert!(out.ok, "mmrt bench failed:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("valid JSON");
    (out.stdout, json, std::fs::read_to_string(&csv).unwrap(), std::fs::read_to_string(&svg).unwrap())
}

fn summary<'a>(v: &'a Value, what: &str) -> &'a Value {
    for key in ["median", "min", "max"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{what}.{key} missing in {v}"));
        assert!(x.is_finite() && x >= 0.0, "{what}.{key} = {x}");
    }
    assert!(v["min"].as_f64() <= v["median"].as_f64() && v["median"].as_f64() <= v["max"].as_f64(), "{what}: {v}");
    v
}

#[test]
fn bench_writes_every_figure_as_json_csv_and_svg() {
    let dir = out_dir("cpu");
    let (stdout, json, csv, svg) = bench_tiny(&dir, &[]);

    // Environment and settings.
    let env = &json["environment"];
    for key in ["cpu_model", "logical_cores", "os", "onnxruntime_version", "onnxruntime_library", "bundle", "quantization"] {
        assert!(!env[key].is_null(), "environment.{key} missing: {env}");
    }
    assert_eq!(env["bundle"], "tiny");
    assert_eq!(env["threads"], 1);
    assert_eq!(env["quantization"], "float32");
    assert_eq!(json["settings"]["runs"], RUNS);
    assert!(json["settings"]["images"][0].as_str().unwrap().contains("synthetic 1920x1080"));
    assert!(json["memory_bandwidth"]["bytes_per_s"]["median"].as_f64().unwrap() > 0.0);
    assert!(json["decoder_weights"]["bytes"].as_u64().unwrap() > 0);
    assert!(json["decoder_weights"]["method"].as_str().unwrap().contains("initializers"));
    assert!(json["memory_method"].as_str().unwrap().contains("VmHWM"));

    // The CPU provider's figures: per-stage medians, generic stage names from the pipeline.
    let cpu = &json["providers"][0];
    assert_eq!(cpu["ep"], "cpu");
    let f = &cpu["figures"];
    let stages = f["stages_ms"].as_object().expect("stages_ms object");
    let names: Vec<&str> = stages.keys().map(String::as_str).collect();
    assert_eq!(names, ["preprocess", "vision_encoder", "projector", "embed", "prefill", "decode"], "pipeline order");
    for (name, s) in stages {
        assert_eq!(summary(s, name)["samples"].as_array().unwrap().len(), RUNS);
    }
    for key in ["load_warm_ms", "prefill_tokens_per_s", "time_to_first_token_ms", "decode_tokens_per_s", "decode_ms_per_token"] {
        summary(&f[key], key);
    }
    assert!(f["load_cold_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(f["new_tokens"], 4);
    if cfg!(target_os = "linux") {
        assert!(f["peak_rss_bytes"].as_u64().unwrap() >= f["rss_after_load_bytes"].as_u64().unwrap());
    }

    // Consistency, run by run: the first token comes after every prompt stage.
    let ttft = f["time_to_first_token_ms"]["samples"].as_array().unwrap();
    for (i, t) in ttft.iter().enumerate() {
        let prompt_stages: f64 = ["preprocess", "vision_encoder", "projector", "embed", "prefill"]
            .iter()
            .map(|s| stages[*s]["samples"][i].as_f64().unwrap())
            .sum();
        assert!(t.as_f64().unwrap() >= prompt_stages, "run {i}: ttft {t} < prompt stages {prompt_stages}");
    }
    // decode tokens/s and ms/token describe the same runs.
    let (tps, mspt) = (&f["decode_tokens_per_s"]["samples"], &f["decode_ms_per_token"]["samples"]);
    for i in 0..RUNS {
        let product = tps[i].as_f64().unwrap() * mspt[i].as_f64().unwrap();
        assert!((product - 1000.0).abs() < 1e-6 * 1000.0, "tokens/s x ms/token = {product}");
    }

    // Roofline: weight bytes x tokens/s / bandwidth.
    let r = &cpu["roofline"];
    let expected = r["weight_bytes_per_token"].as_f64().unwrap() * f["decode_tokens_per_s"]["median"].as_f64().unwrap()
        / json["memory_bandwidth"]["bytes_per_s"]["median"].as_f64().unwrap();
    let fraction = r["fraction"].as_f64().unwrap();
    assert!(fraction > 0.0 && (fraction - expected).abs() <= 1e-9 * expected.max(1.0), "{r}");
    assert_eq!(cpu["medians"]["roofline_fraction_of_bandwidth"].as_f64(), Some(fraction));
    assert!(cpu["medians"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);

    // Process start -> first token: three fresh `mmrt run --max-tokens 1`
    // processes, each of which loads the bundle, so none is much faster than
    // the in-process cold load measured above. "Much": half, since that load
    // is a single sample and a busy 2-core machine stretches one sample by
    // a third (CI saw 195 ms against processes of 145 ms); a process that
    // skipped the load would be several times faster.
    let start = summary(&cpu["start"]["warm_ms"], "start.warm_ms");
    assert_eq!(start["samples"].as_array().unwrap().len(), 3, "{start}");
    let load = f["load_cold_ms"].as_f64().unwrap();
    assert!(start["min"].as_f64().unwrap() >= 0.5 * load, "process start {start} vs in-process load {load} ms");
    assert!(cpu["start"]["cold_ms"].is_null(), "cold start is measured with --cold-start only");

    // CSV: a header and one row per figure, all with the header's column count.
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["bundle", "quantization", "cpu_model"]);
    let rows: Vec<&str> = lines.collect();
    for figure in ["load_cold", "load_warm", "vision_encoder", "prefill", "time_to_first_token", "decode", "peak_rss", "roofline_fraction", "start_to_first_token_warm"] {
        assert!(rows.iter().any(|r| r.contains(&format!(",cpu,{figure},"))), "no CSV row for {figure}");
    }
    for row in &rows {
        assert_eq!(row.split(',').count(), header.len(), "row {row}");
    }

    // SVG: well-formed XML, an <svg> root, bars and the stage names.
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(doc.descendants().filter(|n| n.has_tag_name("rect")).count() > names.len());
    let labels: Vec<&str> = doc.descendants().filter_map(|n| n.text()).map(str::trim).collect();
    for name in names {
        assert!(labels.contains(&name), "stage {name} not labelled in the chart");
    }

    // The table on stdout.
    for needle in ["memory bandwidth", "decode [tokens/s]", "time_to_first_token [ms]", "roofline_fraction"] {
        assert!(stdout.contains(needle), "table lacks {needle}:\n{stdout}");
    }
}

#[test]
fn provider_that_cannot_register_is_skipped_with_a_reason() {
    let dir = out_dir("skip");
    let (stdout, json, _, _) = bench_tiny(&dir, &["--ep", "cpu,cuda", "--prompt-tokens", "8"]);
    let cuda = &json["providers"][1];
    assert_eq!(cuda["ep"], "cuda");
    match cuda["skipped"].as_str() {
        Some(reason) => {
            assert!(reason.contains("CUDA"), "{reason}");
            assert!(stdout.contains("cuda: skipped"), "{stdout}");
        }
        // A library with CUDA and a GPU: measured like the CPU.
        None => {
            summary(&cuda["figures"]["decode_tokens_per_s"], "cuda decode");
        }
    };
    assert_eq!(json["settings"]["prompt_text_tokens"], 8);
}

#[test]
fn bad_options_fail_clearly_before_measuring() {
    let dir = out_dir("errors");
    let missing_dir = dir.join("no/such/folder/out.json");
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--bundle", TINY, "--runs", "0"], "--runs"),
        (&["bench", "--bundle", TINY, "--new-tokens", "1"], "--new-tokens"),
        (&["bench", "--bundle", TINY, "--ep", "gpu"], "--ep"),
        (&["bench", "--bundle", TINY, "--prompt", "x", "--prompt-tokens", "3"], "cannot be used with"),
        (&["bench", "--bundle", "/nonexistent/bundle"], "/nonexistent/bundle"),
        (&["bench", "--bundle", TINY, "--image", "/nonexistent/photo.jpg"], "/nonexistent/photo.jpg"),
        (&["bench", "--bundle", TINY, "--json", missing_dir.to_str().unwrap()], "folder does not exist"),
        (&["bench", "--bundle", TINY, "--runs", "1", "--warmup", "0", "--prompt-tokens", "500"], "context"),
    ];
    for (args, needle) in cases {
        let out = mmrt(args);
        let stderr = &out.stderr;
        assert!(!out.ok, "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}
