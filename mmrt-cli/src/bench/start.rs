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

/// `config.start_runs` warm samples (and as many cold ones with
/// `config.cold_start`) of `exe` on provider `ep`, with the request of
/// `config` (its prompt text and media: the measured requests'); `None` when
/// `start_runs` is 0. `ort_library` is the library the runs load (evicted too).
pub fn measure(exe: &Path, ort_library: &Path, config: &BenchConfig, ep: ExecutionProviderKind) -> Result<Option<StartFigures>> {
    if config.start_runs == 0 {
        return Ok(None);
    }
    let run = || {
        let mut cmd = super::child_command(exe, config, "run", ep);
        cmd.args(["--max-tokens", "1"]).stdout(Stdio::null()).stderr(Stdio::null());
        timed(&mut cmd)
    };
    run()?; // fills the page cache
    let warm = (0..config.start_runs).map(|_| run()).collect::<Result<Vec<_>>>()?;
    let (cold_ms, cold_method) = if config.cold_start {
        let files = [exe.to_path_buf(), ort_library.to_path_buf(), config.bundle.clone()];
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
