//! Execution provider options as data: what each provider accepts, checked
//! before a session is built, so a typo or a bad value is an error naming the
//! option and what it takes (ONNX Runtime would either ignore an unknown key
//! or fail deep inside session creation).
//!
//! Keys are ONNX Runtime's own (`device_id`, `gpu_mem_limit`,
//! `trt_fp16_enable`, `MLComputeUnits`, ...), so its documentation applies as
//! written. Values are normalized to what ONNX Runtime parses: booleans to
//! `1`/`0`, byte sizes (`2GiB`, `512MiB`, `1000000`) to a plain count.

use std::collections::BTreeMap;

use super::ExecutionProviderKind;

/// What one option's value must be.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// `1`/`0`/`true`/`false`/`on`/`off`.
    Bool,
    /// A whole number in the range.
    Int(i64, i64),
    /// A byte count, with an optional `K`/`M`/`G` (×1000) or `KiB`/`MiB`/`GiB` suffix.
    Bytes,
    /// One of these words (matched exactly, as ONNX Runtime does).
    Choice(&'static [&'static str]),
    /// TensorRT shape profiles: `name:1x2x3,name2:1x4`.
    Shapes,
    /// A file system path or free text (a cache prefix, a tactic list).
    Text,
}

/// One accepted option.
struct OptionSpec {
    key: &'static str,
    value: Value,
}

const fn opt(key: &'static str, value: Value) -> OptionSpec {
    OptionSpec { key, value }
}

const DEVICE_ID: OptionSpec = opt("device_id", Value::Int(0, 255));

/// ONNX Runtime's CUDA provider options (onnxruntime/core/providers/cuda/cuda_execution_provider_info.cc).
const CUDA: &[OptionSpec] = &[
    DEVICE_ID,
    opt("gpu_mem_limit", Value::Bytes),
    opt("arena_extend_strategy", Value::Choice(&["kNextPowerOfTwo", "kSameAsRequested"])),
    opt("cudnn_conv_algo_search", Value::Choice(&["EXHAUSTIVE", "HEURISTIC", "DEFAULT"])),
    opt("cudnn_conv_use_max_workspace", Value::Bool),
    opt("cudnn_conv1d_pad_to_nc1d", Value::Bool),
    opt("do_copy_in_default_stream", Value::Bool),
    opt("enable_cuda_graph", Value::Bool),
    opt("enable_skip_layer_norm_strict_mode", Value::Bool),
    opt("use_tf32", Value::Bool),
    opt("prefer_nhwc", Value::Bool),
    opt("sdpa_kernel", Value::Int(0, 1023)),
    opt("fuse_conv_bias", Value::Bool),
    opt("tunable_op_enable", Value::Bool),
    opt("tunable_op_tuning_enable", Value::Bool),
    opt("tunable_op_max_tuning_duration_ms", Value::Int(0, 3_600_000)),
];

/// ONNX Runtime's TensorRT provider options (tensorrt_execution_provider_info.cc).
const TENSORRT: &[OptionSpec] = &[
    DEVICE_ID,
    opt("trt_max_workspace_size", Value::Bytes),
    opt("trt_min_subgraph_size", Value::Int(1, 1 << 20)),
    opt("trt_max_partition_iterations", Value::Int(1, 1 << 20)),
    opt("trt_fp16_enable", Value::Bool),
    opt("trt_bf16_enable", Value::Bool),
    opt("trt_int8_enable", Value::Bool),
    opt("trt_int8_calibration_table_name", Value::Text),
    opt("trt_int8_use_native_calibration_table", Value::Bool),
    opt("trt_dla_enable", Value::Bool),
    opt("trt_dla_core", Value::Int(0, 15)),
    opt("trt_dump_subgraphs", Value::Bool),
    opt("trt_engine_cache_enable", Value::Bool),
    opt("trt_engine_cache_path", Value::Text),
    opt("trt_engine_cache_prefix", Value::Text),
    opt("trt_timing_cache_enable", Value::Bool),
    opt("trt_timing_cache_path", Value::Text),
    opt("trt_force_timing_cache", Value::Bool),
    opt("trt_detailed_build_log", Value::Bool),
    opt("trt_build_heuristics_enable", Value::Bool),
    opt("trt_sparsity_enable", Value::Bool),
    opt("trt_builder_optimization_level", Value::Int(0, 5)),
    opt("trt_auxiliary_streams", Value::Int(-1, 64)),
    opt("trt_tactic_sources", Value::Text),
    opt("trt_cuda_graph_enable", Value::Bool),
    opt("trt_context_memory_sharing_enable", Value::Bool),
    opt("trt_layer_norm_fp32_fallback", Value::Bool),
    opt("trt_force_sequential_engine_build", Value::Bool),
    opt("trt_engine_hw_compatible", Value::Bool),
    opt("trt_profile_min_shapes", Value::Shapes),
    opt("trt_profile_opt_shapes", Value::Shapes),
    opt("trt_profile_max_shapes", Value::Shapes),
];

