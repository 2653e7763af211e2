//! A bundle on disk: the directory holding `bundle.json`, the stage graphs and
//! the tokenizer. Loading parses and validates the manifest, confines every
//! path to the bundle directory (symlinks included), checks that referenced
//! files exist and are regular files (never a FIFO, a device or a socket,
//! which could block a read forever), and verifies the listed sha256 checksums.
//! Reads are bounded ([`crate::limits::MAX_MANIFEST_BYTES`],
//! [`crate::limits::MAX_TOKENIZER_BYTES`]).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Name of the manifest file inside a bundle.
pub const MANIFEST_FILE: &str = "bundle.json";

/// A validated bundle: manifest plus its root directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Canonical bundle directory.
    pub root: PathBuf,
    /// Parsed, validated manifest.
    pub manifest: Manifest,
}

impl Bundle {
    /// Open the bundle in `dir`: parse, validate, confine paths, verify checksums.
    pub fn open(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = dir.as_ref();
        let root = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if !root.is_dir() {
            return Err(Error::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "a bundle is a directory holding bundle.json"),
            ));
        }
        let manifest_path = root.join(MANIFEST_FILE);
        let bytes = crate::limits::read_bounded(&manifest_path, crate::limits::MAX_MANIFEST_BYTES, "bundle.json")
            .map_err(|e| Error::io(&manifest_path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Manifest {
            path: manifest_path.clone(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        let manifest = Manifest::from_json(&text, &manifest_path)?;
        let bundle = Bundle { root, manifest };
        for file in bundle.manifest.files() {
            bundle.resolve(file)?;
        }
        let tokenizer = bundle.resolve(&bundle.manifest.tokenizer)?;
        let len = std::fs::metadata(&tokenizer).map_err(|e| Error::io(&tokenizer, e))?.len();
        if len > crate::limits::MAX_TOKENIZER_BYTES {
            return Err(Error::Manifest {
                path: bundle.root.join(MANIFEST_FILE),
                message: format!(
                    "tokenizer \"{}\" is {len} bytes, larger than the {}-byte limit (limits::MAX_TOKENIZER_BYTES)",
                    bundle.manifest.tokenizer,
                    crate::limits::MAX_TOKENIZER_BYTES
                ),
            });
        }
        bundle.verify_checksums()?;
        for graph in bundle.manifest.files().into_iter().filter(|f| f.ends_with(".onnx")) {
            bundle.confine_external_data(graph)?;
        }
        Ok(bundle)
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
        let manifest_path = self.root.join(MANIFEST_FILE);
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

    /// Verify every checksum the manifest lists.
    pub fn verify_checksums(&self) -> Result<()> {
        for (file, expected) in &self.manifest.checksums {
            let path = self.resolve(file)?;
            let found = sha256_file(&path)?;
            if !found.eq_ignore_ascii_case(expected) {
                return Err(Error::Checksum { path, expected: expected.clone(), found });
            }
        }
        Ok(())
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
