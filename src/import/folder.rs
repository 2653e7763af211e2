//! An untrusted model folder: every file name that comes from a config (or
//! from a listing) is resolved inside the folder, symlinks included, and must
//! be a regular file; JSON configs are read with a size bound. The same rules
//! as [`crate::Bundle::resolve`], with errors that name the config at fault.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A canonical folder that config file names are confined to.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    /// Open `dir` (it must exist and be a directory).
    pub fn open(dir: &Path) -> Result<Self> {
        let root = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if !root.is_dir() {
            return Err(Error::Import { path: root, message: "not a directory".into() });
        }
        Ok(Self { root })
    }

    /// The canonical folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An error about this folder, or about `file` inside it.
    pub fn error(&self, file: Option<&str>, message: impl Into<String>) -> Error {
        Error::Import { path: file.map_or_else(|| self.root.clone(), |f| self.root.join(f)), message: message.into() }
    }

    /// The absolute path of `relative` (named by `origin`, e.g.
    /// `genai_config.json model.decoder.filename`), refusing absolute paths,
    /// `..`, symlinks that leave the folder, and anything but a regular file.
    pub fn resolve(&self, relative: &str, origin: &str) -> Result<PathBuf> {
        crate::manifest::check_relative_path(relative)
            .map_err(|m| self.error(None, format!("{origin} names \"{relative}\": {}", m.replace("the bundle", "the folder"))))?;
        let joined = self.root.join(relative);
        let real = joined
            .canonicalize()
            .map_err(|e| self.error(None, format!("{origin} names \"{relative}\", which cannot be opened: {e}")))?;
        if !real.starts_with(&self.root) {
            return Err(self.error(None, format!("{origin} names \"{relative}\", which resolves to {}, outside the folder", real.display())));
        }
        let meta = std::fs::metadata(&real).map_err(|e| Error::io(&real, e))?;
        crate::limits::check_regular(&meta, &format!("\"{relative}\" ({origin})")).map_err(|e| Error::io(&real, e))?;
        Ok(real)
    }

    /// Whether `relative` is a regular file inside the folder.
    pub fn has(&self, relative: &str) -> bool {
        self.resolve(relative, "").is_ok()
    }

    /// Whether anything is named `relative` here (a symlink out of the folder
    /// included), so that reading it reports why it cannot be used.
    pub fn present(&self, relative: &str) -> bool {
        self.root.join(relative).symlink_metadata().is_ok()
    }

    /// Parse the JSON file `relative` (at most [`crate::limits::MAX_MANIFEST_BYTES`]).
    pub fn read_json<T: DeserializeOwned>(&self, relative: &str) -> Result<T> {
        let path = self.resolve(relative, "the folder")?;
        let bytes = crate::limits::read_bounded(&path, crate::limits::MAX_MANIFEST_BYTES, relative).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.error(Some(relative), e.to_string()))
    }

    /// Names of the regular files directly in `sub` ("" for the folder
    /// itself), sorted; empty when `sub` is not a folder inside this one.
    pub fn list(&self, sub: &str) -> Vec<String> {
        let dir = self.root.join(sub);
        let Ok(real) = dir.canonicalize() else { return Vec::new() };
        if !real.starts_with(&self.root) {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(&real) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// A short listing of what the folder holds, for "found …" errors.
    pub fn describe(&self) -> String {
        let mut names = self.list("");
        names.extend(self.list("onnx").into_iter().map(|n| format!("onnx/{n}")));
        match names.len() {
            0 => "an empty folder".into(),
            n if n > 12 => format!("{} and {} more", names[..12].join(", "), n - 12),
            _ => names.join(", "),
        }
    }
}
