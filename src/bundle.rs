//! A bundle on disk: the directory holding `bundle.json`, the stage graphs and
//! the tokenizer. Loading parses and validates the manifest, confines every
//! path to the bundle directory (symlinks included), checks that referenced
//! files exist and are regular files (never a FIFO, a device or a socket,
//! which could block a read forever), and verifies the listed sha256 checksums.
//! Reads are bounded ([`crate::limits::MAX_MANIFEST_BYTES`],
//! [`crate::limits::MAX_TOKENIZER_BYTES`]).
//!
//! A folder without `bundle.json` (an onnxruntime-genai or Optimum export as
//! it arrives) gets its manifest inferred by [`crate::import`]; the bundle
//! records that in [`Bundle::origin`] and checks it like a written one.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::import::{ImportOptions, Layout};
use crate::manifest::Manifest;
use crate::verified::{FileIdentity, Record, Verification, VerifyReport};

/// Name of the manifest file inside a bundle.
pub const MANIFEST_FILE: &str = "bundle.json";

/// A validated bundle: manifest plus its root directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Canonical bundle directory.
    pub root: PathBuf,
    /// Parsed, validated manifest.
    pub manifest: Manifest,
    /// Where the manifest came from.
    pub origin: Origin,
    /// How many checksummed files were hashed at open, and how many checks were remembered.
    pub verified: VerifyReport,
}

/// Where a bundle's manifest came from.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The folder's own `bundle.json`.
    Manifest,
    /// Inferred from another tool's folder layout ([`crate::import`]).
    Inferred {
        /// The layout recognised.
        layout: Layout,
        /// The config file read (folder-relative), e.g. `genai_config.json`.
        source: String,
        /// What was inferred, one line each.
        notes: Vec<String>,
    },
}

impl Bundle {
    /// Open the bundle in `dir`: parse, validate, confine paths, verify
    /// checksums; without `bundle.json`, infer the manifest (default variant).
    pub fn open(dir: impl AsRef<Path>) -> Result<Bundle> {
        Self::open_with(dir, &ImportOptions::default())
    }

