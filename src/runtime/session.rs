//! Opening one ONNX Runtime session per stage graph, with the requested
//! execution provider and thread count, plus metadata checks that turn a
//! mismatched graph into an error naming the stage and tensor.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorElementType;

use super::placement::{Placement, PlacementCapture};
use super::provider_options::{backing_options, fallback_chain, ProviderOptions};
use super::{graph_cache, ExecutionProviderKind, OrtRuntime, RuntimeInfo};
use crate::error::{Error, Result};

/// How sessions are created: provider, threads, strictness.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Requested execution provider.
    pub provider: ExecutionProviderKind,
    /// Its options (validated, ONNX Runtime's keys).
    pub provider_options: ProviderOptions,
    /// Fail instead of falling back to CPU when the provider cannot register.
    pub strict_provider: bool,
    /// Intra-op threads; `None` lets ONNX Runtime pick (one per physical core).
    /// At most [`crate::limits::max_threads`] (cores × 4): opening a session with more is an error.
    pub threads: Option<usize>,
    /// ONNX Runtime session configuration entries (`session.*`, `optimization.*` keys).
    pub options: std::collections::BTreeMap<String, String>,
    /// Whether the CPU allocator keeps freed activation memory in an arena for
    /// the next run (ONNX Runtime's default). Off, a stage that runs rarely and
    /// briefly (an audio encoder, once per 30 s window) returns its peak to the
    /// system instead of holding it for the rest of the process.
    pub cpu_arena: bool,
}

impl Default for SessionConfig {
    /// CPU, ONNX Runtime's own thread choice, lenient fallback.
    fn default() -> Self {
        Self { provider: ExecutionProviderKind::Cpu, provider_options: ProviderOptions::new(), strict_provider: false, threads: None, options: Default::default(), cpu_arena: true }
    }
}

/// Outcome of opening a session: the session and the providers it was given.
pub struct OpenedSession {
    /// The session.
    pub session: Session,
    /// Why the requested provider was not used, if it was not.
    pub fallback: Option<String>,
    /// The providers registered, in priority order (the CPU last).
    pub registered: Vec<ExecutionProviderKind>,
    /// Where ONNX Runtime placed the graph's nodes.
    pub placement: Placement,
}

/// Open `graph` (already confined to the bundle) for stage `stage`.
pub fn open(runtime: &OrtRuntime, graph: &Path, stage: &str, config: &SessionConfig) -> Result<OpenedSession> {
    let (builder, registration) = builder(runtime, stage, config)?;
    let session = commit(builder, graph, stage)?;
    Ok(registration.opened(session))
}

/// [`open`], through the [graph cache](super::graph_cache) on the CPU:
/// `content` identifies the graph and its external data (their checksums).
/// A cached copy that fails to open is removed and the graph opened as is.
pub fn open_cached(runtime: &OrtRuntime, graph: &Path, stage: &str, config: &SessionConfig, content: &str) -> Result<OpenedSession> {
    if config.provider != ExecutionProviderKind::Cpu {
        return open(runtime, graph, stage, config);
    }
    let settings = format!("{:?}|{:?}", GraphOptimizationLevel::Level3, config.options);
    let Some(lookup) = graph_cache::lookup(content, &runtime.info.library, &runtime.info.version, &settings) else {
        return open(runtime, graph, stage, config);
    };
    match lookup {
        graph_cache::Lookup::Hit(entry) => {
            let (builder, registration) = builder(runtime, stage, config)?;
            match commit(builder, &entry.model(), stage) {
                Ok(session) => {
                    entry.touch();
                    log::debug!("stage {stage}: optimized graph and prepacked weights mapped from {}", entry.model().display());
                    Ok(registration.opened(session))
                }
                Err(e) => {
                    log::warn!("stage {stage}: the cached optimized graph {} did not open ({e}); removed, opening {}", entry.model().display(), graph.display());
                    entry.discard();
                    open(runtime, graph, stage, config)
                }
            }
        }
        graph_cache::Lookup::Miss(pending) => {
            let (mut builder, registration) = builder(runtime, stage, config)?;
            builder = builder.with_optimized_model_path(pending.model()).map_err(|e| Error::stage(stage, "setting the optimized graph path", e))?;
            for (key, value) in graph_cache::Pending::config_entries() {
                builder = builder.with_config_entry(key, value).map_err(|e| Error::stage(stage, &format!("setting session option {key}={value}"), e))?;
            }
            match commit(builder, graph, stage) {
                Ok(session) => {
                    log::info!("stage {stage}: optimized graph and prepacked weights cached for later starts");
                    pending.publish();
                    Ok(registration.opened(session))
                }
                Err(e) => {
                    log::warn!("stage {stage}: writing the optimized graph to the cache failed ({e}); opening without it");
                    pending.abandon();
                    open(runtime, graph, stage, config)
                }
            }
        }
    }
}