/// ONNX Runtime's CoreML provider options (coreml_options.cc).
const COREML: &[OptionSpec] = &[
    opt("ModelFormat", Value::Choice(&["MLProgram", "NeuralNetwork"])),
    opt("MLComputeUnits", Value::Choice(&["CPUOnly", "CPUAndNeuralEngine", "CPUAndGPU", "ALL"])),
    opt("RequireStaticInputShapes", Value::Bool),
    opt("EnableOnSubgraphs", Value::Bool),
    opt("SpecializationStrategy", Value::Choice(&["Default", "FastPrediction"])),
    opt("ProfileComputePlan", Value::Bool),
    opt("AllowLowPrecisionAccumulationOnGPU", Value::Bool),
    opt("ModelCacheDirectory", Value::Text),
];

/// The options `kind` accepts (the CPU provider takes none here: its arena is `arena`).
fn accepted(kind: ExecutionProviderKind) -> &'static [OptionSpec] {
    match kind {
        ExecutionProviderKind::Cpu => &[],
        ExecutionProviderKind::Cuda => CUDA,
        ExecutionProviderKind::Tensorrt => TENSORRT,
        ExecutionProviderKind::Coreml => COREML,
    }
}

/// Provider options, validated and normalized, by ONNX Runtime key.
pub type ProviderOptions = BTreeMap<String, String>;

/// Check every option of `kind` and return them normalized. The error names
/// the option, the value and what the provider accepts.
pub fn validate(kind: ExecutionProviderKind, options: &ProviderOptions) -> Result<ProviderOptions, String> {
    options.iter().map(|(key, value)| Ok((key.clone(), validate_one(kind, key, value)?))).collect()
}

fn validate_one(kind: ExecutionProviderKind, key: &str, value: &str) -> Result<String, String> {
    let specs = accepted(kind);
    let Some(spec) = specs.iter().find(|s| s.key == key) else {
        let known: Vec<&str> = specs.iter().map(|s| s.key).collect();
        let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        return Err(format!("{} has no option \"{key}\" (its options: {list})", kind.cli_name()));
    };
    normalize(spec.value, value.trim()).map_err(|want| format!("{} option {key}={value:?}: expected {want}", kind.cli_name()))
}

/// `value` as ONNX Runtime parses it, or what was expected.
fn normalize(kind: Value, value: &str) -> Result<String, String> {
    match kind {
        Value::Bool => match value {
            "1" | "true" | "on" | "True" => Ok("1".into()),
            "0" | "false" | "off" | "False" => Ok("0".into()),
            _ => Err("1 or 0 (true/false)".into()),
        },
        Value::Int(lo, hi) => match value.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
            _ => Err(format!("a whole number from {lo} to {hi}")),
        },
        Value::Bytes => parse_bytes(value).map(|n| n.to_string()).ok_or_else(|| "a byte count such as 2147483648, 2GiB or 512MiB".into()),
        Value::Choice(words) => words.iter().find(|w| **w == value).map(|w| w.to_string()).ok_or_else(|| format!("one of {}", words.join(", "))),
        Value::Shapes => check_shapes(value).map(|()| value.to_string()),
        Value::Text if value.is_empty() => Err("a non-empty value".into()),
        Value::Text => Ok(value.to_string()),
    }
}

/// A byte count: digits with an optional decimal (`K`, `M`, `G`, `T`) or binary (`KiB` ... `TiB`) suffix.
fn parse_bytes(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match suffix.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// TensorRT's profile syntax: `name:d1xd2x...` entries separated by commas.
fn check_shapes(text: &str) -> Result<(), String> {
    let want = "shapes as name:1x128x896[,name2:...]";
    for entry in text.split(',') {
        let (name, dims) = entry.rsplit_once(':').ok_or(want)?;
        if name.is_empty() || dims.split('x').any(|d| d.parse::<u64>().is_err()) {
            return Err(want.into());
        }
    }
    Ok(())
}

/// A provider and its options as written on the command line:
/// `cuda`, `cuda:device_id=1,gpu_mem_limit=2GiB`, `coreml:MLComputeUnits=CPUAndGPU`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    /// The provider.
    pub kind: ExecutionProviderKind,
    /// Its options, validated and normalized.
    pub options: ProviderOptions,
}

impl ProviderSpec {
    /// The provider with no options.
    pub fn plain(kind: ExecutionProviderKind) -> Self {
        Self { kind, options: ProviderOptions::new() }
    }
}

