//! File variants of one exported graph, as Optimum and transformers.js name
//! them: `model.onnx` (the export itself), `model_q4.onnx`, `model_fp16.onnx`,
//! `model_quantized.onnx`, … (also `decoder_model_merged*.onnx`), under
//! `onnx/` or at the top of the folder. Choosing: the variant asked for; else
//! the unsuffixed export; else the only one; else an error listing them.

use super::folder::Folder;

/// Graph names of a single-graph decoder (with past inputs), most specific first.
pub const DECODER_BASES: &[&str] = &["decoder_model_merged", "model"];

/// Sub-folders searched, in order.
const DIRS: &[&str] = &["onnx", ""];

/// One graph file and its variant (`""` for the unsuffixed export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// e.g. `q4`, `fp16`, `quantized`; empty for the unsuffixed file.
    pub name: String,
    /// Folder-relative path, e.g. `onnx/model_q4.onnx`.
    pub file: String,
}

impl Variant {
    fn label(&self) -> String {
        let name = if self.name.is_empty() { "(default)" } else { &self.name };
        format!("{name} ({})", self.file)
    }
}

/// The variant name of `file_name` over `base` (`model_q4.onnx` over `model` is `q4`).
pub fn variant_of(file_name: &str, base: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".onnx")?;
    if stem == base {
        return Some(String::new());
    }
    let name = stem.strip_prefix(base)?.strip_prefix('_')?;
    valid_name(name).then(|| name.to_string())
}

/// A variant name is short lowercase letters, digits and `_` (so it can never name a path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Every decoder graph variant in the folder, by base name (first base found wins).
pub fn find(folder: &Folder) -> Vec<Variant> {
    for base in DECODER_BASES {
        let mut found = Vec::new();
        for dir in DIRS {
            for name in folder.list(dir) {
                if let Some(v) = variant_of(&name, base) {
                    let file = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                    found.push(Variant { name: v, file });
                }
            }
            if !found.is_empty() {
                return found;
            }
        }
    }
    Vec::new()
}

/// Pick one of `found` (see the module doc); errors list what was found.
pub fn choose(found: &[Variant], wanted: Option<&str>) -> Result<Variant, String> {
    let labels = || found.iter().map(Variant::label).collect::<Vec<_>>().join(", ");
    match wanted {
        Some(w) => {
            let w = if w == "default" { "" } else { w };
            found.iter().find(|v| v.name == w).cloned().ok_or_else(|| format!("no variant \"{w}\" of the decoder graph; found: {}", labels()))
        }
        None => {
            if let Some(v) = found.iter().find(|v| v.name.is_empty()) {
                return Ok(v.clone());
            }
            match found {
                [one] => Ok(one.clone()),
                _ => Err(format!(
                    "{} variants of the decoder graph and no unsuffixed default: {}; choose one with --variant NAME (or give the .onnx file itself as --bundle)",
                    found.len(),
                    labels()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str) -> Variant {
        Variant { name: name.into(), file: format!("onnx/model{}{name}.onnx", if name.is_empty() { "" } else { "_" }) }
    }

    #[test]
    fn names_and_choice() {
        assert_eq!(variant_of("model_q4.onnx", "model").as_deref(), Some("q4"));
        assert_eq!(variant_of("model.onnx", "model").as_deref(), Some(""));
        assert_eq!(variant_of("decoder_model_merged_fp16.onnx", "decoder_model_merged").as_deref(), Some("fp16"));
        assert_eq!(variant_of("model.onnx_data", "model"), None);
        assert_eq!(variant_of("model_Q4.onnx", "model"), None);
        assert_eq!(variant_of("models.onnx", "model"), None);
        let all = [v("q4"), v(""), v("fp16")];
        assert_eq!(choose(&all, None).unwrap(), v(""));
        assert_eq!(choose(&all, Some("fp16")).unwrap(), v("fp16"));
        assert_eq!(choose(&all, Some("default")).unwrap(), v(""));
        let err = choose(&all, Some("int8")).unwrap_err();
        assert!(err.contains("q4 (onnx/model_q4.onnx)") && err.contains("\"int8\""), "{err}");
        let err = choose(&[v("q4"), v("fp16")], None).unwrap_err();
        assert!(err.contains("--variant") && err.contains("fp16 (onnx/model_fp16.onnx)"), "{err}");
        assert_eq!(choose(&[v("q4")], None).unwrap(), v("q4"));
    }
}
