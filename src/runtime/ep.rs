//! Execution providers: which ones a user can ask for, which ones the loaded
//! ONNX Runtime offers, and registering one on a session builder.
//!
//! ONNX Runtime silently falls back to CPU when a provider fails to register;
//! mmrt registers each provider explicitly and reports the failure instead.

use ort::ep::{ArbitrarilyConfigurableExecutionProvider, ExecutionProvider};

use super::placement::Placement;
use super::provider_options::ProviderOptions;
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

    /// Whether the provider computes on an NVIDIA GPU (CUDA, or TensorRT backed by CUDA).
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Cuda | Self::Tensorrt)
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

    /// Register on a session builder with `options` (validated by
    /// [`super::provider_options::validate`]). `Err` carries the reason it cannot run here.
    pub fn register(self, builder: &mut SessionBuilder, options: &ProviderOptions) -> Result<(), String> {
        if self == Self::Cpu {
            return Ok(());
        }
        if !self.is_compiled_in() {
            let hint = if self == Self::Coreml { " (CoreML needs a macOS build of ONNX Runtime)" } else { "" };
            return Err(format!("the loaded ONNX Runtime library does not include {}{hint}", self.ort_name()));
        }
        let result = match self {
            Self::Cpu => Ok(()),
            Self::Cuda => with_options(ort::ep::CUDA::default(), options).register(builder),
            Self::Tensorrt => with_options(ort::ep::TensorRT::default(), options).register(builder),
            Self::Coreml => with_options(ort::ep::CoreML::default(), options).register(builder),
        };
        result.map_err(|e| format!("{} failed to register: {e}", self.ort_name()))
    }
}

/// `provider` with every option set by key.
fn with_options<P: ArbitrarilyConfigurableExecutionProvider>(mut provider: P, options: &ProviderOptions) -> P {
    for (key, value) in options {
        provider.options_mut().set(key.as_str(), value.as_str());
    }
    provider
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
    /// Requested provider (the default of every stage).
    pub requested: ExecutionProviderKind,
    /// Provider the sessions run on: the requested one unless a stage fell back.
    pub active: ExecutionProviderKind,
    /// Why the requested provider is not active, when it is not.
    pub fallback_reason: Option<String>,
    /// Every graph opened, with its providers.
    pub stages: Vec<StageProviders>,
}

/// The providers of one opened graph.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageProviders {
    /// The stage (a sub-graph's is `stage.part`).
    pub stage: String,
    /// The provider asked for this stage.
    pub requested: ExecutionProviderKind,
    /// The providers registered on its session, in priority order.
    pub registered: Vec<ExecutionProviderKind>,
    /// Why the requested provider did not register, when it did not.
    pub fallback_reason: Option<String>,
    /// Where ONNX Runtime placed the graph's nodes (from its placement log).
    pub placement: Placement,
}

impl StageProviders {
    /// For a stage on an accelerator, the nodes ONNX Runtime left to the CPU
    /// provider, in one line (with where the others went); `None` when none
    /// were, for a CPU stage, or when placement is unknown. Nodes on CUDA
    /// behind TensorRT stay in device memory and do not count.
    pub fn nodes_on_cpu(&self) -> Option<String> {
        let active = self.active();
        if active == ExecutionProviderKind::Cpu || self.placement.nodes_on(ExecutionProviderKind::Cpu.ort_name()) == 0 {
            return None;
        }
        self.placement.fell_back(active.ort_name())
    }

    /// The provider that takes the nodes first.
    pub fn active(&self) -> ExecutionProviderKind {
        self.registered.first().copied().unwrap_or(ExecutionProviderKind::Cpu)
    }
}

impl ProviderReport {
    /// The report over `stages` whose default request was `requested`.
    pub fn new(requested: ExecutionProviderKind, stages: Vec<StageProviders>) -> Self {
        let fallback = stages.iter().find_map(|s| s.fallback_reason.as_ref().map(|r| format!("stage {}: {r}", s.stage)));
        let active = match &fallback {
            Some(_) => ExecutionProviderKind::Cpu,
            None => requested,
        };
        Self { requested, active, fallback_reason: fallback, stages }
    }
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
