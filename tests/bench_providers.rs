//! `mmrt bench` with several execution providers on the tiny bundle: one that
//! cannot run here (CUDA on a CPU-only machine) is reported with its reason
//! in the table, the JSON and the CSV, without losing the CPU figures; the
//! command fails, clearly, only when no provider could be measured. On a
//! machine where CUDA runs, the same tests check its device figures instead.

mod common;

use std::path::Path;

use common::cli::{assert_fails, mmrt, Outcome};
use common::TINY;
use serde_json::Value;

/// `mmrt bench` on the tiny bundle, kept short, with `--ep EPS` and JSON and
/// CSV written to `dir`; returns the outcome and the JSON (when written).
fn bench(dir: &Path, eps: &str) -> (Outcome, Option<Value>, String) {
    let (json, csv) = (dir.join("out.json"), dir.join("out.csv"));
    let args = [
        "bench", "--bundle", TINY, "--ep", eps, "--runs", "1", "--warmup", "0", "--new-tokens", "2", "--threads", "1",
        "--start-runs", "0", "--json", json.to_str().unwrap(), "--csv", csv.to_str().unwrap(),
    ];
    let out = mmrt(&args);
    assert!(!out.stderr.contains("panicked"), "{eps}: {}", out.stderr);
    let json = std::fs::read_to_string(&json).ok().map(|t| serde_json::from_str(&t).expect("valid JSON"));
    (out, json, std::fs::read_to_string(&csv).unwrap_or_default())
}

/// A provider that was not measured carries its status and a reason everywhere.
#[track_caller]
fn assert_reported_with_reason(p: &Value, stdout: &str, csv: &str) -> String {
    let (ep, status) = (p["ep"].as_str().unwrap(), p["status"].as_str().unwrap());
    assert!(status == "skipped" || status == "failed", "{p}");
    let reason = p[status].as_str().unwrap_or_else(|| panic!("{ep}: no reason under \"{status}\": {p}"));
    assert!(!reason.trim().is_empty(), "{p}");
    assert!(p.get("figures").is_none() && p.get("medians").is_none(), "{p}");
    assert!(stdout.lines().any(|l| l == format!("{ep}: {status}: {reason}")), "table lacks the {ep} row:\n{stdout}");
    assert!(csv.contains(&format!(",{ep},{status},")), "CSV lacks the {ep} row:\n{csv}");
    reason.to_string()
}