    /// [`Self::open`], where `path` may also be a folder without `bundle.json`
    /// or a decoder graph file in one, its manifest inferred with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &ImportOptions) -> Result<Bundle> {
        Self::open_verified(path, options, Verification::Remembered)
    }

    /// [`Self::open_with`], hashing every checksummed file or only those not
    /// verified before in their present form (see [`crate::verified`]).
    pub fn open_verified(path: impl AsRef<Path>, options: &ImportOptions, verification: Verification) -> Result<Bundle> {
        let path = path.as_ref();
        let root = path.canonicalize().map_err(|e| Error::io(path, e))?;
        let has_manifest = root.is_dir() && root.join(MANIFEST_FILE).symlink_metadata().is_ok();
        if !has_manifest {
            let inferred = crate::import::infer(&root, options)?;
            let origin = Origin::Inferred { layout: inferred.layout, source: inferred.source, notes: inferred.notes };
            return Bundle { root: inferred.root, manifest: inferred.manifest, origin, verified: VerifyReport::default() }.checked(verification);
        }
        if options.variant.is_some() {
            return Err(Error::Request(format!(
                "--variant chooses among the graphs of a folder without bundle.json; {} has one (its graphs are named there)",
                root.display()
            )));
        }
        let manifest_path = root.join(MANIFEST_FILE);
        let bytes = crate::limits::read_bounded(&manifest_path, crate::limits::MAX_MANIFEST_BYTES, "bundle.json")
            .map_err(|e| Error::io(&manifest_path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Manifest {
            path: manifest_path.clone(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        let manifest = Manifest::from_json(&text, &manifest_path)?;
        Bundle { root, manifest, origin: Origin::Manifest, verified: VerifyReport::default() }.checked(verification)
    }

    fn check_tokenizer_size(&self) -> Result<()> {
        let tokenizer = self.resolve(&self.manifest.tokenizer)?;
        let len = std::fs::metadata(&tokenizer).map_err(|e| Error::io(&tokenizer, e))?.len();
        if len > crate::limits::MAX_TOKENIZER_BYTES {
            return Err(Error::Manifest {
                path: self.manifest_path(),
                message: format!(
                    "tokenizer \"{}\" is {len} bytes, larger than the {}-byte limit (limits::MAX_TOKENIZER_BYTES)",
                    self.manifest.tokenizer,
                    crate::limits::MAX_TOKENIZER_BYTES
                ),
            });
        }
        Ok(())
    }

    /// Every referenced file inside the folder and regular, the tokenizer
    /// within its size bound, checksums verified, external data confined.
    fn checked(self, verification: Verification) -> Result<Bundle> {
        let mut bundle = self;
        for file in bundle.manifest.files() {
            bundle.resolve(file)?;
        }
        if !bundle.manifest.tokenizer.is_empty() {
            bundle.check_tokenizer_size()?;
        }
        if let Some(tts) = bundle.manifest.text_to_speech() {
            bundle.confine_dir(&tts.espeak_data)?;
        }
        bundle.verified = bundle.verify_checksums(verification)?;
        for graph in bundle.manifest.files().into_iter().filter(|f| f.ends_with(".onnx")) {
            bundle.confine_external_data(graph)?;
        }
        Ok(bundle)
    }

    /// What identifies the content of `graph` and its external data files,
    /// for caches keyed by content: each file's verified checksum from the
    /// manifest, or its identity (device, inode, size, times) where the
    /// manifest lists none. `None` when a file cannot be read or identified.
    pub fn content_identity(&self, graph: &str) -> Option<String> {
        let info = crate::onnx_proto::read(&self.resolve(graph).ok()?).ok()?;
        let dir = Path::new(graph).parent().unwrap_or(Path::new(""));
        let mut files: Vec<String> = info.external_files.iter().map(|f| dir.join(f).to_string_lossy().into_owned()).collect();
        files.sort();
        files.dedup();
        let mut parts = Vec::with_capacity(files.len() + 1);
        for file in std::iter::once(graph.to_string()).chain(files) {
            let part = match self.manifest.checksums.get(&file) {
                Some(sum) => format!("{file}=sha256:{sum}"),
                None => format!("{file}={:?}", FileIdentity::of(&std::fs::metadata(self.resolve(&file).ok()?).ok()?)?),
            };
            parts.push(part);
        }
        Some(parts.join("\n"))
    }

    /// Refuse a graph whose external-data tensors point outside the bundle:
    /// ONNX Runtime opens those paths itself, so the manifest check alone
    /// would not keep an untrusted bundle inside its folder.
    fn confine_external_data(&self, graph: &str) -> Result<()> {
        let info = crate::onnx_proto::read(&self.resolve(graph)?)?;
        let dir = Path::new(graph).parent().unwrap_or(Path::new(""));
        for location in &info.external_files {
            let relative = dir.join(location);
            self.resolve(&relative.to_string_lossy()).map_err(|e| match e {
                Error::Manifest { path, message } => Error::Manifest {
                    path,
                    message: format!("graph \"{graph}\" keeps external data in \"{location}\": {message}"),
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// The absolute path of a bundle-relative file, refusing anything that
    /// resolves outside the bundle (`..`, absolute paths, escaping symlinks)
    /// and anything that is not a regular file (a directory, a FIFO, a device,
    /// a socket: opening one could block forever or read without end).
    pub fn resolve(&self, relative: &str) -> Result<PathBuf> {
        let manifest_path = self.manifest_path();
        crate::manifest::check_relative_path(relative)
            .map_err(|message| Error::Manifest { path: manifest_path.clone(), message })?;
        let joined = self.root.join(relative);
        let real = joined.canonicalize().map_err(|e| Error::io(&joined, e))?;
        if !real.starts_with(&self.root) {
            return Err(Error::Manifest {
                path: manifest_path,
                message: format!("\"{relative}\" resolves to {}, outside the bundle", real.display()),
            });
        }
        let meta = std::fs::metadata(&real).map_err(|e| Error::io(&real, e))?;
        crate::limits::check_regular(&meta, &format!("bundle file \"{relative}\""))
            .map_err(|e| Error::io(&real, e))?;
        Ok(real)
    }

    /// A bundle folder (e.g. espeak-ng's data), inside the bundle. What it holds
    /// was confined when the bundle opened ([`Self::confine_dir`]).
    pub fn resolve_dir(&self, relative: &str) -> Result<PathBuf> {
        let refuse = |message: String| Error::Manifest { path: self.manifest_path(), message };
        crate::manifest::check_relative_path(relative).map_err(refuse)?;
        let joined = self.root.join(relative);
        let real = joined.canonicalize().map_err(|e| Error::io(&joined, e))?;
        if !real.starts_with(&self.root) {
            return Err(refuse(format!("\"{relative}\" resolves to {}, outside the bundle", real.display())));
        }
        if !real.is_dir() {
            return Err(refuse(format!("\"{relative}\" is not a folder")));
        }
        Ok(real)
    }

    /// Everything in a bundle folder, links followed, stays inside the bundle
    /// (at most `MAX_BUNDLE_DIR_ENTRIES` entries).
    fn confine_dir(&self, relative: &str) -> Result<()> {
        let refuse = |message: String| Error::Manifest { path: self.manifest_path(), message };
        let mut pending = vec![self.resolve_dir(relative)?];
        let mut seen = 0usize;
        while let Some(dir) = pending.pop() {
            if !dir.starts_with(&self.root) {
                return Err(refuse(format!("\"{relative}\" reaches {}, outside the bundle", dir.display())));
            }
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let path = entry.map_err(|e| Error::io(&dir, e))?.path();
                seen += 1;
                if seen > crate::limits::MAX_BUNDLE_DIR_ENTRIES {
                    return Err(refuse(format!(
                        "\"{relative}\" holds more than {} entries (limits::MAX_BUNDLE_DIR_ENTRIES)",
                        crate::limits::MAX_BUNDLE_DIR_ENTRIES
                    )));
                }
                let target = path.canonicalize().map_err(|e| Error::io(&path, e))?;
                if target.is_dir() {
                    pending.push(target);
                } else if !target.starts_with(&self.root) {
                    return Err(refuse(format!("{} resolves to {}, outside the bundle", path.display(), target.display())));
                }
            }
        }
        Ok(())
    }

    /// Verify every checksum the manifest lists; with [`Verification::Remembered`],
    /// a file unchanged since an earlier successful check is not hashed again.
    pub fn verify_checksums(&self, verification: Verification) -> Result<VerifyReport> {
        let mut record = Record::load(&self.root);
        let mut report = VerifyReport::default();
        for (file, expected) in &self.manifest.checksums {
            let path = self.resolve(file)?;
            // The identity is taken before hashing: a change while hashing leaves a stale identity, re-hashed next time.
            let identity = std::fs::metadata(&path).ok().as_ref().and_then(FileIdentity::of);
            if verification == Verification::Remembered && identity.as_ref().is_some_and(|id| record.remembers(file, id, expected)) {
                report.remembered += 1;
                continue;
            }
            let found = sha256_file(&path)?;
            report.hashed += 1;
            if !found.eq_ignore_ascii_case(expected) {
                record.forget(file);
                record.save(&self.root);
                return Err(Error::Checksum { path, expected: expected.clone(), found });
            }
            if let Some(id) = identity {
                record.remember(file, id, found);
            }
        }
        record.save(&self.root);
        Ok(report)
    }

    /// The file the manifest came from: `bundle.json`, or the config it was inferred from.
    pub fn manifest_path(&self) -> PathBuf {
        match &self.origin {
            Origin::Manifest => self.root.join(MANIFEST_FILE),
            Origin::Inferred { source, .. } => self.root.join(source),
        }
    }

    /// The bundle's display name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// Hex sha256 of a file, memory-mapped so multi-GB weights hash without copies.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = crate::limits::open_regular(path, "a checksummed file").map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut hasher = Sha256::new();
    if len > 0 {
        // SAFETY: the bundle is read-only input; a concurrent writer could only
        // change the digest, which is then reported as a mismatch.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        hasher.update(&map[..]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
