//! Execution providers: which ones a user can ask for, which ones the loaded
//! ONNX Runtime offers, and registering one on a session builder.
//!
//! ONNX Runtime silently falls back to CPU when a provider fails to register;
//! mmrt registers each provider explicitly and reports the failure instead.

use ort::ep::ExecutionProvider;
use ort::session::builder::SessionBuilder;

/// Execution providers mmrt knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProviderKind {
    /// Default CPU provider (always present).
    Cpu,
    /// NVIDIA CUDA (needs `onnxruntime-gpu` and CUDA libraries).
    Cuda,
    /// NVIDIA TensorRT (needs `onnxruntime-gpu` and TensorRT libraries).
    Tensorrt,
    /// Apple CoreML (macOS / iOS builds).
    Coreml,
}

impl ExecutionProviderKind {
    /// Every kind, in display order.
    pub const ALL: [ExecutionProviderKind; 4] = [Self::Cpu, Self::Cuda, Self::Tensorrt, Self::Coreml];

    /// ONNX Runtime's identifier for the provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::Cpu => ort::ep::CPU::NAME,
            Self::Cuda => ort::ep::CUDA::NAME,
            Self::Tensorrt => ort::ep::TensorRT::NAME,
            Self::Coreml => ort::ep::CoreML::NAME,
        }
    }

    /// The short name used on the command line.
    pub fn cli_name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Tensorrt => "tensorrt",
            Self::Coreml => "coreml",
        }
    }

    /// Whether the loaded ONNX Runtime library was built with this provider.
    pub fn is_compiled_in(self) -> bool {
        let available = match self {
            Self::Cpu => ort::ep::CPU::is_available(),
            Self::Cuda => ort::ep::CUDA::is_available(),
            Self::Tensorrt => ort::ep::TensorRT::is_available(),
            Self::Coreml => ort::ep::CoreML::is_available(),
        };
        available.unwrap_or(false)
    }

    /// Register on a session builder. `Err` carries the reason it cannot run here.
    pub fn register(self, builder: &mut SessionBuilder) -> Result<(), String> {
        if self == Self::Cpu {
            return Ok(());
        }
        if !self.is_compiled_in() {
            return Err(format!(
                "the loaded ONNX Runtime library does not include {} (install onnxruntime-gpu for CUDA/TensorRT, use a macOS build for CoreML, and point --ort-lib at it)",
                self.ort_name()
            ));
        }
        let result = match self {
            Self::Cpu => Ok(()),
            Self::Cuda => ort::ep::CUDA::default().register(builder),
            Self::Tensorrt => ort::ep::TensorRT::default().register(builder),
            Self::Coreml => ort::ep::CoreML::default().register(builder),
        };
        result.map_err(|e| format!("{} failed to register: {e}", self.ort_name()))
    }
}

impl std::str::FromStr for ExecutionProviderKind {
    type Err = String;

    /// From the command-line name (`cpu`, `cuda`, `tensorrt`, `coreml`).
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.cli_name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.cli_name()).collect();
            format!("unknown execution provider {s:?} (one of {})", names.join(", "))
        })
    }
}

/// Names of the providers the loaded library was built with, in ONNX Runtime's spelling.
pub fn available_providers() -> Vec<&'static str> {
    ExecutionProviderKind::ALL.iter().filter(|k| k.is_compiled_in()).map(|k| k.ort_name()).collect()
}

/// What was asked for and what actually runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderReport {
    /// Requested provider.
    pub requested: ExecutionProviderKind,
    /// Provider the sessions run on.
    pub active: ExecutionProviderKind,
    /// Why the requested provider is not active, when it is not.
    pub fallback_reason: Option<String>,
}

/// [`available_providers`] when a library is loaded, else nothing (asking
/// without a library would make `ort` try its own loading and panic).
pub fn available_providers_if_loaded(loaded: bool) -> Vec<&'static str> {
    if loaded {
        available_providers()
    } else {
        Vec::new()
    }
}