impl std::str::FromStr for ProviderSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, list) = text.split_once(':').unwrap_or((text, ""));
        let kind: ExecutionProviderKind = name.trim().parse()?;
        // A piece without '=' continues the previous value: TensorRT's shape
        // profiles hold commas themselves (`trt_profile_max_shapes=a:1x8,b:1x8`).
        let mut pairs: Vec<(String, String)> = Vec::new();
        for item in list.split(',').filter(|s| !s.trim().is_empty()) {
            match (item.split_once('='), pairs.last_mut()) {
                (Some((key, value)), _) => pairs.push((key.trim().to_string(), value.trim().to_string())),
                (None, Some((_, value))) => *value = format!("{value},{}", item.trim()),
                (None, None) => return Err(format!("provider option {item:?} has no '=' (expected KEY=VALUE)")),
            }
        }
        let options: ProviderOptions = pairs.into_iter().collect();
        Ok(Self { kind, options: validate(kind, &options)? })
    }
}

/// The providers a session is given, in priority order: ONNX Runtime assigns
/// each node to the first that takes it, so TensorRT is backed by CUDA (which
/// runs the contrib operators TensorRT refuses: MatMulNBits,
/// GroupQueryAttention, ...) and everything by the CPU.
pub fn fallback_chain(kind: ExecutionProviderKind) -> &'static [ExecutionProviderKind] {
    use ExecutionProviderKind::*;
    match kind {
        Cpu => &[Cpu],
        Cuda => &[Cuda, Cpu],
        Tensorrt => &[Tensorrt, Cuda, Cpu],
        Coreml => &[Coreml, Cpu],
    }
}

/// The options the provider `behind` gets when it backs `front` in a chain:
/// the same device (TensorRT's `device_id` for the CUDA provider behind it).
pub fn backing_options(front: &ProviderOptions, behind: ExecutionProviderKind) -> ProviderOptions {
    let mut options = ProviderOptions::new();
    if behind == ExecutionProviderKind::Cuda {
        if let Some(id) = front.get("device_id") {
            options.insert("device_id".into(), id.clone());
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionProviderKind::*;

    #[test]
    fn specs_parse_and_normalize() {
        let spec: ProviderSpec = "cuda:device_id=1, gpu_mem_limit=2GiB,enable_cuda_graph=true".parse().unwrap();
        assert_eq!(spec.kind, Cuda);
        assert_eq!(spec.options["device_id"], "1");
        assert_eq!(spec.options["gpu_mem_limit"], (2u64 << 30).to_string());
        assert_eq!(spec.options["enable_cuda_graph"], "1");
        assert_eq!("cpu".parse::<ProviderSpec>().unwrap(), ProviderSpec::plain(Cpu));
        let trt: ProviderSpec = "tensorrt:trt_fp16_enable=1,trt_profile_max_shapes=input_ids:1x2048,past.0.key:1x1x2048x64".parse().unwrap();
        assert_eq!(trt.options.len(), 2);
        assert_eq!(trt.options["trt_profile_max_shapes"], "input_ids:1x2048,past.0.key:1x1x2048x64");
        let coreml: ProviderSpec = "coreml:MLComputeUnits=CPUAndGPU,ModelFormat=MLProgram".parse().unwrap();
        assert_eq!(coreml.options["MLComputeUnits"], "CPUAndGPU");
    }

    #[test]
    fn bad_options_name_the_option_and_what_it_takes() {
        for (spec, needle) in [
            ("cuda:device=1", "no option \"device\""),
            ("cuda:device_id=-1", "from 0 to 255"),
            ("cuda:gpu_mem_limit=lots", "byte count"),
            ("cuda:cudnn_conv_algo_search=FAST", "EXHAUSTIVE, HEURISTIC, DEFAULT"),
            ("cuda:use_tf32=maybe", "1 or 0"),
            ("cuda:device_id", "no '='"),
            ("cpu:device_id=0", "its options: none"),
            ("tensorrt:trt_builder_optimization_level=9", "from 0 to 5"),
            ("tensorrt:trt_profile_min_shapes=input_ids", "name:1x128x896"),
            ("coreml:MLComputeUnits=GPU", "CPUOnly"),
            ("gpu:device_id=0", "unknown execution provider"),
        ] {
            let err = spec.parse::<ProviderSpec>().unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2G"), Some(2_000_000_000));
        assert_eq!(parse_bytes("99999999999TiB"), None, "overflow is refused, not wrapped");
        assert_eq!(parse_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("GiB"), None);
    }

    #[test]
    fn chains_end_on_the_cpu_and_tensorrt_is_backed_by_cuda() {
        for kind in ExecutionProviderKind::ALL {
            let chain = fallback_chain(kind);
            assert_eq!(chain[0], kind);
            assert_eq!(*chain.last().unwrap(), Cpu);
        }
        assert_eq!(fallback_chain(Tensorrt), &[Tensorrt, Cuda, Cpu]);
        let front: ProviderOptions = [("device_id".to_string(), "2".to_string()), ("trt_fp16_enable".into(), "1".into())].into();
        let behind = backing_options(&front, Cuda);
        assert_eq!(behind.len(), 1, "only the device follows: {behind:?}");
        assert_eq!(behind["device_id"], "2");
        assert!(backing_options(&front, Cpu).is_empty());
    }
}
