//! `mmrt serve` driven by the official `openai` Python client
//! (tests/server/openai_client.py): chat with text and images, streaming,
//! completions, stop strings, transcription, speech, the model list and the
//! error statuses, each answer compared with `mmrt run` on the same request.
//! Then SIGTERM: running requests finish within the grace period, new ones
//! are refused, the process exits cleanly.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{built_bundle, python_with_openai, Server};

const KEY: &str = "test-key-123";

#[test]
fn the_openai_client_gets_what_mmrt_run_gives() {
    let Some(python) = python_with_openai() else { return };
    let root = common::root();
    let images = root.join("tests/fixtures/images");
    let mut models = vec![("tiny", root.join("models/tiny"))];
    for (name, dir) in [("smol", "smollm2-135m"), ("whisper", "whisper-base"), ("voice", "piper-joe")] {
        match built_bundle(dir) {
            Some(path) => models.push((name, path)),
            None => assert!(!common::bundles::real_required(), "models/{dir} is not built"),
        }
    }
    let specs: Vec<String> = models.iter().map(|(n, p)| format!("{n}={}", p.display())).collect();
    let mut args = vec!["--api-key", KEY, "--max-body-bytes", "4194304", "--allow-file-dir", images.to_str().unwrap(), "--threads", "2"];
    for spec in &specs {
        args.extend(["--model", spec.as_str()]);
    }
    let server = Server::start(&args);
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/server/openai_client.py"))
        .env("MMRT_BASE_URL", &server.base_url)
        .env("MMRT_API_KEY", KEY)
        .env("MMRT_BIN", common::cli::mmrt_bin())
        .env("MMRT_ROOT", &root);
    for (name, path) in &models {
        cmd.env(format!("MMRT_MODEL_{}", name.to_uppercase()), path);
    }
    let out = cmd.output().expect("run the openai client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "the openai client's checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
}

/// A streamed completion of exactly `max_tokens` tokens (through end-of-sequence).
fn long_request(max_tokens: usize) -> String {
    format!(r#"{{"model":"smol","prompt":"Once upon a time","max_tokens":{max_tokens},"ignore_eos":true,"stream":true}}"#)
}

/// A server on SmolLM2 (tiny's 128-token context ends generation too soon to signal it mid-way).
fn smol_server(grace: &str) -> Option<Server> {
    let Some(dir) = built_bundle("smollm2-135m") else {
        assert!(!common::bundles::real_required(), "models/smollm2-135m is not built");
        eprintln!("skipping: models/smollm2-135m is not built (bash exporters/gguf/build.sh smollm2)");
        return None;
    };
    let spec = format!("smol={}", dir.display());
    Some(Server::start(&["--model", &spec, "--shutdown-grace", grace, "--threads", "2"]))
}

fn sigterm(server: &Server) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
}

fn wait_exit(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        assert!(start.elapsed() < within, "the server did not exit within {within:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_lets_running_requests_finish_and_refuses_new_ones() {
    let Some(mut server) = smol_server("60") else { return };
    // A generation long enough to be running when the signal comes.
    let mut running = server.open("POST", "/v1/completions", None, &long_request(200));
    let mut first = [0u8; 256];
    let n = running.read(&mut first).expect("first bytes of the stream");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    sigterm(&server);
    std::thread::sleep(Duration::from_millis(300));
    // New work is refused while draining (503), or the listener is already closed.
    if let Ok(mut fresh) = std::net::TcpStream::connect(&server.address) {
        use std::io::Write;
        let body = r#"{"model":"smol","prompt":"x","max_tokens":2}"#;
        let head = format!("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        if fresh.write_all(head.as_bytes()).is_ok() {
            let mut text = String::new();
            let _ = fresh.read_to_string(&mut text);
            assert!(text.is_empty() || text.starts_with("HTTP/1.1 503"), "a request after SIGTERM: {text}");
        }
    }
    let mut rest = String::new();
    running.read_to_string(&mut rest).expect("the running stream");
    assert!(rest.contains("\"finish_reason\":\"length\"") && rest.contains("data: [DONE]"), "the running request finished whole: {}", &rest[rest.len().saturating_sub(400)..]);
    let status = wait_exit(&mut server, Duration::from_secs(60));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn sigterm_cancels_what_outlives_the_grace_period() {
    let Some(mut server) = smol_server("0.5") else { return };
    let mut running = server.open("POST", "/v1/completions", None, &long_request(4000));
    let mut first = [0u8; 64];
    running.read_exact(&mut first).expect("the stream starts");
    let start = Instant::now();
    sigterm(&server);
    let mut rest = String::new();
    let _ = running.read_to_string(&mut rest);
    assert!(rest.contains("cancelled") && rest.contains("data: [DONE]"), "the stream ends with a cancellation error: {}", &rest[rest.len().saturating_sub(400)..]);
    let status = wait_exit(&mut server, Duration::from_secs(15));
    assert!(status.success(), "exit status: {status}");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_full_queue_is_429_and_a_client_that_leaves_cancels_its_generation() {
    let Some(dir) = built_bundle("smollm2-135m") else {
        assert!(!common::bundles::real_required(), "models/smollm2-135m is not built");
        return;
    };
    let spec = format!("smol={}", dir.display());
    let server = Server::start(&["--model", &spec, "--queue-depth", "1", "--threads", "2"]);
    let long = r#"{"model":"smol","prompt":"Once upon a time","max_tokens":3000,"ignore_eos":true}"#;
    let running = server.open("POST", "/v1/completions", None, long);
    let gauge = |name: &str| {
        let (_, text) = server.request("GET", "/metrics", None, "");
        common::server::metric(&text, name).unwrap_or(-1.0)
    };
    let wait_for = |name: &str, value: f64| {
        let start = Instant::now();
        while gauge(name) != value {
            assert!(start.elapsed() < Duration::from_secs(60), "{name} never became {value}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("mmrt_running{model=\"smol\"}", 1.0);
    let queued = server.open("POST", "/v1/completions", None, long);
    wait_for("mmrt_queue_depth{model=\"smol\"}", 1.0);
    let (status, body) = server.request("POST", "/v1/completions", None, long);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"code\":\"queue_full\""), "{body}");
    let mut refused = server.open("POST", "/v1/completions", None, long);
    let mut head = String::new();
    refused.read_to_string(&mut head).unwrap();
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // Both clients hang up without reading (not streamed): the running generation stops, the queued one never starts.
    drop(running);
    drop(queued);
    wait_for("mmrt_running{model=\"smol\"}", 0.0);
    wait_for("mmrt_queue_depth{model=\"smol\"}", 0.0);
    assert_eq!(gauge("mmrt_cancelled_total"), 2.0);
    assert_eq!(gauge("mmrt_rejected_total"), 2.0);
}
