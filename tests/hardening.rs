//! Regression tests for the hardening issue (#11): every hostile input of the
//! issue's table, run through the `mmrt` binary, must end with one clear
//! `error:` line, a non-zero exit status, in under [`MAX_SECONDS`] of wall time
//! and under [`MAX_RSS_MIB`] of peak resident memory (measured by `wait4` on
//! the child). Rows are numbered as in the issue:
//!
//! 1. `kv_cache.num_layers` 2^32 / 10^8; 2. huge token budgets; 3. latent /
//!    crop / signal shapes that disagree with the graphs; 4. NaN/Inf samples
//!    that need resampling; 5. absurd WAV sample rates and durations; 6. a FIFO
//!    in the bundle; 7. `--threads 10000`; 8. truncated or inconsistent images;
//! 9. manifest semantics (empty placeholder, no stop token, signal tokens cut,
//!    duplicated encoder, placeholder that is no token).
//!
//! Positive checks make sure the valid neighbours of these inputs still run.

#![cfg(unix)]

mod common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny");
/// Wall-clock bound of one failing run.
const MAX_SECONDS: f64 = 5.0;
/// Peak resident memory bound of one failing run.
const MAX_RSS_MIB: f64 = 500.0;
/// A run still going after this long is killed (and reported as hanging).
const KILL_AFTER: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- running the binary

/// What one run left behind, with its cost.
struct Outcome {
    what: String,
    /// Exit code, `None` when killed by a signal.
    code: Option<i32>,
    /// The signal that ended it, if any.
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
    max_rss_mib: f64,
    killed_as_hung: bool,
}

/// One run at a time: the time bound means little when the cases compete for two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Set in the environment of this test binary re-run as a measuring helper.
const HELPER_ENV: &str = "MMRT_HARDENING_HELPER";

/// Run `mmrt ARGS` with `env` set; measure wall time and the child's own peak RSS.
///
/// Linux keeps a process's peak RSS across `exec`, counting the memory of the
/// process that spawned it; spawned from this (large, multi-threaded) test
/// process, every `mmrt` would inherit its size. So the test binary re-runs
/// itself as a small helper ([`measure_helper`]), which spawns `mmrt`, kills it
/// if it hangs, and reports its exit status, wall time and `wait4` peak RSS.
fn mmrt_env<S: AsRef<OsStr>>(what: &str, args: &[S], env: &[(&str, &str)]) -> Outcome {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("measure");
    let spec = serde_json::json!({
        "args": args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "env": env.iter().map(|(k, v)| [k.to_string(), v.to_string()]).collect::<Vec<_>>(),
        "dir": tmp.path(),
    });
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "measure_helper", "--nocapture", "--test-threads", "1", "-q"])
        .env(HELPER_ENV, spec.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn the measuring helper");
    assert!(status.success(), "{what}: the measuring helper failed: {status:?}");
    let read = |name: &str| String::from_utf8_lossy(&std::fs::read(tmp.path().join(name)).unwrap_or_default()).into_owned();
    let result: serde_json::Value = serde_json::from_str(&read("result.json")).expect("helper result");
    Outcome {
        what: what.to_string(),
        code: result["code"].as_i64().map(|c| c as i32),
        signal: result["signal"].as_i64().map(|c| c as i32),
        stdout: read("stdout"),
        stderr: read("stderr"),
        seconds: result["seconds"].as_f64().unwrap(),
        max_rss_mib: result["max_rss_kib"].as_f64().unwrap() / 1024.0,
        killed_as_hung: result["killed"].as_bool().unwrap(),
    }
}

/// The measuring helper (see [`mmrt_env`]); a no-op in a normal test run.
#[test]
fn measure_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else { return };
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let dir = PathBuf::from(spec["dir"].as_str().unwrap());
    let mut cmd = std::process::Command::new(common::cli::mmrt_bin());
    cmd.args(spec["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()))
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("MMRT_MAX_AUDIO_SECONDS")
        .env_remove(HELPER_ENV)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    for kv in spec["env"].as_array().unwrap() {
        cmd.env(kv[0].as_str().unwrap(), kv[1].as_str().unwrap());
    }
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn mmrt");
    let pid = child.id() as libc::pid_t;
    // Watchdog: kill a run that hangs. The child is reaped only after `done` is
    // set, so its pid cannot be reused while the watchdog may still signal it.
    let done = Arc::new(Mutex::new(false));
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            if rx.recv_timeout(KILL_AFTER).is_err() && !*done.lock().unwrap() {
                // SAFETY: a plain syscall on our own, not yet reaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            false
        })
    };
    // Wait for the exit without reaping (WNOWAIT), stop the watchdog, then reap with rusage.
    loop {
        // SAFETY: a zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    *done.lock().unwrap() = true;
    let _ = tx.send(());
    let killed = watchdog.join().unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; the child is ours and not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child); // reaped above: std must not wait for it again
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)))
    };
    let result = serde_json::json!({
        "code": code, "signal": signal, "seconds": seconds,
        "max_rss_kib": usage.ru_maxrss, // KiB on Linux
        "killed": killed,
    });
    std::fs::write(dir.join("result.json"), result.to_string()).unwrap();
}

