//! Checksums verified once and remembered. Hashing every file of a bundle on
//! every start costs as much as reading the weights (0.35 s warm, ~1 s cold
//! for Gemma 3 270M), so a successful check is recorded per file with what
//! identifies that exact file version: device, inode, size, and modification
//! and status-change times to the nanosecond. The status-change time (ctime)
//! cannot be set back by a user, so a file rewritten in place and given its
//! old mtime still differs. A later open re-hashes any file whose identity
//! changed, any file the record does not know, and everything when asked
//! ([`Verification::Full`]).
//!
//! Records live outside the bundle, in the user's cache directory
//! (`$MMRT_CACHE_DIR`, else `$XDG_CACHE_HOME/mmrt`, else `~/.cache/mmrt`), one
//! file per bundle directory: a bundle cannot vouch for itself, and a copy in
//! another place is another directory, so it is verified again. A record that
//! cannot be read or written only costs the time of hashing.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How much of a bundle to hash when it opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verification {
    /// Files whose identity matches a remembered successful check are not hashed again.
    #[default]
    Remembered,
    /// Hash every file (`--verify`).
    Full,
}

/// What one open did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Files hashed now.
    pub hashed: usize,
    /// Files whose earlier check was remembered.
    pub remembered: usize,
}

/// A file version's identity (Unix), without its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    /// The identity of the file `metadata` describes (`None` where the platform has no ctime).
    pub fn of(metadata: &Metadata) -> Option<FileIdentity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
            Some(FileIdentity {
                dev: metadata.dev(),
                ino: metadata.ino(),
                size: metadata.size(),
                mtime_ns: ns(metadata.mtime(), metadata.mtime_nsec()),
                ctime_ns: ns(metadata.ctime(), metadata.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    identity: FileIdentity,
    sha256: String,
}

/// The remembered checks of one bundle directory.
#[derive(Debug, Default)]
pub struct Record {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
    changed: bool,
}

/// Format tag of a record file.
const RECORD_FORMAT: &str = "mmrt.verified.v1";

#[derive(Serialize, Deserialize)]
struct RecordFile {
    format: String,
    root: PathBuf,
    files: BTreeMap<String, Entry>,
}

impl Record {
    /// The record of the bundle at `root` (canonical), empty when there is none or it is unreadable.
    pub fn load(root: &Path) -> Record {
        let Some(file) = record_path(root) else { return Record::default() };
        let entries = std::fs::read(&file)
            .ok()
            .filter(|bytes| bytes.len() as u64 <= crate::limits::MAX_SMALL_JSON_BYTES)
            .and_then(|bytes| serde_json::from_slice::<RecordFile>(&bytes).ok())
            .filter(|r| r.format == RECORD_FORMAT && r.root == root)
            .map(|r| r.files)
            .unwrap_or_default();
        Record { file: Some(file), entries, changed: false }
    }

    /// Whether `relative`, now `identity`, was found to hash to `expected` before.
    pub fn remembers(&self, relative: &str, identity: &FileIdentity, expected: &str) -> bool {
        self.entries.get(relative).is_some_and(|e| &e.identity == identity && e.sha256.eq_ignore_ascii_case(expected))
    }

    /// Remember that `relative`, as `identity`, hashes to `sha256`.
    pub fn remember(&mut self, relative: &str, identity: FileIdentity, sha256: String) {
        let entry = Entry { identity, sha256 };
        if self.entries.get(relative) != Some(&entry) {
            self.entries.insert(relative.to_string(), entry);
            self.changed = true;
        }
    }

    /// Forget `relative` (its check failed).
    pub fn forget(&mut self, relative: &str) {
        self.changed |= self.entries.remove(relative).is_some();
    }

    /// Write the record if it changed (atomically; failures are logged, not errors).
    pub fn save(&self, root: &Path) {
        let Some(file) = self.file.as_ref().filter(|_| self.changed) else { return };
        let body = RecordFile { format: RECORD_FORMAT.into(), root: root.to_path_buf(), files: self.entries.clone() };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(file.parent().expect("record files live in a directory"))?;
            // A name of its own per writer: threads and processes may save the same record at once.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = file.with_extension(format!("tmp{}-{n}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&body).expect("a record serializes"))?;
            std::fs::rename(&tmp, file)
        };
        if let Err(e) = write() {
            log::debug!("could not remember the checksums of {} in {}: {e}", root.display(), file.display());
        }
    }
}

/// `<cache>/verified/<sha256 of the root path, 32 hex>.json`.
fn record_path(root: &Path) -> Option<PathBuf> {
    let cache = cache_dir()?;
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(cache.join("verified").join(format!("{name}.json")))
}

/// mmrt's cache directory: `$MMRT_CACHE_DIR`, else `$XDG_CACHE_HOME/mmrt`,
/// else `~/.cache/mmrt` (`None` when none of them is set).
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("MMRT_CACHE_DIR").or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mmrt"))).or_else(|| env("HOME").map(|h| h.join(".cache/mmrt")))
}