#[test]
fn cpu_figures_survive_a_gpu_provider_that_cannot_run() {
    let dir = common::target_tmp("bench_providers", "cpu_cuda");
    let (out, json, csv) = bench(&dir, "cpu,cuda");
    assert!(out.ok, "one provider measured is a success:\n{}", out.stderr);
    let json = json.expect("--json written");
    let providers = json["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);

    // The CPU: every figure, its roofline against the host bandwidth, no device figures.
    let cpu = &providers[0];
    assert_eq!((cpu["ep"].as_str(), cpu["status"].as_str()), (Some("cpu"), Some("measured")));
    assert!(cpu["figures"]["decode_tokens_per_s"]["median"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["medians"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0, "{cpu}");
    assert_eq!(cpu["roofline"]["bandwidth_of"], mmrt_cli::bench::Roofline::HOST);
    assert_eq!(cpu["figures"]["onnxruntime_library"], json["environment"]["onnxruntime_library"]);
    assert!(cpu["figures"].get("device_bandwidth").is_none() && cpu["figures"].get("device_memory").is_none(), "{cpu}");
    assert!(out.stdout.contains("cpu (") && out.stdout.contains("decode [tokens/s]"), "{}", out.stdout);
    assert!(csv.contains(",cpu,decode,tokens/s,"), "{csv}");

    let cuda = &providers[1];
    assert_eq!(cuda["ep"], "cuda");
    if cuda["status"] == "measured" {
        // A GPU build and a GPU: device figures measured or each with why, roofline against the device.
        let f = &cuda["figures"];
        for key in ["device_bandwidth", "device_memory"] {
            assert!(f[key].is_object(), "cuda lacks {key}: {f}");
        }
        if f["device_bandwidth"]["bytes_per_s"]["median"].as_f64().is_some_and(|b| b > 0.0) {
            assert_eq!(cuda["roofline"]["bandwidth_of"], mmrt_cli::bench::Roofline::DEVICE);
        }
        return;
    }
    let reason = assert_reported_with_reason(cuda, &out.stdout, &csv);
    assert!(reason.contains("CUDA"), "the reason names the provider: {reason}");
}

#[test]
fn no_provider_measured_fails_clearly_and_still_writes_each_reason() {
    // CoreML exists only in Apple builds: never measured on Linux.
    if cfg!(target_os = "macos") {
        return;
    }
    let dir = common::target_tmp("bench_providers", "none");
    let (out, json, csv) = bench(&dir, "coreml");
    assert_fails("bench --ep coreml", &out, &["no execution provider could be measured", "coreml skipped:"]);
    let json = json.expect("the JSON is written before the command fails");
    let reason = assert_reported_with_reason(&json["providers"][0], &out.stdout, &csv);
    assert!(out.stderr.contains(&reason), "the error repeats the reason: {}", out.stderr);
}

#[test]
fn a_provider_that_fails_while_measuring_is_reported_failed() {
    // The CPU registers, then the request does not fit the tiny decoder's
    // context: the worker's own error becomes the row's reason.
    let dir = common::target_tmp("bench_providers", "failed");
    let (json, csv) = (dir.join("out.json"), dir.join("out.csv"));
    let out = mmrt(&[
        "bench", "--bundle", TINY, "--ep", "cpu", "--runs", "1", "--warmup", "0", "--prompt-tokens", "500", "--start-runs", "0",
        "--json", json.to_str().unwrap(), "--csv", csv.to_str().unwrap(),
    ]);
    assert_fails("bench --prompt-tokens 500", &out, &["no execution provider could be measured (cpu failed: ", "context"]);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cpu = &json["providers"][0];
    assert_eq!(cpu["status"], "failed", "{cpu}");
    let reason = assert_reported_with_reason(cpu, &out.stdout, &std::fs::read_to_string(&csv).unwrap());
    assert!(reason.contains("context"), "{reason}");
}

#[test]
fn every_gpu_provider_is_reported_whatever_happens_to_it() {
    let dir = common::target_tmp("bench_providers", "gpus");
    let (out, json, csv) = bench(&dir, "cuda,tensorrt,coreml");
    let json = json.expect("--json written");
    let providers = json["providers"].as_array().unwrap();
    let eps: Vec<&str> = providers.iter().map(|p| p["ep"].as_str().unwrap()).collect();
    assert_eq!(eps, ["cuda", "tensorrt", "coreml"], "one entry per provider asked for, in order");
    let measured = providers.iter().filter(|p| p["status"] == "measured").count();
    for p in providers.iter().filter(|p| p["status"] != "measured") {
        assert_reported_with_reason(p, &out.stdout, &csv);
    }
    if measured == 0 {
        assert_fails("bench --ep cuda,tensorrt,coreml", &out, &["no execution provider could be measured", "cuda ", "tensorrt ", "coreml "]);
    } else {
        assert!(out.ok, "{measured} provider(s) measured is a success:\n{}", out.stderr);
    }
}

/// `.ci/gpu-check` on a machine without a usable NVIDIA driver (an
/// `nvidia-smi` that fails stands in for one, so the test is the same on a
/// GPU machine): it says so and exits 3 before downloading or building.
#[cfg(unix)]
#[test]
fn gpu_check_skips_clearly_without_a_gpu() {
    let dir = common::target_tmp("bench_providers", "gpu_check");
    let smi = dir.join("nvidia-smi");
    common::executable_script(&smi, "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let script = common::root().join(".ci/gpu-check");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("bash").arg(&script).args(args).env("PATH", &path).env("MMRT_GPU_CHECK_OUT", dir.join("out")).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("skipped: no NVIDIA GPU/driver found (nvidia-smi lists no GPU: NVIDIA-SMI has failed"), "{text}");
    assert!(text.contains("nothing was downloaded or built"), "{text}");
    assert!(!dir.join("out").exists(), "nothing written");
    let (code, text) = run(&["--no-such-flag"]);
    assert_eq!(code, Some(2), "{text}");
    let (code, text) = run(&["--help"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Exit status: 0 every check passed"), "{text}");
}
