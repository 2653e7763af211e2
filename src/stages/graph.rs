//! What every stage shares: opening its graph(s) through a [`StageLoader`]
//! (the stage's session settings from the plan, the provider fallback
//! recorded for the pipeline's report), tensor-name checks that name the
//! stage, and running with named inputs and outputs.

use std::borrow::Cow;
use std::cell::RefCell;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::runtime::session::{self, OpenedSession};
use crate::runtime::device::DeviceKind;
use crate::runtime::provider_options::ProviderOptions;
use crate::runtime::tensorrt;
use crate::runtime::{ExecutionProviderKind, OrtRuntime, ProviderReport, SessionPlan, StageProviders};

/// Opens the graphs of one bundle with each stage's session settings and
/// remembers every provider fallback, so no stage can drop one.
pub struct StageLoader<'a> {
    /// The loaded ONNX Runtime.
    pub runtime: &'a OrtRuntime,
    /// The bundle whose graphs are opened.
    pub bundle: &'a Bundle,
    plan: &'a SessionPlan,
    /// The providers of every graph opened so far.
    opened: RefCell<Vec<StageProviders>>,
}

impl<'a> StageLoader<'a> {
    /// A loader for `bundle` with `plan`'s settings.
    pub fn new(runtime: &'a OrtRuntime, bundle: &'a Bundle, plan: &'a SessionPlan) -> Self {
        Self { runtime, bundle, plan, opened: RefCell::new(Vec::new()) }
    }

    /// Open `graph` (bundle-relative, confined to the bundle) for `stage`.
    pub fn open(&self, stage: &str, graph: &str) -> Result<StageGraph> {
        self.open_with_defaults(stage, graph, &[])
    }

    /// [`Self::open`] with ONNX Runtime session entries that apply unless
    /// the manifest or the command line set them.
    pub fn open_with_defaults(&self, stage: &str, graph: &str, defaults: &[(&str, &str)]) -> Result<StageGraph> {
        self.open_sized(stage, graph, defaults, None)
    }

    /// [`Self::open_with_defaults`] for a graph whose symbolic dimensions
    /// range over `context` positions (a decoder: TensorRT's shape profiles).
    pub fn open_sized(&self, stage: &str, graph: &str, defaults: &[(&str, &str)], context: Option<usize>) -> Result<StageGraph> {
        let mut config = self.plan.for_stage(stage);
        for (key, value) in defaults {
            config.options.entry(key.to_string()).or_insert_with(|| value.to_string());
        }
        let path = self.bundle.resolve(graph)?;
        if config.provider == ExecutionProviderKind::Tensorrt {
            config.provider_options = self.tensorrt_options(&config.provider_options, graph, &path, context);
        }
        // The content key reads the graph's header and stats its data: only when the cache is on.
        let content = crate::runtime::graph_cache::enabled().then(|| self.bundle.content_identity(graph)).flatten();
        let OpenedSession { session, fallback, registered, placement } = match content {
            Some(content) => session::open_cached(self.runtime, &path, stage, &config, &content)?,
            None => session::open(self.runtime, &path, stage, &config)?,
        };
        let providers = StageProviders { stage: stage.to_string(), requested: config.provider, registered, fallback_reason: fallback, placement };
        if config.strict_provider && config.provider != ExecutionProviderKind::Cpu {
            if let Some(elsewhere) = providers.nodes_on_cpu() {
                return Err(Error::ExecutionProvider { ep: config.provider.cli_name().into(), reason: format!("stage {stage}: {elsewhere} (--strict-ep: no node may fall back to the CPU)") });
            }
        }
        let device = DeviceKind::of(providers.active(), &config.provider_options);
        self.opened.borrow_mut().push(providers);
        Ok(StageGraph { stage: stage.to_string(), session, device })
    }

    /// A TensorRT stage's options with its engine and timing caches (in mmrt's
    /// cache folder, keyed by the graph's content) and, for a graph sized by a
    /// context, its shape profiles; what the user set is kept.
    fn tensorrt_options(&self, options: &ProviderOptions, graph: &str, path: &std::path::Path, context: Option<usize>) -> ProviderOptions {
        let mut out = options.clone();
        let cache = crate::verified::cache_dir().map(|d| d.join("tensorrt"));
        if let (Some(root), Some(content)) = (cache, self.bundle.content_identity(graph)) {
            out = tensorrt::with_caches(&out, &root, &content, &self.runtime.info.version);
        }
        if let (Some(context), Ok(io)) = (context, crate::onnx_proto::graph_io(path)) {
            out = tensorrt::with_profiles(&out, &io.inputs, context);
        }
        out
    }