/// Session options for `config`: optimization level, threads, entries, provider.
fn builder(runtime: &OrtRuntime, stage: &str, config: &SessionConfig) -> Result<(SessionBuilder, Registration)> {
    let err = |what: &str, e: &dyn std::fmt::Display| Error::stage(stage, what, e);
    let mut builder = Session::builder(&runtime.environment).map_err(|e| err("creating session options", &e))?;
    builder = builder
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err("setting the optimization level", &e))?;
    // mmrt's own operators (GGUF weights read in place), for every graph that uses them
    let domain = super::gguf_op::domain().map_err(|e| err("creating mmrt's operator domain", &e))?;
    builder = builder.with_operators(domain).map_err(|e| err("registering mmrt's operators", &e))?;
    if let Some(n) = config.threads {
        crate::limits::check_threads(n).map_err(Error::Request)?;
        builder = builder.with_intra_threads(n).map_err(|e| err("setting the thread count", &e))?;
    }
    for (key, value) in &config.options {
        builder = builder.with_config_entry(key, value).map_err(|e| err(&format!("setting session option {key}={value}"), &e))?;
    }
    if !config.cpu_arena {
        // The CPU provider's registration is what turns the arena off.
        ort::ep::ExecutionProvider::register(&ort::ep::CPU::default().with_arena_allocator(false), &mut builder).map_err(|e| err("turning the CPU memory arena off", &e))?;
    }
    let (fallback, registered) = register_chain(&mut builder, config, stage, &runtime.info)?;
    let (builder, capture) = PlacementCapture::attach(builder, stage);
    Ok((builder, Registration { fallback, registered, capture }))
}

/// Held while a session is created: ONNX Runtime adds mmrt's operator domain
/// to a process-wide table then, and two sessions created at once can both
/// add it (the second fails: "the domain is already exist"). Seen in tests
/// that load bundles on parallel threads.
static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn commit(mut builder: SessionBuilder, graph: &Path, stage: &str) -> Result<Session> {
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    builder.commit_from_file(graph).map_err(|e| Error::stage(stage, &format!("loading {}", graph.display()), e))
}

/// What registering a stage's provider chain gave.
struct Registration {
    fallback: Option<String>,
    registered: Vec<ExecutionProviderKind>,
    capture: PlacementCapture,
}

impl Registration {
    fn opened(self, session: Session) -> OpenedSession {
        OpenedSession { session, fallback: self.fallback, registered: self.registered, placement: self.capture.finish() }
    }
}

/// Register the requested provider and the ones behind it
/// ([`fallback_chain`]: TensorRT, then CUDA, then the CPU). The requested
/// one failing is an error with `strict_provider`, else a recorded fallback
/// to the next; a backing provider failing is logged and skipped.
fn register_chain(builder: &mut SessionBuilder, config: &SessionConfig, stage: &str, info: &RuntimeInfo) -> Result<(Option<String>, Vec<ExecutionProviderKind>)> {
    let mut fallback = None;
    let mut registered = Vec::new();
    for (i, &kind) in fallback_chain(config.provider).iter().enumerate() {
        let options = if i == 0 { config.provider_options.clone() } else { backing_options(&config.provider_options, kind) };
        // A GPU provider's failure names the missing CUDA library or the driver, not only ONNX Runtime's message.
        let result = kind.register(builder, &options).map_err(|reason| match kind.is_gpu().then(|| super::library::cuda_unavailable_reason(info)).flatten() {
            Some(why) => format!("{reason}; {why}"),
            None => reason,
        });
        match result {
            Ok(()) => registered.push(kind),
            Err(reason) if i == 0 && config.strict_provider => {
                return Err(Error::ExecutionProvider { ep: config.provider.cli_name().into(), reason });
            }
            Err(reason) if i == 0 => {
                log::debug!("stage {stage}: {reason}; falling back");
                fallback = Some(reason);
            }
            Err(reason) => log::info!("stage {stage}: {} behind {} not registered: {reason}", kind.cli_name(), config.provider.cli_name()),
        }
    }
    Ok((fallback, registered))
}

