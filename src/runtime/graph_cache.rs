//! Optimized graphs with their prepacked weights, cached outside the bundle.
//!
//! Creating a CPU session optimizes the graph and *prepacks* every weight of
//! MatMulNBits/MatMul into the kernel's layout on the heap (for Gemma 3 270M
//! ~0.5 s and 354 MiB of anonymous memory). ONNX Runtime can write the
//! optimized graph with the prepacked weights in its external data file; a
//! later session maps them from that file (clean file pages the kernel may
//! drop and share between processes). The first CPU session of a graph writes
//! such a copy here; later ones open it.
//!
//! The cache lives in mmrt's cache directory (`<cache>/graphs/<key>/`), never
//! in the bundle. The key covers everything the written bytes depend on: the
//! graph's content (the manifest's verified checksums, or each file's identity
//! where the manifest lists none), the ONNX Runtime library, the CPU (packed
//! layouts follow the instruction set) and the session settings. An entry is
//! written under a temporary name and renamed whole, so a reader never sees a
//! half-written one; one that fails to open is removed and the original graph
//! used. The least recently used entries go when the cache outgrows its bound.
//!
//! Off by default, on with `MMRT_GRAPH_CACHE=1` (`MMRT_GRAPH_CACHE_MAX_MB`
//! bounds it, 8 GiB by default). Measured with ONNX Runtime 1.31 on Gemma 3
//! 270M q4: the weights' anonymous memory after loading drops from 354 MiB to
//! 47 MiB (the packed weights become file pages, shared by every process that
//! maps them and dropped by the kernel under pressure), peak RSS of a run by
//! ~110 MiB; but ONNX Runtime still runs every PrePack at load (so start-up is
//! not faster) and the entry takes 2.6× the bundle's weights on disk (779 MB
//! for 304 MB), a poor default for an edge device's storage.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// File names inside an entry.
const MODEL: &str = "model.onnx";
const DATA: &str = "model.data";

/// Default bound on the whole cache (every entry together).
const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Where one graph's optimized copy is, or is to be written.
pub enum Lookup {
    /// A complete entry: open this model.
    Hit(Entry),
    /// No entry yet: write the optimized model here, then [`Pending::publish`].
    Miss(Pending),
}

/// A complete cache entry.
pub struct Entry {
    dir: PathBuf,
}

impl Entry {
    /// The optimized graph (its prepacked data beside it).
    pub fn model(&self) -> PathBuf {
        self.dir.join(MODEL)
    }

    /// Mark the entry used now (the eviction order).
    pub fn touch(&self) {
        let now = std::time::SystemTime::now();
        if let Err(e) = std::fs::File::options().write(true).open(self.model()).and_then(|f| f.set_modified(now)) {
            log::debug!("could not mark {} used: {e}", self.dir.display());
        }
    }

    /// Remove an entry that failed to open.
    pub fn discard(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            log::debug!("could not remove the graph cache entry {}: {e}", self.dir.display());
        }
    }
}

/// An entry being written: a temporary directory renamed into place.
pub struct Pending {
    tmp: PathBuf,
    dir: PathBuf,
    max_bytes: u64,
}

impl Pending {
    /// Where ONNX Runtime writes the optimized graph.
    pub fn model(&self) -> PathBuf {
        self.tmp.join(MODEL)
    }

    /// The session settings that make ONNX Runtime write the optimized graph
    /// with its prepacked weights into the entry's data file.
    pub fn config_entries() -> [(&'static str, &'static str); 3] {
        [
            ("session.optimized_model_external_initializers_file_name", DATA),
            ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ("session.save_external_prepacked_constant_initializers", "1"),
        ]
    }

    /// Move the written entry into place (another process may have done so
    /// first: then its entry stays and this one goes), and keep the cache
    /// within its bound.
    pub fn publish(self) {
        let complete = self.tmp.join(MODEL).is_file() && self.tmp.join(DATA).is_file();
        if !complete {
            // ONNX Runtime writes no data file for a graph with no weight over
            // the threshold: such a copy would load onto the heap like the
            // original, so it is not kept.
            log::debug!("graph cache: nothing to map in {}, not kept", self.tmp.display());
            let _ = std::fs::remove_dir_all(&self.tmp);
            return;
        }
        if std::fs::rename(&self.tmp, &self.dir).is_err() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        if let Some(root) = self.dir.parent() {
            evict(root, self.max_bytes, &self.dir);
        }
    }

