//! A bundle on disk: the directory holding `bundle.json`, the stage graphs and
//! the tokenizer. Loading parses and validates the manifest, confines every
//! path to the bundle directory (symlinks included), checks that referenced
//! files exist, and verifies the listed sha256 checksums.

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
        let manifest_path = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest = Manifest::from_json(&text, &manifest_path)?;
        let bundle = Bundle { root, manifest };
        for file in bundle.manifest.files() {
            bundle.resolve(file)?;
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
    /// resolves outside the bundle (`..`, absolute paths, escaping symlinks).
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
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
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