    /// The intra-op threads `stage` is set to, if set.
    pub fn threads(&self, stage: &str) -> Option<usize> {
        self.plan.for_stage(stage).threads
    }

    /// What was asked for and what runs, over every graph opened so far.
    pub fn provider_report(&self) -> ProviderReport {
        ProviderReport::new(self.plan.default.provider, self.opened.borrow().clone())
    }
}

/// One opened graph and the stage name its errors carry.
pub struct StageGraph {
    stage: String,
    session: Session,
    /// Where the session keeps the data it owns (the KV buffers).
    device: DeviceKind,
}

impl StageGraph {
    /// The stage name (a sub-graph's is `stage.part`).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The memory the stage's provider computes in.
    pub fn device(&self) -> DeviceKind {
        self.device
    }

    /// The session, for what the helpers here do not cover (IoBinding, allocator).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session itself, for stages that hold it directly.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// The session's metadata.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Element type of input `name`, or an error naming what exists.
    pub fn input_type(&self, name: &str) -> Result<TensorElementType> {
        session::input_type(&self.session, &self.stage, name)
    }

    /// Element type of input `name` when the manifest names one.
    pub fn optional_input(&self, name: Option<&String>) -> Result<Option<(String, TensorElementType)>> {
        name.map(|n| Ok((n.clone(), self.input_type(n)?))).transpose()
    }

    /// Static dimensions of input `name` (`None` for symbolic ones).
    pub fn input_dims(&self, name: &str) -> Option<Vec<Option<i64>>> {
        session::input_dims(&self.session, name)
    }

    /// Static dimensions of output `name` (`None` for symbolic ones).
    pub fn output_dims(&self, name: &str) -> Option<Vec<Option<i64>>> {
        session::output_dims(&self.session, name)
    }

    /// Check output `name` exists.
    pub fn require_output(&self, name: &str) -> Result<()> {
        session::require_output(&self.session, &self.stage, name)
    }

    /// [`Self::run`] with the outputs left in `device` memory (values another
    /// stage on that device takes as inputs, such as Whisper's cross
    /// keys/values, which the decoder reads at every step).
    pub fn run_into(&mut self, inputs: &[(&str, &DynValue)], outputs: &[&str], device: DeviceKind) -> Result<Vec<DynValue>> {
        if device.is_host() {
            let inputs = inputs.iter().map(|(n, v)| (Cow::Borrowed(*n), SessionInputValue::from(*v))).collect();
            return self.run(inputs, outputs);
        }
        let stage = self.stage.clone();
        let fail = |context: &str, e: ort::Error| Error::stage(&stage, context, e);
        let memory = device.memory_info().map_err(|e| fail("describing the device memory", e))?;
        let mut binding = self.session.create_binding().map_err(|e| fail("creating an IoBinding", e))?;
        for (name, value) in inputs {
            binding.bind_input(*name, *value).map_err(|e| fail("binding an input", e))?;
        }
        for name in outputs {
            binding.bind_output_to_device(*name, &memory).map_err(|e| fail("binding an output to the device", e))?;
        }
        let mut results = self.session.run_binding(&binding).map_err(|e| fail("running the graph", e))?;
        outputs.iter().map(|name| take_output(&mut results, &stage, name)).collect()
    }

    /// Run on named inputs and take the named outputs out, in order.
    pub fn run(&mut self, inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)>, outputs: &[&str]) -> Result<Vec<DynValue>> {
        run_named(&mut self.session, &self.stage, inputs, outputs)
    }
}

/// Run `session` on named inputs and take the named outputs out, in order.
pub(crate) fn run_named(
    session: &mut Session,
    stage: &str,
    inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)>,
    outputs: &[&str],
) -> Result<Vec<DynValue>> {
    let mut results = session.run(inputs).map_err(|e| Error::stage(stage, "running the graph", e))?;
    outputs.iter().map(|name| take_output(&mut results, stage, name)).collect()
}

/// Remove output `name` from a run's outputs, or say it is missing.
pub(crate) fn take_output(outputs: &mut ort::session::SessionOutputs<'_>, stage: &str, name: &str) -> Result<DynValue> {
    outputs.remove(name).ok_or_else(|| Error::Tensor {
        stage: stage.into(),
        tensor: name.into(),
        expected: "an output of the graph".into(),
        found: "no such output".into(),
    })
}