    /// Give up on a write that failed.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Whether `MMRT_GRAPH_CACHE=1` asks for the cache (it is off by default: see
/// the module's figures).
pub fn enabled() -> bool {
    std::env::var("MMRT_GRAPH_CACHE").is_ok_and(|v| v.trim() == "1")
}

/// The cache entry for a graph, when enabled and placeable: `None` unless
/// [`enabled`], without a cache directory, or on a CPU this module cannot identify.
pub fn lookup(content: &str, library: &Path, version: &str, settings: &str) -> Option<Lookup> {
    if !enabled() {
        return None;
    }
    let root = crate::verified::cache_dir()?.join("graphs");
    let key = key(content, library, version, settings, &cpu_signature()?);
    let dir = root.join(&key);
    if dir.join(MODEL).is_file() && dir.join(DATA).is_file() {
        return Some(Lookup::Hit(Entry { dir }));
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".{key}.tmp{}-{n}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        log::debug!("graph cache unavailable at {}: {e}", root.display());
        return None;
    }
    Some(Lookup::Miss(Pending { tmp, dir, max_bytes: max_bytes() }))
}

/// 32 hex digits of SHA-256 over every input the cached bytes depend on.
fn key(content: &str, library: &Path, version: &str, settings: &str, cpu: &str) -> String {
    let library_identity = std::fs::metadata(library)
        .ok()
        .and_then(|m| crate::verified::FileIdentity::of(&m))
        .map(|id| format!("{id:?}"))
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in ["mmrt.graph-cache.v1", content, &library.to_string_lossy(), &library_identity, version, settings, cpu] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The CPU's model and feature flags (Linux: `/proc/cpuinfo`), which decide
/// the packed layouts; `None` where they cannot be read (no caching).
fn cpu_signature() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let wanted = ["vendor_id", "model name", "flags", "CPU implementer", "CPU part", "Features"];
    let mut seen = Vec::new();
    for line in info.lines() {
        if line.trim().is_empty() && !seen.is_empty() {
            break; // the first processor describes them all
        }
        if let Some((name, value)) = line.split_once(':') {
            if wanted.contains(&name.trim()) {
                seen.push(format!("{}={}", name.trim(), value.trim()));
            }
        }
    }
    (!seen.is_empty()).then(|| format!("{}|{}", std::env::consts::ARCH, seen.join("|")))
}

fn max_bytes() -> u64 {
    std::env::var("MMRT_GRAPH_CACHE_MAX_MB").ok().and_then(|v| v.trim().parse::<u64>().ok()).map_or(DEFAULT_MAX_BYTES, |mb| mb.saturating_mul(1 << 20))
}

/// Remove the least recently used entries (by their model's mtime) until the
/// cache holds at most `max_bytes`, never the one just written.
fn evict(root: &Path, max_bytes: u64, keep: &Path) {
    let Ok(dirs) = std::fs::read_dir(root) else { return };
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = dirs
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let dir = e.path();
            let used = std::fs::metadata(dir.join(MODEL)).and_then(|m| m.modified()).ok()?;
            let size = std::fs::read_dir(&dir).ok()?.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
            Some((used, size, dir))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
    entries.sort();
    for (_, size, dir) in entries {
        if total <= max_bytes {
            break;
        }
        if dir != keep && std::fs::remove_dir_all(&dir).is_ok() {
            log::info!("graph cache: removed {} ({} MiB, least recently used)", dir.display(), size >> 20);
            total -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_every_input() {
        let lib = Path::new("/nonexistent/libonnxruntime.so");
        let base = key("graph", lib, "1.31.1", "cpu", "x86_64|flags=avx2");
        assert_eq!(base.len(), 32);
        assert_eq!(base, key("graph", lib, "1.31.1", "cpu", "x86_64|flags=avx2"));
        for other in [
            key("graph2", lib, "1.31.1", "cpu", "x86_64|flags=avx2"),
            key("graph", Path::new("/other.so"), "1.31.1", "cpu", "x86_64|flags=avx2"),
            key("graph", lib, "1.32.0", "cpu", "x86_64|flags=avx2"),
            key("graph", lib, "1.31.1", "cpu threads", "x86_64|flags=avx2"),
            key("graph", lib, "1.31.1", "cpu", "x86_64|flags=avx512f"),
            // Length-prefixed parts: moving a boundary is another key.
            key("grap", lib, "h1.31.1", "cpu", "x86_64|flags=avx2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn eviction_drops_the_least_recently_used_first() {
        let root = std::env::temp_dir().join(format!("mmrt-graph-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (name, minutes) in [("a", 0), ("b", 1), ("c", 2)] {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(DATA), vec![0u8; 1000]).unwrap();
            std::fs::write(dir.join(MODEL), b"m").unwrap();
            let f = std::fs::File::options().write(true).open(dir.join(MODEL)).unwrap();
            f.set_modified(old + std::time::Duration::from_secs(minutes * 60)).unwrap();
        }
        // Room for two entries; "a" is the oldest but is the one just written.
        evict(&root, 2100, &root.join("a"));
        assert!(root.join("a").exists() && !root.join("b").exists() && root.join("c").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
