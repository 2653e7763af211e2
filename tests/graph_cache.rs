//! The optimized-graph cache (`MMRT_GRAPH_CACHE=1`, `mmrt::runtime::graph_cache`):
//! the first run writes an entry (optimized graph + prepacked weights in a
//! mapped data file) into the cache directory, the next run opens it, and
//! both generate exactly the ids of a run without the cache; a corrupt entry
//! is removed and the bundle's own graph used; with the cache off nothing is
//! written. On the tiny bundle (MatMul weights) and SmolLM2 (MatMulNBits).

mod common;

use std::path::{Path, PathBuf};

use common::bundles;
use serde_json::Value;

/// `mmrt run -vv --json` of `bundle` with the cache `on` in `cache`: (ids, stderr).
fn run(bundle: &Path, cache: &Path, on: bool) -> (Vec<u64>, String) {
    let bundle = bundle.to_str().unwrap();
    let args = ["run", "-vv", "--bundle", bundle, "--prompt", "The lighthouse keeper", "--max-tokens", "12", "--json", "--threads", "2"];
    let mut cmd = common::cli::command(&args);
    cmd.env("MMRT_CACHE_DIR", cache).env("MMRT_GRAPH_CACHE", if on { "1" } else { "0" });
    let out = common::cli::output(cmd);
    assert!(out.ok, "mmrt run failed: {}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("run --json");
    let ids = json["token_ids"].as_array().expect("token_ids").iter().map(|v| v.as_u64().unwrap()).collect();
    (ids, out.stderr)
}

/// The complete entries in the cache (directories holding a model and its data).
fn entries(cache: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(cache.join("graphs")) else { return Vec::new() };
    let mut found: Vec<PathBuf> = dirs
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.join("model.onnx").is_file() && d.join("model.data").is_file())
        .collect();
    found.sort();
    found
}

fn check(bundle: &Path, tmp: &common::TempDir) {
    let cache = tmp.path().join("cache");
    let (reference, _) = run(bundle, &cache, false);
    assert!(entries(&cache).is_empty(), "the cache is off by default: nothing written");

    let (first, log) = run(bundle, &cache, true);
    assert_eq!(first, reference, "{}: the run that writes the entry", bundle.display());
    assert!(log.contains("cached for later starts"), "{log}");
    let written = entries(&cache);
    assert!(!written.is_empty(), "an entry is written");

    let (second, log) = run(bundle, &cache, true);
    assert_eq!(second, reference, "{}: the run that maps the entry", bundle.display());
    assert!(log.contains("prepacked weights mapped from"), "{log}");
    assert_eq!(entries(&cache), written, "a hit writes nothing new");

    // A corrupt entry: removed, the bundle's graph used, same ids.
    for entry in &written {
        std::fs::write(entry.join("model.onnx"), b"not a graph").unwrap();
    }
    let (third, log) = run(bundle, &cache, true);
    assert_eq!(third, reference, "{}: after a corrupt entry", bundle.display());
    assert!(log.contains("did not open"), "{log}");
    assert!(entries(&cache).is_empty(), "the corrupt entries are gone");
}

#[test]
fn tiny_bundle_through_the_cache_gives_the_same_ids() {
    let tmp = common::TempDir::new("graph-cache-tiny");
    check(&common::tiny_dir(), &tmp);
}

#[test]
fn smollm2_through_the_cache_gives_the_same_ids() {
    let Some(bundle) = bundles::gguf("smollm2-135m-text", true) else { return };
    let tmp = common::TempDir::new("graph-cache-smollm2");
    check(&bundle, &tmp);
}
