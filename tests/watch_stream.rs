//! `mmrt watch` on a live stream: `exporters/video/moving_shapes.py` writes raw
//! RGB24 frames of moving shapes at 8 fps, in real time, into a pipe; `mmrt
//! watch --source - --format rgb24` answers "What is in the image?" about the
//! latest window every 2 s with the vlm-shapes model (q4 decoder). The script's
//! scene schedule (which shape and colour when) is the reference:
//!
//! * answers keep coming as the stream plays (a tick the model could not keep
//!   up with is counted as missed, not queued);
//! * every answer whose window lies inside one scene names that scene's colour,
//!   and for each scene at least one answer names its colour and shape — so the
//!   caption changes when the scene does.
//!
//! Skipped (with a note) when the vlm-shapes bundle or the exporters' venv is
//! missing, unless `MMRT_REQUIRE_REAL=1`.

mod common;

use std::process::{Command, Stdio};

use serde::Deserialize;

use common::{bundles, cli, root};

#[derive(Debug, Deserialize)]
struct Schedule {
    scenes: Vec<Scene>,
}

#[derive(Debug, Deserialize)]
struct Scene {
    colour: String,
    shape: String,
    start: f64,
    end: f64,
}

#[derive(Debug, Deserialize)]
struct Answer {
    text: String,
    window: Window,
    missed_ticks: u64,
    latency_ms: f64,
}

#[derive(Debug, Deserialize)]
struct Window {
    seconds: Vec<f64>,
}

const SCENES: &str = "red circle 6s, blue square 6s, green triangle 6s";

#[test]
fn watch_follows_a_moving_shapes_stream() {
    let Some(bundle) = bundles::vlm_shapes("vlm-shapes") else { return };
    let python = root().join(".cache/venv-exporters/bin/python");
    if !python.is_file() {
        assert!(!bundles::real_required(), "{} is missing: run `bash exporters/setup.sh`", python.display());
        eprintln!("skipping: the exporters' venv is missing (bash exporters/setup.sh)");
        return;
    }
    let dir = common::TempDir::new("watch");
    let schedule_path = dir.path().join("schedule.json");
    let mut stream = Command::new(&python)
        .args(["-m", "exporters.video.moving_shapes", "--realtime", "--rate", "8", "--scenes", SCENES, "--schedule-json"])
        .arg(&schedule_path)
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start moving_shapes.py");
    let mut watch = cli::command(&[
        "watch", "--bundle", bundle.to_str().unwrap(), "--source", "-", "--format", "rgb24", "--size", "224x224", "--rate", "8",
        "--every", "2s", "--window", "4", "--sample-fps", "2", "--threads", "2", "--json",
    ]);
    watch.stdin(stream.stdout.take().unwrap());
    let out = cli::output(watch);
    let _ = stream.wait();
    assert!(out.ok, "mmrt watch failed:\n{}", out.stderr);
    assert!(cli::panic_problems(&out.stderr).is_empty(), "{}", out.stderr);

    let schedule: Schedule = serde_json::from_slice(&std::fs::read(&schedule_path).unwrap()).unwrap();
    let answers: Vec<Answer> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    for a in &answers {
        eprintln!("{:?} -> {} ({:.0} ms, {} missed)", a.window.seconds, a.text, a.latency_ms, a.missed_ticks);
    }
    eprintln!("{}", out.stderr.lines().last().unwrap_or(""));
    // An 18 s stream at one answer per 2 s: 9 ticks; the first waits for the model to load.
    assert!(answers.len() >= 5, "only {} answers over an 18 s stream at --every 2s:\n{}", answers.len(), out.stdout);

    let scene_of = |w: &Window| {
        schedule.scenes.iter().find(|s| w.seconds.iter().all(|&t| t >= s.start && t < s.end))
    };
    let mut named = vec![false; schedule.scenes.len()];
    for a in &answers {
        let Some(scene) = scene_of(&a.window) else { continue };
        let (shape, colour) = common::shapes::named(&a.text);
        assert_eq!(colour, Some(scene.colour.as_str()), "window {:?} is all {} {}, the answer says \"{}\"", a.window.seconds, scene.colour, scene.shape, a.text);
        if shape == Some(scene.shape.as_str()) {
            named[schedule.scenes.iter().position(|s| std::ptr::eq(s, scene)).unwrap()] = true;
        }
    }
    for (scene, named) in schedule.scenes.iter().zip(named) {
        assert!(named, "no answer named the {} {} of {:.0}..{:.0} s", scene.colour, scene.shape, scene.start, scene.end);
    }
}
