//! Encoder outputs remembered by content, so a repeated image or video frame
//! is never encoded twice: within a request (a still scene), across requests
//! (a chat about one photo, `mmrt watch` re-reading a window) and, with a
//! directory, across processes.
//!
//! A key is the SHA-256 of the encoder's identity (its graph's manifest
//! checksum, else its path, size and modification time, plus its tensor
//! names) and of the preprocessed input tensor (shape and bytes). Preprocessing
//! is inside the key because it is inside the tensor. Entries are one item's
//! features `[tokens, d_enc]` as f32 (an f16 encoder's output converts exactly);
//! the least recently used are evicted past the memory budget. Files in the
//! directory hold a small header checked against [`crate::limits`] before any
//! buffer is sized, and are written to a temporary name then renamed, so a
//! reader never sees half a file.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView, Dimension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bundle::Bundle;
use crate::error::{Error, Result};

/// A cache key: SHA-256 of the encoder identity and the preprocessed input.
pub type CacheKey = [u8; 32];

/// Default memory budget: 256 MiB of features.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Most f32 values one cached item may hold when read from disk (64 Mi: 256 MiB).
const MAX_DISK_ITEM_VALUES: usize = 64 << 20;

/// File header: magic, then tokens and width as little-endian u64.
const DISK_MAGIC: &[u8; 8] = b"MMRTEMB1";

/// Lookup counts: the cache's own since it was made ([`EmbeddingCache::stats`]), or one request's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Items found (in memory or on disk): the encoder skipped them.
    pub hits: u64,
    /// Of the hits, those read from the cache directory.
    pub disk_hits: u64,
    /// Items that had to be encoded.
    pub misses: u64,
    /// Entries dropped to stay within the memory budget.
    pub evictions: u64,
}

impl CacheStats {
    /// Record one lookup's outcome.
    pub fn record(&mut self, lookup: Found) {
        match lookup {
            Found::Memory => self.hits += 1,
            Found::Disk => {
                self.hits += 1;
                self.disk_hits += 1;
            }
            Found::Miss => self.misses += 1,
        }
    }

    /// Hits over lookups (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

struct Entry {
    features: Arc<Array2<f32>>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    bytes: usize,
    budget_bytes: usize,
    clock: u64,
    stats: CacheStats,
}

impl std::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.disk_hits += other.disk_hits;
        self.misses += other.misses;
        self.evictions += other.evictions;
    }
}

/// Where a lookup found its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// In memory.
    Memory,
    /// On disk (now in memory too).
    Disk,
    /// Nowhere: the encoder must run.
    Miss,
}

/// Encoder outputs by content hash, shared between threads (`Arc`).
pub struct EmbeddingCache {
    inner: Mutex<Inner>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("EmbeddingCache").field("budget_bytes", &inner.budget_bytes).field("stats", &inner.stats).field("dir", &self.dir).finish()
    }
}

impl Default for EmbeddingCache {
    fn default() -> Self {
        Self::in_memory(DEFAULT_CACHE_BYTES)
    }
}

impl EmbeddingCache {
    /// A cache in memory of at most `budget_bytes` of features (0 disables it).
    pub fn in_memory(budget_bytes: usize) -> Self {
        Self { inner: Mutex::new(Inner { budget_bytes, ..Inner::default() }), dir: None }
    }

    /// Change the memory budget (0 turns the cache off: every lookup misses,
    /// nothing is kept; what no longer fits is evicted now).
    pub fn set_budget(&self, budget_bytes: usize) {
        let mut inner = self.lock();
        inner.budget_bytes = budget_bytes;
        Self::evict(&mut inner);
    }

