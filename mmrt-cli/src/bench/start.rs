//! Process start -> first token as a user meets it: a fresh `mmrt run
//! --max-tokens 1` process per sample, the page cache warm (after one
//! unmeasured run), and with `--cold-start` cold: the page cache dropped
//! before every sample (`/proc/sys/vm/drop_caches` where this user may write
//! it, else every file the run reads evicted with `posix_fadvise(DONTNEED)`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use mmrt::error::{Error, Result};
use mmrt::runtime::ExecutionProviderKind;

use super::stats::Summary;
use super::BenchConfig;

/// Wall time from spawning `mmrt run --max-tokens 1` to its exit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StartFigures {
    /// Page cache warm.
    pub warm_ms: Summary,
    /// Page cache dropped before each run (`--cold-start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_ms: Option<Summary>,
    /// How the page cache was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_method: Option<String>,
}

/// What one sample runs and reads.
pub struct StartProbe<'a> {
    /// The mmrt executable.
    pub exe: &'a Path,
    /// The ONNX Runtime library it loads.
    pub ort_library: &'a Path,
    /// The prompt of the measured requests (placeholders and all).
    pub prompt: &'a str,
    /// Images of the measured requests.
    pub images: &'a [PathBuf],
    /// Videos of the measured requests.
    pub videos: &'a [PathBuf],
}

/// `config.start_runs` warm samples (and as many cold ones with
/// `config.cold_start`) for provider `ep`; `None` when `start_runs` is 0.
pub fn measure(probe: &StartProbe<'_>, config: &BenchConfig, ep: ExecutionProviderKind) -> Result<Option<StartFigures>> {
    if config.start_runs == 0 {
        return Ok(None);
    }
    let run = || timed(&mut command(probe, config, ep));
    run()?; // fills the page cache
    let warm = (0..config.start_runs).map(|_| run()).collect::<Result<Vec<_>>>()?;
    let (cold_ms, cold_method) = if config.cold_start {
        let files = [probe.exe.to_path_buf(), probe.ort_library.to_path_buf(), config.bundle.clone()];
        let mut method = String::new();
        let mut samples = Vec::with_capacity(config.start_runs);
        for _ in 0..config.start_runs {
            method = evict(&files);
            samples.push(run()?);
        }
        (Summary::from_samples(samples), Some(method))
    } else {
        (None, None)
    };
    let warm_ms = Summary::from_samples(warm).ok_or_else(|| Error::Bench("no start-up samples".into()))?;
    Ok(Some(StartFigures { warm_ms, cold_ms, cold_method }))
}

fn command(probe: &StartProbe<'_>, config: &BenchConfig, ep: ExecutionProviderKind) -> Command {
    let mut cmd = Command::new(probe.exe);
    if let Some(lib) = &config.ort_lib {
        cmd.arg("--ort-lib").arg(lib);
    }
    cmd.arg("run").arg("--bundle").arg(&config.bundle).args(["--ep", ep.cli_name(), "--max-tokens", "1"]);
    cmd.arg("--prompt").arg(probe.prompt);
    if let Some(n) = config.threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    for image in probe.images {
        cmd.arg("--image").arg(image);
    }
    for video in probe.videos {
        cmd.arg("--video").arg(video);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Milliseconds from spawn to a successful exit.
fn timed(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = cmd.status().map_err(|e| Error::Bench(format!("cannot start {:?}: {e}", cmd.get_program())))?;
    if !status.success() {
        return Err(Error::Bench(format!("the start-up probe `mmrt run --max-tokens 1` failed ({status}); run it by hand to see why")));
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Drop the page cache (all of it where permitted, else the pages of every
/// file under `paths`); returns how.
fn evict(paths: &[PathBuf]) -> String {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    if std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok() {
        return "drop_caches".into();
    }
    for path in paths {
        for file in files_under(path) {
            if let Ok(f) = std::fs::File::open(&file) {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid open descriptor; advice only, the result is ignored.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
    "posix_fadvise(DONTNEED) on the binary, the ONNX Runtime library and every bundle file".into()
}

/// `path` itself, or every file below it (bounded depth: a bundle is flat or nearly).
fn files_under(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(path.to_path_buf(), 0)];
    while let Some((p, depth)) = stack.pop() {
        match std::fs::read_dir(&p) {
            Ok(entries) if depth < 4 => stack.extend(entries.flatten().map(|e| (e.path(), depth + 1))),
            Ok(_) => {}
            Err(_) => out.push(p),
        }
    }
    out
}
