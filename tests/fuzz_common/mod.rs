//! A small seeded fuzzer that runs as an ordinary test on the stable
//! toolchain: each target draws inputs from a seed corpus (committed files
//! under `tests/fixtures/fuzz/<target>/` plus fixtures), mutates them with a
//! deterministic ChaCha generator, and runs them through the code under test,
//! catching panics and watching for hangs.
//!
//! * `MMRT_FUZZ_CASES=N`: cases per target (default: a short budget of a few
//!   seconds per target, what CI runs);
//! * `MMRT_FUZZ_SEED=S`: the generator seed (default fixed, so CI is reproducible);
//! * `MMRT_FUZZ_HANG_SECS=T`: a case running longer aborts the run (default 20 s);
//! * `MMRT_FUZZ_MEMORY=1`: report and save each case that raises the peak RSS by 50 MiB.
//!
//! Every corpus file runs unmutated first, so inputs that once crashed stay
//! regression tests. A panicking input is written to
//! `target/fuzz-crashes/<target>/<case>.bin` and the test fails after the
//! budget with the list; a hanging one is written there before the abort.
//! The long campaign: `MMRT_FUZZ_CASES=100000 cargo test --test 'fuzz_*' -- --nocapture`.

#![allow(dead_code)] // each fuzz target uses its own subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The fuzzer's random source.
pub type FuzzRng = ChaCha8Rng;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cases to run: `MMRT_FUZZ_CASES`, else `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("MMRT_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("MMRT_FUZZ_SEED").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0x6d6d_7274)
}

fn hang_limit() -> Duration {
    let secs = std::env::var("MMRT_FUZZ_HANG_SECS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(20.0);
    Duration::from_secs_f64(secs)
}

/// Every file in the given directories (relative to the repository root),
/// sorted, as (name, bytes).
pub fn corpus(dirs: &[&str], exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else { continue };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if exts.is_empty() || exts.iter().any(|e| name.ends_with(e)) {
                out.push((format!("{dir}/{name}"), std::fs::read(&path).unwrap()));
            }
        }
    }
    assert!(!out.is_empty(), "empty fuzz corpus in {dirs:?}");
    out
}

/// What a campaign did.
#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub cases: usize,
    pub seconds: f64,
    pub panics: Vec<String>,
    pub slowest_ms: f64,
    /// Cases the target accepted (ran to the end without an error).
    pub accepted: usize,
}

/// Run `cases` cases of `target`: case `i < corpus.len()` is corpus file `i`
/// as is; later cases come from `generate` (which gets the generator and the
/// corpus). `exec` returns whether the input was accepted (for the report)
/// and must not panic.
pub fn fuzz(
    target: &str,
    default_cases: usize,
    corpus: &[(String, Vec<u8>)],
    mut generate: impl FnMut(&mut FuzzRng, &[(String, Vec<u8>)]) -> Vec<u8>,
    exec: impl Fn(&[u8]) -> bool,
) -> Report {
    let total = cases(default_cases);
    let mut rng = FuzzRng::seed_from_u64(seed() ^ fnv(target.as_bytes()));
    let crash_dir = root().join("target/fuzz-crashes").join(target);
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let started_ms = Arc::new(AtomicU64::new(u64::MAX));
    let finished = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let watchdog = {
        let (current, started_ms, finished, crash_dir, target) =
            (current.clone(), started_ms.clone(), finished.clone(), crash_dir.clone(), target.to_string());
        let limit = hang_limit();
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let start = started_ms.load(Ordering::Relaxed);
                if start != u64::MAX && epoch.elapsed().as_millis() as u64 > start + limit.as_millis() as u64 {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let _ = std::fs::create_dir_all(&crash_dir);
                    let path = crash_dir.join("hang.bin");
                    let _ = std::fs::write(&path, &input);
                    eprintln!("fuzz {target}: a case ran longer than {limit:?}; input written to {}", path.display());
                    std::process::abort();
                }
            }
        })
    };
    let mut report = Report { target: target.into(), cases: 0, seconds: 0.0, panics: Vec::new(), slowest_ms: 0.0, accepted: 0 };
    // MMRT_FUZZ_MEMORY=1: report (and save) every case that raises the peak RSS by 50 MiB.
    let watch_memory = std::env::var_os("MMRT_FUZZ_MEMORY").is_some();
    let mut last_hwm = peak_rss_mib().unwrap_or(0.0);
    let start = Instant::now();
    for case in 0..total.max(corpus.len()) {
        let input = match corpus.get(case) {
            Some((_, bytes)) => bytes.clone(),
            None => generate(&mut rng, corpus),
        };
        *current.lock().unwrap() = input.clone();
        let t = Instant::now();
        started_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec(&input)));
        started_ms.store(u64::MAX, Ordering::Relaxed);
        report.slowest_ms = report.slowest_ms.max(t.elapsed().as_secs_f64() * 1e3);
        if let Some(hwm) = watch_memory.then(peak_rss_mib).flatten() {
            if hwm > last_hwm + 50.0 {
                std::fs::create_dir_all(&crash_dir).unwrap();
                let path = crash_dir.join(format!("memory-{case}.bin"));
                std::fs::write(&path, &input).unwrap();
                println!("fuzz {target}: case {case} raised peak RSS from {last_hwm:.0} to {hwm:.0} MiB ({})", path.display());
                last_hwm = hwm;
            }
        }
        match outcome {
            Ok(accepted) => report.accepted += accepted as usize,
            Err(_) => {
                std::fs::create_dir_all(&crash_dir).unwrap();
                let path = crash_dir.join(format!("{case}.bin"));
                std::fs::write(&path, &input).unwrap();
                let origin = corpus.get(case).map_or(String::new(), |(name, _)| format!(" (corpus file {name})"));
                report.panics.push(format!("case {case}{origin}: {}", path.display()));
            }
        }
        report.cases += 1;
    }
    report.seconds = start.elapsed().as_secs_f64();
    finished.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    println!(
        "fuzz {}: {} cases ({} accepted) in {:.1} s, slowest {:.0} ms, peak RSS {:.0} MiB, {} panics",
        report.target,
        report.cases,
        report.accepted,
        report.seconds,
        report.slowest_ms,
        peak_rss_mib().unwrap_or(f64::NAN),
        report.panics.len()
    );
    assert!(report.panics.is_empty(), "fuzz {target}: {} panicking inputs:\n{}", report.panics.len(), report.panics.join("\n"));
    report
}

/// This process's peak resident memory (Linux `VmHWM`), MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A deterministic hash of an input (to derive settings from it).
pub fn hash(bytes: &[u8]) -> u64 {
    fnv(bytes)
}

// ---------------------------------------------------------------- byte mutations

/// Numbers that tend to break size arithmetic.
pub const INTERESTING_U32: [u32; 14] =
    [0, 1, 2, 3, 7, 8, 16, 255, 256, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// Apply 1 to 8 random byte-level mutations to `input`; `others` supplies splices.
pub fn mutate_bytes(rng: &mut FuzzRng, input: &mut Vec<u8>, others: &[(String, Vec<u8>)]) {
    let rounds = 1 + (rng.random::<u32>().trailing_zeros() as usize).min(7);
    for _ in 0..rounds {
        let len = input.len();
        match rng.random_range(0..11) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = rng.random();
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = [0u8, 0xff, 0x7f, 0x80, 1, b'0', b'9', b'-'][rng.random_range(0..8)];
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                input.drain(i..i + n);
            }
            5 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let copy = input[i..i + n].to_vec();
                let at = rng.random_range(0..=len);
                input.splice(at..at, copy);
            }
            6 if len >= 4 => {
                let i = rng.random_range(0..=len - 4);
                let v = INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())];
                let v = if rng.random_bool(0.5) { v.to_le_bytes() } else { v.to_be_bytes() };
                input[i..i + 4].copy_from_slice(&v);
            }
            7 if len >= 2 => {
                let i = rng.random_range(0..=len - 2);
                let v = INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())] as u16;
                let v = if rng.random_bool(0.5) { v.to_le_bytes() } else { v.to_be_bytes() };
                input[i..i + 2].copy_from_slice(&v);
            }
            8 if len > 0 => {
                input.truncate(rng.random_range(0..len));
            }
            9 if !others.is_empty() => {
                let other = &others[rng.random_range(0..others.len())].1;
                if !other.is_empty() {
                    let i = rng.random_range(0..other.len());
                    let n = rng.random_range(1..=(other.len() - i).min(256));
                    let at = rng.random_range(0..=len);
                    let cut = rng.random_range(0..=(len - at).min(256));
                    input.splice(at..at + cut, other[i..i + n].iter().copied());
                }
            }
            10 if len > 0 => {
                // Small arithmetic on one byte (length fields).
                let i = rng.random_range(0..len);
                input[i] = input[i].wrapping_add(rng.random_range(1..=16)).wrapping_sub(8);
            }
            _ => {
                let b = rng.random();
                input.push(b);
            }
        }
    }
}

/// A corpus entry, mutated.
pub fn mutated_seed(rng: &mut FuzzRng, corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut input = corpus[rng.random_range(0..corpus.len())].1.clone();
    mutate_bytes(rng, &mut input, corpus);
    input
}

/// `n` random bytes.
pub fn random_bytes(rng: &mut FuzzRng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rng.fill_bytes(&mut out);
    out
}