    /// Also keep entries in `dir` (created if missing), shared across processes.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
        self.dir = Some(dir);
        Ok(self)
    }

    /// Whether lookups can hit: a memory budget above 0 (0 turns the directory off too).
    pub fn enabled(&self) -> bool {
        self.lock().budget_bytes > 0
    }

    /// Counts so far.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// The features stored under `key`, if any (counted as a hit or a miss).
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Array2<f32>>> {
        self.lookup(key).0
    }

    /// [`EmbeddingCache::get`], saying where the entry was found.
    pub fn lookup(&self, key: &CacheKey) -> (Option<Arc<Array2<f32>>>, Found) {
        {
            let mut inner = self.lock();
            if inner.budget_bytes == 0 {
                inner.stats.misses += 1;
                return (None, Found::Miss);
            }
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(key) {
                entry.last_used = now;
                let features = entry.features.clone();
                inner.stats.hits += 1;
                return (Some(features), Found::Memory);
            }
        }
        match self.dir.as_deref().and_then(|dir| read_entry(&entry_path(dir, key))) {
            Some(features) => {
                let features = Arc::new(features);
                let mut inner = self.lock();
                inner.stats.hits += 1;
                inner.stats.disk_hits += 1;
                self.insert_locked(&mut inner, *key, features.clone());
                (Some(features), Found::Disk)
            }
            None => {
                self.lock().stats.misses += 1;
                (None, Found::Miss)
            }
        }
    }

    /// Remember `features` (`[tokens, d_enc]`) under `key`.
    pub fn put(&self, key: CacheKey, features: Array2<f32>) -> Arc<Array2<f32>> {
        let features = Arc::new(features);
        if !self.enabled() {
            return features;
        }
        if let Some(dir) = &self.dir {
            if let Err(e) = write_entry(&entry_path(dir, &key), &features) {
                log::warn!("embedding cache: could not write to {}: {e}", dir.display());
            }
        }
        let mut inner = self.lock();
        self.insert_locked(&mut inner, key, features.clone());
        features
    }

    fn insert_locked(&self, inner: &mut Inner, key: CacheKey, features: Arc<Array2<f32>>) {
        let size = features.len() * 4;
        if size > inner.budget_bytes {
            return;
        }
        inner.clock += 1;
        let last_used = inner.clock;
        if let Some(old) = inner.entries.insert(key, Entry { features, last_used }) {
            inner.bytes -= old.features.len() * 4;
        }
        inner.bytes += size;
        Self::evict(inner);
    }

    /// Drop the least recently used entries until the budget holds.
    fn evict(inner: &mut Inner) {
        while inner.bytes > inner.budget_bytes {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k) else { break };
            let dropped = inner.entries.remove(&oldest).expect("present");
            inner.bytes -= dropped.features.len() * 4;
            inner.stats.evictions += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map inconsistent (every update is one step).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What makes one encoder's outputs comparable: its graph's content (the
/// manifest checksum, else path, size and modification time) and tensor names.
pub fn encoder_identity(bundle: &Bundle, graph: &str, input: &str, output: &str) -> Result<CacheKey> {
    let mut hash = Sha256::new();
    hash.update(b"mmrt embedding cache v1\0");
    match bundle.manifest.checksums.get(graph) {
        Some(sum) => hash.update(sum.as_bytes()),
        None => {
            let path = bundle.resolve(graph)?;
            let meta = fs::metadata(&path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
            hash.update(path.to_string_lossy().as_bytes());
            hash.update(meta.len().to_le_bytes());
            hash.update(modified.to_le_bytes());
        }
    }
    for name in [input, output] {
        hash.update(name.as_bytes());
        hash.update([0]);
    }
    Ok(hash.finalize().into())
}

/// The key of one preprocessed item (any shape, standard layout or not).
pub fn item_key<D: Dimension>(identity: &CacheKey, item: ArrayView<'_, f32, D>) -> CacheKey {
    let mut hash = Sha256::new();
    hash.update(identity);
    for &d in item.shape() {
        hash.update((d as u64).to_le_bytes());
    }
    match item.as_slice() {
        Some(values) => hash.update(f32_bytes(values)),
        None => {
            let owned: Vec<f32> = item.iter().copied().collect();
            hash.update(f32_bytes(&owned));
        }
    }
    hash.finalize().into()
}

fn f32_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding or invalid bit patterns as bytes; the length is exact.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

fn entry_path(dir: &Path, key: &CacheKey) -> PathBuf {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.emb"))
}

/// Read a cached file; anything malformed is treated as absent (and logged).
fn read_entry(path: &Path) -> Option<Array2<f32>> {
    let bytes = fs::read(path).ok()?;
    let parsed = parse_entry(&bytes);
    if let Err(message) = &parsed {
        log::warn!("embedding cache: ignoring {}: {message}", path.display());
    }
    parsed.ok()
}

fn parse_entry(bytes: &[u8]) -> std::result::Result<Array2<f32>, String> {
    if bytes.len() < 24 || &bytes[..8] != DISK_MAGIC {
        return Err("not an mmrt embedding cache file".into());
    }
    let dim = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (tokens, width) = (dim(8), dim(16));
    let values = tokens.checked_mul(width).filter(|&n| n > 0 && n <= MAX_DISK_ITEM_VALUES).ok_or(format!("bad size {tokens}x{width}"))?;
    let body = &bytes[24..];
    if body.len() != values * 4 {
        return Err(format!("{} data bytes for {tokens}x{width} f32 values", body.len()));
    }
    let data: Vec<f32> = body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    Array2::from_shape_vec((tokens, width), data).map_err(|e| e.to_string())
}

fn write_entry(path: &Path, features: &Array2<f32>) -> std::io::Result<()> {
    let (tokens, width) = features.dim();
    let mut bytes = Vec::with_capacity(24 + features.len() * 4);
    bytes.extend_from_slice(DISK_MAGIC);
    bytes.extend_from_slice(&(tokens as u64).to_le_bytes());
    bytes.extend_from_slice(&(width as u64).to_le_bytes());
    for value in features.iter() {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    drop(file);
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array4};

    fn key(n: u8) -> CacheKey {
        [n; 32]
    }

    #[test]
    fn hits_return_what_was_put_and_count() {
        let cache = EmbeddingCache::in_memory(1 << 20);
        assert!(cache.get(&key(1)).is_none());
        cache.put(key(1), array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(*cache.get(&key(1)).unwrap(), array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(cache.stats(), CacheStats { hits: 1, disk_hits: 0, misses: 1, evictions: 0 });
    }

    #[test]
    fn least_recently_used_is_evicted_past_the_budget() {
        let cache = EmbeddingCache::in_memory(3 * 16);
        for n in 0..3 {
            cache.put(key(n), Array2::zeros((2, 2)));
        }
        cache.get(&key(0)); // 1 is now the oldest
        cache.put(key(3), Array2::zeros((2, 2)));
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(0)).is_some() && cache.get(&key(3)).is_some());
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn disk_entries_survive_a_new_cache_and_bad_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("mmrt-emb-cache-{}", std::process::id()));
        let first = EmbeddingCache::in_memory(1 << 20).with_dir(&dir).unwrap();
        first.put(key(7), array![[0.5, -1.0, 2.0]]);
        let second = EmbeddingCache::in_memory(1 << 20).with_dir(&dir).unwrap();
        assert_eq!(*second.get(&key(7)).unwrap(), array![[0.5, -1.0, 2.0]]);
        assert_eq!(second.stats().disk_hits, 1);
        fs::write(entry_path(&dir, &key(8)), b"MMRTEMB1 truncated").unwrap();
        assert!(second.get(&key(8)).is_none());
        let mut huge = DISK_MAGIC.to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&2u64.to_le_bytes());
        assert!(parse_entry(&huge).unwrap_err().contains("bad size"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn item_keys_depend_on_content_shape_and_encoder() {
        let a = Array4::<f32>::zeros((1, 3, 2, 2));
        let mut b = a.clone();
        b[[0, 1, 1, 1]] = 1e-7;
        let id = key(0);
        assert_eq!(item_key(&id, a.view()), item_key(&id, a.clone().view()));
        assert_ne!(item_key(&id, a.view()), item_key(&id, b.view()));
        assert_ne!(item_key(&id, a.view()), item_key(&key(1), a.view()));
        let reshaped = a.clone().into_shape_with_order((1, 3, 4, 1)).unwrap();
        assert_ne!(item_key(&id, a.view()), item_key(&id, reshaped.view()));
        // A non-contiguous view hashes as its logical content.
        let t = b.clone().reversed_axes();
        let tc = t.as_standard_layout().to_owned();
        assert_eq!(item_key(&id, t.view()), item_key(&id, tc.view()));
    }
}