fn mmrt<S: AsRef<OsStr>>(what: &str, args: &[S]) -> Outcome {
    mmrt_env(what, args, &[])
}

/// `mmrt run --bundle B --prompt P EXTRA...`.
fn run(what: &str, bundle: &Path, prompt: &str, extra: &[&OsStr]) -> Outcome {
    let mut args: Vec<OsString> = vec!["run".into(), "--bundle".into(), bundle.into(), "--prompt".into(), prompt.into()];
    args.extend(extra.iter().map(|s| s.to_os_string()));
    mmrt(what, &args)
}

/// `mmrt inspect --bundle B`.
fn inspect(what: &str, bundle: &Path) -> Outcome {
    mmrt(what, &[OsStr::new("inspect"), OsStr::new("--bundle"), bundle.as_os_str()])
}

/// What is wrong with a run that should have failed cleanly and cheaply.
fn failure_problems(out: &Outcome, needles: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if out.killed_as_hung {
        problems.push(format!("still running after {KILL_AFTER:?}: killed"));
    }
    match (out.code, out.signal) {
        (Some(0), _) => problems.push("exited 0, expected a non-zero status".into()),
        (None, sig) => problems.push(format!("ended by signal {sig:?} (abort / kill), not an error exit")),
        _ => {}
    }
    if !out.stderr.trim_start().starts_with("error:") {
        problems.push("stderr does not start with \"error:\"".into());
    }
    for needle in needles {
        if !out.stderr.contains(needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    for marker in ["panicked", "stack backtrace", "memory allocation of", "RUST_BACKTRACE"] {
        if out.stderr.contains(marker) {
            problems.push(format!("stderr contains {marker:?} (a panic or abort)"));
        }
    }
    if out.seconds > MAX_SECONDS {
        problems.push(format!("took {:.2} s (limit {MAX_SECONDS} s)", out.seconds));
    }
    if out.max_rss_mib > MAX_RSS_MIB {
        problems.push(format!("peak RSS {:.0} MiB (limit {MAX_RSS_MIB} MiB)", out.max_rss_mib));
    }
    problems
}

/// Check every row, then report all failing rows together.
#[track_caller]
fn assert_all_fail(rows: Vec<(Outcome, Vec<&str>)>) {
    let mut report = String::new();
    for (out, needles) in &rows {
        let problems = failure_problems(out, needles);
        eprintln!("{}: {:.2} s, {:.0} MiB: {}", out.what, out.seconds, out.max_rss_mib, out.stderr.lines().next().unwrap_or(""));
        if !problems.is_empty() {
            report += &format!("\n* {}: {}\n  stderr: {}", out.what, problems.join("; "), out.stderr.trim());
        }
    }
    assert!(report.is_empty(), "{} of {} cases failed:{report}", report.matches("\n* ").count(), rows.len());
}

/// A run that must succeed (valid input next to a hostile one).
#[track_caller]
fn assert_ok(out: &Outcome) {
    assert_eq!(out.code, Some(0), "{}: expected success\nstderr:\n{}", out.what, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}: {}", out.what, out.stderr);
}

// ---------------------------------------------------------------- fixtures

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("mmrt-hardening-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    /// A fresh copy of models/tiny, edited by `edit` (manifest JSON).
    fn tiny(&self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let dst = self.0.join(name);
        std::fs::create_dir_all(&dst).unwrap();
        for entry in std::fs::read_dir(TINY).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
            }
        }
        let path = dst.join("bundle.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut json);
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        dst
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stage called `name` of a manifest.
fn stage<'a>(json: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    json["stages"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == name).unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// A RIFF/WAVE file: `fmt ` with the given fields, then a `data` chunk whose
/// declared size is `declared` (default: the bytes given).
fn wav(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8], declared: Option<u32>) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend(format_tag.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * block as u32).to_le_bytes());
    fmt.extend(block.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    let data_len = declared.unwrap_or(data.len() as u32);
    let mut out = b"RIFF".to_vec();
    out.extend((4 + 8 + fmt.len() as u32 + 8 + data_len).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    out.extend(b"data");
    out.extend(data_len.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Float WAV of `n` samples of a 440 Hz tone with `bad` at sample `at`.
fn float_wav_with(rate: u32, n: usize, at: usize, bad: f32) -> Vec<u8> {
    let data: Vec<u8> = (0..n)
        .map(|i| if i == at { bad } else { (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.3 })
        .flat_map(f32::to_le_bytes)
        .collect();
    wav(3, 1, rate, 32, &data, None)
}

fn fuzz_image(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(ROOT).join("tests/fixtures/fuzz/image").join(name)).unwrap()
}

fn os(p: &Path) -> &OsStr {
    p.as_os_str()
}

// ---------------------------------------------------------------- 1: layer counts

#[test]
fn row1_huge_layer_counts_fail_before_any_allocation() {
    let tmp = TempDir::new("row1");
    let mut rows = Vec::new();
    for layers in [4_294_967_296u64, 100_000_000] {
        let b = tmp.tiny(&format!("layers{layers}"), |j| stage(j, "decoder")["kv_cache"]["num_layers"] = layers.into());
        let needles = vec!["num_layers", "MAX_LAYERS"];
        rows.push((run(&format!("run, num_layers {layers}"), &b, "hi", &[]), needles.clone()));
        rows.push((inspect(&format!("inspect, num_layers {layers}"), &b), needles));
    }
    // Within the limit but not what the graph has: the graph check names the tensor.
    let b = tmp.tiny("layers3", |j| stage(j, "decoder")["kv_cache"]["num_layers"] = 3.into());
    rows.push((inspect("inspect, num_layers 3 (graph has 2)", &b), vec!["decoder", "present.2.key"]));
    assert_all_fail(rows);
}

// ---------------------------------------------------------------- 2: token budgets

#[test]
fn row2_huge_token_budgets_are_refused_or_clamped() {
    let tmp = TempDir::new("row2");
    let tiny = Path::new(TINY);
    let mut rows = Vec::new();
    for n in ["1000000000000", "4611686018427387904"] {
        rows.push((run(&format!("--max-tokens {n}"), tiny, "hi", &[OsStr::new("--max-tokens"), OsStr::new(n)]), vec!["--max-tokens", n, "MAX_NEW_TOKENS"]));
    }
    rows.push((run("--max-tokens 2^64", tiny, "hi", &[OsStr::new("--max-tokens"), OsStr::new("18446744073709551616")]), vec!["--max-tokens"]));
    let b = tmp.tiny("budget", |j| j["generation"]["max_new_tokens"] = 1_000_000_000_000u64.into());
    rows.push((run("manifest max_new_tokens 10^12 (run)", &b, "hi", &[]), vec!["max_new_tokens", "MAX_NEW_TOKENS", "bundle.json"]));
    rows.push((inspect("manifest max_new_tokens 10^12 (inspect)", &b), vec!["max_new_tokens", "MAX_NEW_TOKENS"]));
    let b = tmp.tiny("context", |j| stage(j, "decoder")["context_length"] = 1_000_000_000_000u64.into());
    rows.push((inspect("manifest context_length 10^12", &b), vec!["context_length", "MAX_CONTEXT_LENGTH"]));
    assert_all_fail(rows);

    // A budget above the context but within the limit is clamped to the context and runs.
    let out = run("--max-tokens 100000 (clamped)", tiny, "hi", &[OsStr::new("--max-tokens"), OsStr::new("100000"), OsStr::new("--json")]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    // The last sampled token never enters the cache, so ids may number context + 1.
    let total = json["prompt_tokens"].as_u64().unwrap() + json["token_ids"].as_array().unwrap().len() as u64;
    assert!(total <= 129 && json["stop_reason"] != "max_tokens", "generation went past the context: {json}");
}

// ---------------------------------------------------------------- 3: shapes vs graphs

#[test]
fn row3_shapes_must_match_the_graphs_before_anything_is_sized() {
    let tmp = TempDir::new("row3");
    let mut rows = Vec::new();
    let b = tmp.tiny("latent_huge", |j| stage(j, "image_generator")["latent_shape"] = serde_json::json!([4, 1_000_000_000u64, 8]));
    rows.push((inspect("latent_shape [4, 1e9, 8] (inspect)", &b), vec!["latent_shape", "MAX_LATENT_ELEMENTS"]));
    rows.push((run("latent_shape [4, 1e9, 8] (run)", &b, "hi", &[]), vec!["latent_shape", "MAX_LATENT_ELEMENTS"]));
    let b = tmp.tiny("latent_overflow", |j| {
        stage(j, "image_generator")["latent_shape"] = serde_json::json!([4_294_967_296u64, 4_294_967_296u64, 4_294_967_296u64])
    });
    rows.push((inspect("latent_shape whose product overflows", &b), vec!["latent_shape", "MAX_LATENT_ELEMENTS"]));
    let b = tmp.tiny("latent_mismatch", |j| stage(j, "image_generator")["latent_shape"] = serde_json::json!([4, 16, 16]));
    rows.push((inspect("latent_shape [4, 16, 16] vs graph [?, 4, 8, 8]", &b), vec!["image_generator.denoiser", "latents", "latent_shape", "[?, 4, 8, 8]"]));
    let b = tmp.tiny("crop", |j| {
        let p = &mut stage(j, "vision_encoder")["preprocess"];
        p["resize"]["shortest_edge"] = 64.into();
        p["crop"] = serde_json::json!({"width": 64, "height": 64});
    });
    rows.push((inspect("crop 64x64 vs encoder input [?, 3, 32, 32]", &b), vec!["vision_encoder", "pixel_values", "[?, 3, 32, 32]", "crop"]));
    let b = tmp.tiny("crop_huge", |j| stage(j, "vision_encoder")["preprocess"]["crop"] = serde_json::json!({"width": 1_000_000, "height": 32}));
    rows.push((inspect("crop 1000000x32", &b), vec!["vision_encoder", "MAX_PREPROCESS_SIDE"]));
    let b = tmp.tiny("timesteps", |j| stage(j, "image_generator")["scheduler"]["num_train_timesteps"] = 1_000_000_000_000u64.into());
    rows.push((inspect("num_train_timesteps 10^12", &b), vec!["num_train_timesteps", "MAX_TRAIN_TIMESTEPS"]));
    let b = tmp.tiny("chunk", |j| stage(j, "audio_encoder")["preprocess"]["chunk_seconds"] = 1e9.into());
    rows.push((inspect("audio chunk_seconds 1e9", &b), vec!["chunk_seconds", "MAX_AUDIO_WINDOW_SECONDS"]));
    assert_all_fail(rows);
}

// ---------------------------------------------------------------- 4: non-finite audio

#[test]
fn row4_nan_and_inf_samples_are_refused_before_resampling() {
    let tmp = TempDir::new("row4");
    let mut rows = Vec::new();
    for (name, rate, bad) in [("nan_8k.wav", 8000, f32::NAN), ("inf_8k.wav", 8000, f32::INFINITY), ("neginf_44k.wav", 44100, f32::NEG_INFINITY), ("nan_16k.wav", 16000, f32::NAN)] {
        let path = tmp.file(name, &float_wav_with(rate, 8000, 1234, bad));
        let shown = if bad.is_nan() { "NaN" } else { "inf" };
        rows.push((
            run(name, Path::new(TINY), "<audio> hi", &[OsStr::new("--audio"), os(&path)]),
            vec![name, "sample 1234", shown, "finite"],
        ));
    }
    let whisper = Path::new(ROOT).join("models/whisper-base");
    if whisper.join("bundle.json").is_file() {
        let path = tmp.file("nan_whisper.wav", &float_wav_with(8000, 8000, 10, f32::NAN));
        rows.push((mmrt("whisper, NaN at 8 kHz", &[OsStr::new("run"), OsStr::new("--bundle"), os(&whisper), OsStr::new("--audio"), os(&path)]), vec!["nan_whisper.wav", "NaN"]));
    } else {
        eprintln!("note: models/whisper-base absent; the Whisper variant of row 4 is skipped");
    }
    assert_all_fail(rows);
}

// ---------------------------------------------------------------- 5: WAV headers

#[test]
fn row5_wav_rates_and_durations_are_bounded_from_the_header() {
    let tmp = TempDir::new("row5");
    let pcm: Vec<u8> = (0..32_000i32).flat_map(|i| (((i * 37) % 2000 - 1000) as i16).to_le_bytes()).collect();
    let one_hz = tmp.file("one_hz.wav", &wav(1, 1, 1, 16, &pcm, None));
    let max_rate = tmp.file("rate_4g.wav", &wav(1, 1, 4_000_000_000, 8, &pcm[..8000], None));
    // 1000 Hz is accepted, but the data chunk declares 16,000,000 samples: 16000 s, over the 4 h limit.
    let long = tmp.file("declares_16000s.wav", &wav(1, 1, 1000, 16, &pcm, Some(32_000_000)));
    let audio = |what: &str, path: &Path| run(what, Path::new(TINY), "<audio> hi", &[OsStr::new("--audio"), os(path)]);
    let mut rows = vec![
        (audio("1 Hz header", &one_hz), vec!["one_hz.wav", "1 Hz", "MIN_SAMPLE_RATE"]),
        (audio("4 GHz header", &max_rate), vec!["rate_4g.wav", "4000000000 Hz", "MAX_SAMPLE_RATE"]),
        (audio("header declaring 16000 s", &long), vec!["declares_16000s.wav", "16000.0 s", "MAX_AUDIO_SECONDS", "MMRT_MAX_AUDIO_SECONDS"]),
    ];
    let whisper = Path::new(ROOT).join("models/whisper-base");
    if whisper.join("bundle.json").is_file() {
        rows.push((mmrt("whisper, 1 Hz header", &[OsStr::new("run"), OsStr::new("--bundle"), os(&whisper), OsStr::new("--audio"), os(&one_hz)]), vec!["1 Hz"]));
    }
    // The limit is the documented one and can be moved: 1 s refuses a 2.8 s file.
    let speech = Path::new(ROOT).join("tests/fixtures/audio/speech_16k.wav");
    let args = [OsStr::new("run"), OsStr::new("--bundle"), OsStr::new(TINY), OsStr::new("--prompt"), OsStr::new("<audio> hi"), OsStr::new("--audio"), os(&speech)];
    rows.push((mmrt_env("MMRT_MAX_AUDIO_SECONDS=1", &args, &[("MMRT_MAX_AUDIO_SECONDS", "1")]), vec!["speech_16k.wav", "limit of 1 s"]));
    assert_all_fail(rows);
    // ... and the same file runs under the default limit.
    let mut ok_args: Vec<&OsStr> = args.to_vec();
    ok_args.extend([OsStr::new("--max-tokens"), OsStr::new("2")]);
    assert_ok(&mmrt("speech_16k.wav under the default limit", &ok_args));
}

// ---------------------------------------------------------------- 6: special files

#[test]
fn row6_fifos_in_and_around_the_bundle_are_errors_not_hangs() {
    let tmp = TempDir::new("row6");
    let mut rows = Vec::new();
    for file in ["projector.onnx", "bundle.json", "tokenizer.json", "generator_decoder.onnx"] {
        let b = tmp.tiny(&format!("fifo_{}", file.replace('.', "_")), |_| {});
        std::fs::remove_file(b.join(file)).unwrap();
        mkfifo(&b.join(file));
        rows.push((inspect(&format!("inspect, {file} is a FIFO"), &b), vec![file, "FIFO"]));
        rows.push((run(&format!("run, {file} is a FIFO"), &b, "hi", &[]), vec![file, "FIFO"]));
    }
    // An unchecksummed graph too (no hashing reaches it first).
    let b = tmp.tiny("fifo_unlisted", |j| drop(j["checksums"].as_object_mut().unwrap().remove("embed.onnx")));
    std::fs::remove_file(b.join("embed.onnx")).unwrap();
    mkfifo(&b.join("embed.onnx"));
    rows.push((inspect("inspect, unchecksummed embed.onnx is a FIFO", &b), vec!["embed.onnx", "FIFO"]));
    let fifo = tmp.path().join("input.fifo");
    mkfifo(&fifo);
    rows.push((run("--image FIFO", Path::new(TINY), "<image> hi", &[OsStr::new("--image"), os(&fifo)]), vec!["input.fifo", "not a regular file"]));
    rows.push((run("--audio FIFO", Path::new(TINY), "<audio> hi", &[OsStr::new("--audio"), os(&fifo)]), vec!["input.fifo", "not a regular file"]));
    rows.push((inspect("a FIFO as the bundle directory", &fifo), vec!["input.fifo"]));
    assert_all_fail(rows);
}

// ---------------------------------------------------------------- 7: threads

#[test]
fn row7_thread_counts_are_capped() {
    let tiny = Path::new(TINY);
    let rows = vec![
        (run("--threads 10000", tiny, "hi", &[OsStr::new("--threads"), OsStr::new("10000")]), vec!["--threads", "10000", "MAX_THREADS_PER_CORE"]),
        (run("--threads 65536", tiny, "hi", &[OsStr::new("--threads"), OsStr::new("65536")]), vec!["--threads", "65536"]),
        (
            mmrt("bench --threads 10000", &["bench", "--bundle", TINY, "--threads", "10000"]),
            vec!["--threads", "10000", "MAX_THREADS_PER_CORE"],
        ),
    ];
    assert_all_fail(rows);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let at_limit = (cores * 4).to_string();
    assert_ok(&run("--threads at the limit", tiny, "hi", &[OsStr::new("--threads"), OsStr::new(&at_limit), OsStr::new("--max-tokens"), OsStr::new("2")]));
}

// ---------------------------------------------------------------- 8: strict images

#[test]
fn row8_truncated_or_inconsistent_images_are_errors() {
    let tmp = TempDir::new("row8");
    let cut = |name: &str, fraction: f64| {
        let bytes = fuzz_image(name);
        bytes[..(bytes.len() as f64 * fraction) as usize].to_vec()
    };
    let mut chunk_past_end = fuzz_image("lossless.webp");
    let size = u32::from_le_bytes(chunk_past_end[16..20].try_into().unwrap());
    chunk_past_end[16..20].copy_from_slice(&(size + 1000).to_le_bytes());
    let mut bmp_offset_0 = fuzz_image("rgb24.bmp");
    bmp_offset_0[10..14].copy_from_slice(&0u32.to_le_bytes());
    let mut bmp_short = fuzz_image("rgb24.bmp");
    bmp_short.truncate(bmp_short.len() - 20);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("anim_cut.webp", cut("anim.webp", 0.7), "WebP"),
        ("progressive_cut72.jpg", cut("progressive.jpg", 0.72), "JPEG"),
        ("baseline_cut.jpg", cut("baseline.jpg", 0.9), "JPEG"),
        ("chunk_past_end.webp", chunk_past_end, "WebP"),
        ("offset0.bmp", bmp_offset_0, "BMP"),
        ("rows_missing.bmp", bmp_short, "BMP"),
        ("anim_cut.gif", cut("anim.gif", 0.8), "GIF"),
        ("cut.tiff", cut("rgb.tiff", 0.8), "TIFF"),
        ("cut.ppm", cut("rgb.ppm", 0.9), "PNM"),
    ];
    let mut rows: Vec<(Outcome, Vec<&str>)> = cases
        .into_iter()
        .map(|(name, bytes, format)| {
            let path = tmp.file(name, &bytes);
            (run(name, Path::new(TINY), "<image> hi", &[OsStr::new("--image"), os(&path)]), vec![name, format])
        })
        .collect();
    // Two images that preprocess to different sizes (a bundle without a crop)
    // are one error naming the second, not a panic when the batch is stacked.
    let b = tmp.tiny("nocrop", |j| drop(stage(j, "vision_encoder")["preprocess"].as_object_mut().unwrap().remove("crop")));
    let (a, photo) = (Path::new(ROOT).join("tests/fixtures/images/a_32.png"), Path::new(ROOT).join("tests/fixtures/images/photo_97x61.png"));
    rows.push((
        run("two images of different aspect, no crop", &b, "<image> <image> hi", &[OsStr::new("--image"), os(&a), OsStr::new("--image"), os(&photo)]),
        vec!["photo_97x61.png", "image 1 is 51x32 after preprocessing but image 0 is 32x32"],
    ));
    assert_all_fail(rows);
    // The complete files run.
    for name in ["progressive.jpg", "anim.webp"] {
        let path = Path::new(ROOT).join("tests/fixtures/fuzz/image").join(name);
        assert_ok(&run(name, Path::new(TINY), "<image> hi", &[OsStr::new("--image"), os(&path), OsStr::new("--max-tokens"), OsStr::new("1")]));
    }
}

/// Strictness as a property, in process: every seed image decodes, and every
/// strict prefix of it is an error.
#[test]
fn every_prefix_of_a_valid_image_is_an_error() {
    let mut seeds = Vec::new();
    for dir in ["tests/fixtures/fuzz/image", "tests/fixtures/images"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            seeds.push(entry.unwrap().path());
        }
    }
    seeds.sort();
    let mut accepted = Vec::new();
    for path in &seeds {
        let bytes = std::fs::read(path).unwrap();
        if let Err(e) = mmrt::preprocess::image::decode_image(&bytes) {
            panic!("{} does not decode: {e}", path.display());
        }
        for n in 0..bytes.len() {
            if mmrt::preprocess::image::decode_image(&bytes[..n]).is_ok() {
                accepted.push(format!("{} cut to {n} of {} bytes", path.display(), bytes.len()));
            }
        }
    }
    assert!(accepted.is_empty(), "partial images accepted:\n{}", accepted.join("\n"));
}

// ---------------------------------------------------------------- 9: manifest semantics

#[test]
fn row9_manifest_semantics_are_checked() {
    let tmp = TempDir::new("row9");
    let mut rows = Vec::new();
    let both = |rows: &mut Vec<(Outcome, Vec<&'static str>)>, what: &str, b: &Path, needles: Vec<&'static str>| {
        rows.push((inspect(&format!("inspect, {what}"), b), needles.clone()));
        rows.push((run(&format!("run, {what}"), b, "hi", &[]), needles));
    };
    let b = tmp.tiny("empty_placeholder", |j| j["prompt"]["placeholders"]["audio"] = "".into());
    both(&mut rows, "empty placeholders.audio", &b, vec!["placeholders.audio", "empty"]);
    let b = tmp.tiny("no_eos", |j| j["prompt"]["eos_token_ids"] = serde_json::json!([]));
    both(&mut rows, "eos_token_ids []", &b, vec!["eos_token_ids", "empty"]);
    let b = tmp.tiny("one_signal", |j| stage(j, "image_output_projector")["signal_tokens"] = serde_json::json!(["[IMG0]"]));
    both(&mut rows, "signal_tokens cut to 1", &b, vec!["image_output_projector", "hidden_states", "signal_tokens", "[?, 4, 64]"]);
    let b = tmp.tiny("dup_encoder", |j| {
        let mut copy = stage(j, "vision_encoder").clone();
        copy["name"] = "vision_encoder_2".into();
        j["stages"].as_array_mut().unwrap().push(copy);
    });
    both(&mut rows, "duplicated image encoder", &b, vec!["two modality_encoder stages for image", "vision_encoder_2"]);
    let b = tmp.tiny("dup_generator", |j| {
        let mut copy = stage(j, "image_generator").clone();
        copy["name"] = "image_generator_2".into();
        j["stages"].as_array_mut().unwrap().push(copy);
    });
    both(&mut rows, "duplicated image generator", &b, vec!["two modality_generator stages for image"]);
    let b = tmp.tiny("not_a_token", |j| j["prompt"]["placeholders"]["image"] = "<picture>".into());
    both(&mut rows, "placeholder that is no token", &b, vec!["placeholders.image", "<picture>", "not a token of the tokenizer"]);
    let b = tmp.tiny("wrong_media_id", |j| j["prompt"]["media_token_ids"]["audio"] = 3.into());
    both(&mut rows, "two modalities share a media token id", &b, vec!["media_token_ids", "share the token id 3"]);
    let b = tmp.tiny("eos_out_of_vocab", |j| j["prompt"]["eos_token_ids"] = serde_json::json!([2, 1_000_000]));
    both(&mut rows, "stop token outside the vocabulary", &b, vec!["eos_token_ids", "1000000", "not an id of the tokenizer"]);
    assert_all_fail(rows);
}

// ---------------------------------------------------------------- external data inside subgraphs

/// ONNX Runtime loads external data of subgraph initializers too, so the
/// bundle's confinement check must see them: `onnx_proto` walks If / Loop /
/// Scan bodies as well as the main graph.
#[test]
fn external_data_inside_subgraphs_is_confined() {
    let info = mmrt::onnx_proto::parse_model(&common::onnx::onnx_with_external_data_in_a_subgraph("../outside.bin")).unwrap();
    assert_eq!(info.external_files, vec!["../outside.bin".to_string()]);
}
