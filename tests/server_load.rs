//! `mmrt serve` under load, loopback only and bounded (tests/server/load.py,
//! the official client's AsyncOpenAI): 500 requests at concurrency 16 on the
//! tiny bundle and 50 at concurrency 4 on SmolLM2, with no failed or
//! malformed answer (429/503 are counted apart), resident memory at the end
//! within 5% of what it was after the first 50 answers (10 of SmolLM2's 50: no leak); then 100
//! clients that hang up mid-stream leave no stuck generation: the queue
//! drains, nothing runs, the cancellations show in /metrics, and the next
//! request is answered. Latency percentiles and tokens/s are printed.

mod common;

use std::process::Command;

use common::server::{built_bundle, python_with_openai, Server};
use serde_json::Value;

const KEY: &str = "load-key";

fn phase(python: &std::path::Path, server: &Server, args: &[&str]) -> Value {
    let pid = server.pid().to_string();
    let out = Command::new(python)
        .arg(common::root().join("tests/server/load.py"))
        .args(args)
        .args(["--base", &server.base_url, "--key", KEY, "--pid", &pid])
        .output()
        .expect("run load.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("load.py {args:?} printed no result:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("load.py {}: {result:#}", args.join(" "));
    assert!(out.status.success(), "load.py {args:?} failed: {result:#}");
    result
}

fn check_load(result: &Value) {
    assert_eq!(result["failed"], 0, "failed or malformed answers: {result:#}");
    let growth = result["rss_growth"].as_f64().expect("rss measured");
    assert!(growth <= 0.05, "RSS grew {:.1}% after the checkpoint: {result:#}", growth * 100.0);
}

#[test]
fn load_then_hang_ups_leave_the_server_healthy() {
    let Some(python) = python_with_openai() else { return };
    let tiny = format!("tiny={}", common::root().join("models/tiny").display());
    let smol = built_bundle("smollm2-135m").map(|d| format!("smol={}", d.display()));
    if smol.is_none() {
        assert!(!common::bundles::real_required(), "models/smollm2-135m is not built");
    }
    let mut args = vec!["--api-key", KEY, "--queue-depth", "64", "--threads", "1", "--model", &tiny];
    if let Some(s) = &smol {
        args.extend(["--model", s.as_str()]);
    }
    let server = Server::start(&args);

    let tiny_load = phase(&python, &server, &["load", "--model", "tiny", "--requests", "500", "--concurrency", "16", "--max-tokens", "16"]);
    check_load(&tiny_load);
    if smol.is_some() {
        let smol_load = phase(&python, &server, &["load", "--model", "smol", "--requests", "50", "--concurrency", "4", "--max-tokens", "32", "--rss-checkpoint", "10"]);
        check_load(&smol_load);
    }
    let hangups = phase(&python, &server, &["disconnect", "--model", "tiny", "--clients", "100", "--concurrency", "16", "--max-tokens", "100"]);
    assert_eq!(hangups["drained"], true, "{hangups:#}");
    assert_eq!(hangups["answered_after"], true, "{hangups:#}");
    assert!(hangups["cancelled"].as_f64().unwrap_or(0.0) >= 1.0, "no cancellation counted: {hangups:#}");
}