/// Element type of a named graph input, or an error naming the stage and what exists.
pub fn input_type(session: &Session, stage: &str, name: &str) -> Result<TensorElementType> {
    let outlet = session.inputs().iter().find(|o| o.name() == name).ok_or_else(|| Error::Tensor {
        stage: stage.into(),
        tensor: name.into(),
        expected: "a graph input of this name (named in bundle.json)".into(),
        found: format!("inputs {:?}", session.inputs().iter().map(|o| o.name()).collect::<Vec<_>>()),
    })?;
    outlet.dtype().tensor_type().ok_or_else(|| Error::Tensor {
        stage: stage.into(),
        tensor: name.into(),
        expected: "a tensor".into(),
        found: format!("{:?}", outlet.dtype()),
    })
}

/// Check a named graph output exists.
pub fn require_output(session: &Session, stage: &str, name: &str) -> Result<()> {
    if session.outputs().iter().any(|o| o.name() == name) {
        return Ok(());
    }
    Err(Error::Tensor {
        stage: stage.into(),
        tensor: name.into(),
        expected: "a graph output of this name (named in bundle.json)".into(),
        found: format!("outputs {:?}", session.outputs().iter().map(|o| o.name()).collect::<Vec<_>>()),
    })
}

/// Static dimensions of a named input (`None` for symbolic ones).
pub fn input_dims(session: &Session, name: &str) -> Option<Vec<Option<i64>>> {
    let outlet = session.inputs().iter().find(|o| o.name() == name)?;
    let shape = outlet.dtype().tensor_shape()?;
    Some(shape.iter().map(|&d| (d >= 0).then_some(d)).collect())
}

/// Static dimensions of a named output (`None` for symbolic ones).
pub fn output_dims(session: &Session, name: &str) -> Option<Vec<Option<i64>>> {
    let outlet = session.outputs().iter().find(|o| o.name() == name)?;
    let shape = outlet.dtype().tensor_shape()?;
    Some(shape.iter().map(|&d| (d >= 0).then_some(d)).collect())
}

/// Compare a graph tensor's declared dimensions with the ones the manifest
/// implies (`None`: any size, e.g. the batch). A rank mismatch, or a static
/// graph dimension that differs from a required one, is an error naming the
/// stage, the tensor, `source` (the manifest field) and both shapes. A graph
/// that declares no shape passes.
pub fn check_dims(stage: &str, tensor: &str, declared: Option<&[Option<i64>]>, wanted: &[Option<usize>], source: &str) -> Result<()> {
    let Some(declared) = declared else { return Ok(()) };
    let show = |dims: &mut dyn Iterator<Item = Option<String>>| {
        format!("[{}]", dims.map(|d| d.unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(", "))
    };
    let agree = declared.len() == wanted.len()
        && declared.iter().zip(wanted).all(|(d, w)| match (d, w) {
            (Some(d), Some(w)) => usize::try_from(*d).is_ok_and(|d| d == *w),
            _ => true,
        });
    if agree {
        return Ok(());
    }
    Err(Error::Tensor {
        stage: stage.into(),
        tensor: tensor.into(),
        expected: format!("{} (from {source})", show(&mut wanted.iter().map(|w| w.map(|w| w.to_string())))),
        found: format!("{} declared by the graph", show(&mut declared.iter().map(|d| d.map(|d| d.to_string())))),
    })
}

/// One line per graph input and output: direction, name, element type, shape
/// (symbolic dimensions shown as `?`).
pub fn describe_io(session: &Session) -> Vec<String> {
    let line = |dir: &str, o: &ort::value::Outlet| {
        let dtype = o.dtype().tensor_type().map(|t| format!("{t:?}")).unwrap_or_else(|| "non-tensor".into());
        let dims = o
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().map(|&d| if d < 0 { "?".to_string() } else { d.to_string() }).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        format!("{dir} {:<28} {dtype} [{dims}]", o.name())
    };
    session.inputs().iter().map(|o| line("in ", o)).chain(session.outputs().iter().map(|o| line("out", o))).collect()
}
