//! What a TensorRT stage needs besides the graph: engine and timing caches
//! (building an engine takes minutes; a cached one loads in seconds) and
//! shape profiles (without them TensorRT builds a new engine for every new
//! input shape, i.e. at every decode step as the past grows).
//!
//! Both are filled in only where the user set nothing: an option given in
//! the manifest or on the command line always wins.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::provider_options::ProviderOptions;
use crate::onnx_proto::{Dim, ValueInfo};

/// `options` with engine and timing caches under `root`: the engine cache in
/// a folder keyed by the graph's content, the ONNX Runtime version and the
/// options (an engine is only valid for exactly those), the timing cache
/// shared (it depends on the GPU only).
pub fn with_caches(options: &ProviderOptions, root: &Path, content: &str, ort_version: &str) -> ProviderOptions {
    let mut out = options.clone();
    if out.get("trt_engine_cache_enable").is_none_or(|v| v == "1") && !out.contains_key("trt_engine_cache_path") {
        let key = cache_key(content, ort_version, options);
        out.insert("trt_engine_cache_enable".into(), "1".into());
        out.insert("trt_engine_cache_path".into(), root.join("engines").join(key).to_string_lossy().into_owned());
    }
    if out.get("trt_timing_cache_enable").is_none_or(|v| v == "1") && !out.contains_key("trt_timing_cache_path") {
        out.insert("trt_timing_cache_enable".into(), "1".into());
        out.insert("trt_timing_cache_path".into(), root.join("timing").to_string_lossy().into_owned());
    }
    out
}

/// 32 hex digits of SHA-256 over the graph's content, the library version and the options.
fn cache_key(content: &str, ort_version: &str, options: &ProviderOptions) -> String {
    let mut hasher = Sha256::new();
    let settings: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for part in ["mmrt.tensorrt-engine.v1", content, ort_version, &settings.join("\n")] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `options` with min/opt/max shape profiles for the graph's `inputs` when it
/// has symbolic dimensions and none were given: the first dimension (the
/// batch) is 1; every other symbolic one ranges over the context, from 0 for
/// the past key/values (inputs named `past*`, empty at the first step) and
/// from 1 otherwise, optimized for one new position (decoding).
pub fn with_profiles(options: &ProviderOptions, inputs: &[ValueInfo], context: usize) -> ProviderOptions {
    let mut out = options.clone();
    let given = ["trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"].iter().any(|k| out.contains_key(*k));
    if given {
        return out;
    }
    let (mut min, mut opt, mut max) = (Vec::new(), Vec::new(), Vec::new());
    for input in inputs {
        let Some(dims) = &input.shape else { continue };
        if !dims.iter().any(|d| !matches!(d, Dim::Fixed(_))) {
            continue;
        }
        let low = if input.name.starts_with("past") { 0 } else { 1 };
        let shape = |symbolic: usize| -> String {
            let sizes: Vec<String> = dims
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Fixed(n) => n.to_string(),
                    _ if i == 0 => "1".to_string(),
                    _ => symbolic.to_string(),
                })
                .collect();
            format!("{}:{}", input.name, sizes.join("x"))
        };
        min.push(shape(low));
        opt.push(shape(1.max(low)));
        max.push(shape(context));
    }
    if !min.is_empty() {
        out.insert("trt_profile_min_shapes".into(), min.join(","));
        out.insert("trt_profile_opt_shapes".into(), opt.join(","));
        out.insert("trt_profile_max_shapes".into(), max.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, dims: &[Option<u64>]) -> ValueInfo {
        let shape = dims.iter().map(|d| d.map_or(Dim::Symbolic("s".into()), Dim::Fixed)).collect();
        ValueInfo { name: name.into(), elem_type: "float32", shape: Some(shape) }
    }

    #[test]
    fn caches_are_keyed_by_content_version_and_options_and_user_settings_win() {
        let root = Path::new("/cache/tensorrt");
        let plain = with_caches(&ProviderOptions::new(), root, "decoder.onnx=sha256:ab", "1.31.1");
        assert_eq!(plain["trt_engine_cache_enable"], "1");
        assert_eq!(plain["trt_timing_cache_path"], "/cache/tensorrt/timing");
        let engine = &plain["trt_engine_cache_path"];
        let fp16: ProviderOptions = [("trt_fp16_enable".to_string(), "1".to_string())].into();
        for (other, why) in [
            (with_caches(&ProviderOptions::new(), root, "decoder.onnx=sha256:cd", "1.31.1"), "content"),
            (with_caches(&ProviderOptions::new(), root, "decoder.onnx=sha256:ab", "1.32.0"), "version"),
            (with_caches(&fp16, root, "decoder.onnx=sha256:ab", "1.31.1"), "options"),
        ] {
            assert_ne!(&other["trt_engine_cache_path"], engine, "the {why} must change the engine key");
        }
        let off: ProviderOptions = [("trt_engine_cache_enable".to_string(), "0".to_string())].into();
        assert!(!with_caches(&off, root, "x", "v").contains_key("trt_engine_cache_path"));
        let mine: ProviderOptions = [("trt_engine_cache_path".to_string(), "/mine".to_string())].into();
        assert_eq!(with_caches(&mine, root, "x", "v")["trt_engine_cache_path"], "/mine");
    }

    #[test]
    fn profiles_span_the_context() {
        let inputs = [
            input("inputs_embeds", &[None, None, Some(640)]),
            input("attention_mask", &[None, None]),
            input("past.0.key", &[None, Some(1), None, Some(256)]),
            input("fixed", &[Some(1), Some(4)]),
        ];
        let out = with_profiles(&ProviderOptions::new(), &inputs, 2048);
        assert_eq!(out["trt_profile_min_shapes"], "inputs_embeds:1x1x640,attention_mask:1x1,past.0.key:1x1x0x256");
        assert_eq!(out["trt_profile_opt_shapes"], "inputs_embeds:1x1x640,attention_mask:1x1,past.0.key:1x1x1x256");
        assert_eq!(out["trt_profile_max_shapes"], "inputs_embeds:1x2048x640,attention_mask:1x2048,past.0.key:1x1x2048x256");
        for key in ["trt_profile_min_shapes", "trt_profile_max_shapes"] {
            let spec = format!("tensorrt:{key}={}", out[key]);
            assert!(spec.parse::<super::super::provider_options::ProviderSpec>().is_ok(), "{spec} must pass the option check");
        }
        let given: ProviderOptions = [("trt_profile_max_shapes".to_string(), "x:1".to_string())].into();
        assert_eq!(with_profiles(&given, &inputs, 2048), given, "a profile the user gave is kept as is");
    }
}
