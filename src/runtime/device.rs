//! Where a stage's data lives, and the guard that keeps host-only code off
//! device memory.
//!
//! A stage on CUDA (or TensorRT, which computes in CUDA memory) keeps the
//! data it owns across steps (the decoder's KV buffers) in device memory,
//! allocated with the session's device allocator, so a step copies nothing
//! but its small inputs and the logits row. Everything that reads or writes a
//! tensor's bytes on the host goes through [`require_host`] first: reading a
//! device pointer on the host would be a crash or, worse, garbage.

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{DynTensorValueType, DynValue};

use super::provider_options::ProviderOptions;
use super::ExecutionProviderKind;
use crate::error::{Error, Result};

/// The memory a stage computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Host memory (the CPU provider; CoreML shares it).
    Host,
    /// CUDA device memory on GPU `device_id` (CUDA and TensorRT).
    Cuda {
        /// The provider's `device_id`.
        device_id: i32,
    },
}

impl DeviceKind {
    /// The memory of a session whose first provider is `active` with `options`.
    pub fn of(active: ExecutionProviderKind, options: &ProviderOptions) -> Self {
        if !active.is_gpu() {
            return Self::Host;
        }
        Self::Cuda { device_id: options.get("device_id").and_then(|d| d.parse().ok()).unwrap_or(0) }
    }

    /// Whether the host can read and write this memory directly.
    pub fn is_host(self) -> bool {
        self == Self::Host
    }

    /// ONNX Runtime's description of this memory.
    pub fn memory_info(self) -> ort::Result<MemoryInfo<'static>> {
        match self {
            Self::Host => MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default),
            Self::Cuda { device_id } => MemoryInfo::new(AllocationDevice::CUDA, device_id, AllocatorType::Device, MemoryType::Default),
        }
    }

    /// An allocator of this memory for `session` (the session's own for the
    /// host; the device allocator its provider registered otherwise).
    pub fn allocator(self, session: &Session, stage: &str) -> Result<Allocator> {
        let info = self.memory_info().map_err(|e| Error::stage(stage, "describing the device memory", e))?;
        Allocator::new(session, info).map_err(|e| Error::stage(stage, &format!("getting the {self:?} allocator"), e))
    }
}

/// Refuse memory the host cannot touch: `what` is about to read or write a
/// tensor's bytes on the host.
pub fn require_host(info: &MemoryInfo<'_>, stage: &str, tensor: &str, what: &str) -> Result<()> {
    if info.is_cpu_accessible() {
        return Ok(());
    }
    Err(Error::Tensor {
        stage: stage.into(),
        tensor: tensor.into(),
        expected: format!("host memory ({what} reads it on the CPU)"),
        found: format!("device memory ({:?} {})", info.allocation_device().as_str(), info.device_id()),
    })
}

/// [`require_host`] for a value; non-tensors pass (they hold no device buffer).
pub fn require_host_value(value: &DynValue, stage: &str, tensor: &str, what: &str) -> Result<()> {
    match value.view().downcast::<DynTensorValueType>() {
        Ok(t) => require_host(t.memory_info(), stage, tensor, what),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_providers_compute_in_device_memory() {
        let opts: ProviderOptions = [("device_id".to_string(), "1".to_string())].into();
        assert_eq!(DeviceKind::of(ExecutionProviderKind::Cuda, &opts), DeviceKind::Cuda { device_id: 1 });
        assert_eq!(DeviceKind::of(ExecutionProviderKind::Tensorrt, &ProviderOptions::new()), DeviceKind::Cuda { device_id: 0 });
        assert!(DeviceKind::of(ExecutionProviderKind::Cpu, &opts).is_host());
        assert!(DeviceKind::of(ExecutionProviderKind::Coreml, &opts).is_host());
    }

    #[test]
    fn host_only_code_refuses_device_memory() {
        if crate::runtime::OrtRuntime::load(None).is_err() {
            eprintln!("skipped: no ONNX Runtime library (bash .ci/setup-ort)");
            return;
        }
        let cuda = DeviceKind::Cuda { device_id: 0 }.memory_info().expect("a CUDA memory description needs no GPU");
        let err = require_host(&cuda, "decoder", "past.0.key", "zeroing the KV buffer").unwrap_err().to_string();
        assert!(err.contains("past.0.key") && err.contains("device memory") && err.contains("zeroing"), "{err}");
        let host = DeviceKind::Host.memory_info().unwrap();
        assert!(require_host(&host, "decoder", "logits", "reading").is_ok());
        let value = crate::tensor::zeros(&[1, 2], ort::value::TensorElementType::Float32, "s", "t").unwrap();
        assert!(require_host_value(&value, "s", "t", "reading").is_ok());
    }
}
