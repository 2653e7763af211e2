//! Which execution provider each node of a session landed on, read from ONNX
//! Runtime's own placement report rather than inferred from what was asked for.
//!
//! ONNX Runtime reports placement only at verbose log level, once per session
//! while it is created (`VerifyEachNodeIsAssignedToAnEp` in
//! `onnxruntime/core/framework/session_state.cc`):
//!
//! ```text
//! Node placements
//!  All nodes placed on [CPUExecutionProvider]. Number of nodes: 12
//! ```
//!
//! or, when more than one provider holds nodes, one block per provider (in
//! no particular order) listing every node as `OpType (NodeName)`:
//!
//! ```text
//! Node placements
//!  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 2
//!   MatMulNBits (/model/layers.0/attn/q_proj/MatMulNBits)
//!   GroupQueryAttention (/model/layers.0/attn/GroupQueryAttention)
//!  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1
//!   Shape (/model/Shape)
//! ```
//!
//! Counts include the nodes of subgraphs (`If`, `Loop`, `Scan` bodies).
//! [`PlacementCapture`] turns verbose logging on for one session, with a
//! per-session logging function, so nothing reaches stderr; [`parse`] reads
//! the report (also from a log ONNX Runtime's default sink wrote).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ort::logging::LogLevel;
use ort::session::builder::SessionBuilder;

/// Where a session's nodes run, per provider, as ONNX Runtime reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    /// One entry per provider that holds nodes, most nodes first.
    pub per_provider: Vec<ProviderNodes>,
    /// Whether a placement report was found; `false` leaves `per_provider` empty.
    pub known: bool,
}

/// The nodes one execution provider holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderNodes {
    /// The provider as ONNX Runtime spells it, e.g. `CUDAExecutionProvider`.
    pub provider: String,
    /// Nodes placed on it, subgraph nodes included.
    pub nodes: usize,
    /// Op types with their counts, most frequent first. Empty when ONNX Runtime
    /// only said "All nodes placed on" (it lists nodes only for a split graph).
    pub op_types: Vec<OpCount>,
}

/// How many nodes of one op type a provider holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpCount {
    /// ONNX op type, e.g. `MatMulNBits`; a provider's fused node carries its own generated type.
    pub op_type: String,
    /// Nodes of that type.
    pub count: usize,
}

/// Op types named in a [`Placement::fell_back`] line before the rest are elided.
const OP_TYPES_SHOWN: usize = 6;

impl Placement {
    /// Nodes placed on `provider` (ONNX Runtime's spelling); 0 when unknown.
    pub fn nodes_on(&self, provider: &str) -> usize {
        self.per_provider.iter().filter(|p| p.provider == provider).map(|p| p.nodes).sum()
    }

    /// Nodes in the session, over all providers; 0 when unknown.
    pub fn total(&self) -> usize {
        self.per_provider.iter().map(|p| p.nodes).sum()
    }

    /// What did not land on `requested_ort_name`, in one line, e.g.
    /// `12 of 40 nodes on CPUExecutionProvider (MatMulNBits ×8, GroupQueryAttention ×4)`;
    /// `None` when every node is on it, or when placement is unknown.
    pub fn fell_back(&self, requested_ort_name: &str) -> Option<String> {
        let total = self.total();
        let elsewhere: Vec<String> = self
            .per_provider
            .iter()
            .filter(|p| p.provider != requested_ort_name && p.nodes > 0)
            .map(|p| {
                let mut line = format!("{} of {total} nodes on {}", p.nodes, p.provider);
                if !p.op_types.is_empty() {
                    let mut ops: Vec<String> = p.op_types.iter().take(OP_TYPES_SHOWN).map(|o| format!("{} ×{}", o.op_type, o.count)).collect();
                    match p.op_types.len().saturating_sub(OP_TYPES_SHOWN) {
                        0 => {}
                        1 => ops.push("1 more op type".into()),
                        more => ops.push(format!("{more} more op types")),
                    }
                    line.push_str(&format!(" ({})", ops.join(", ")));
                }
                line
            })
            .collect();
        (self.known && !elsewhere.is_empty()).then(|| elsewhere.join("; "))
    }

    /// One line for humans: `CUDAExecutionProvider 28, CPUExecutionProvider 12`,
    /// or `placement unknown`.
    pub fn summary(&self) -> String {
        if !self.known {
            return "placement unknown".into();
        }
        self.per_provider.iter().map(|p| format!("{} {}", p.provider, p.nodes)).collect::<Vec<_>>().join(", ")
    }
}

/// Read ONNX Runtime's placement report from log lines: the messages as a
/// logging function receives them, or lines of ONNX Runtime's default sink
/// (`… [V:onnxruntime:, session_state.cc:1578 VerifyEachNodeIsAssignedToAnEp] …`).
/// Other lines are skipped. Several reports (logs of several sessions) add up.
/// No report gives `known == false`; nothing here panics on odd input.
pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Placement {
    let mut reader = Reader::default();
    for line in lines {
        reader.feed(line);
    }
    reader.finish()
}

/// Incremental reader behind [`parse`] and [`PlacementCapture`]: keeps counts,
/// never the lines, so a graph of many thousand nodes costs a few op-type entries.
#[derive(Debug, Default)]
struct Reader {
    /// Per provider, in the order first reported.
    tallies: Vec<Tally>,
    /// The provider whose `  OpType (Name)` lines are being read.
    open: Option<usize>,
}

#[derive(Debug)]
struct Tally {
    provider: String,
    nodes: usize,
    ops: BTreeMap<String, usize>,
}

impl Reader {
    fn feed(&mut self, line: &str) {
        let line = strip_sink_prefix(line.trim_end_matches(['\r', '\n']));
        if let Some((listed, provider, nodes)) = header(line) {
            let i = match self.tallies.iter().position(|t| t.provider == provider) {
                Some(i) => i,
                None => {
                    self.tallies.push(Tally { provider: provider.to_string(), nodes: 0, ops: BTreeMap::new() });
                    self.tallies.len() - 1
                }
            };
            self.tallies[i].nodes += nodes;
            self.open = listed.then_some(i);
            return;
        }
        if let Some(i) = self.open {
            // `  OpType (NodeName)`; a node without a name is `  OpType ()`.
            let node = line.strip_prefix("  ").map(str::trim_start).unwrap_or("");
            if node.is_empty() {
                self.open = None;
                return;
            }
            let op = node.split_once(' ').map_or(node, |(op, _)| op);
            let ops = &mut self.tallies[i].ops;
            match ops.get_mut(op) {
                Some(n) => *n += 1,
                None => {
                    ops.insert(op.to_string(), 1);
                }
            }
        }
    }

    fn finish(self) -> Placement {
        let known = !self.tallies.is_empty();
        let mut per_provider: Vec<ProviderNodes> = self
            .tallies
            .into_iter()
            .map(|t| {
                let listed: usize = t.ops.values().sum();
                if listed > 0 && listed != t.nodes {
                    log::debug!("placement report: {} nodes on {} but {listed} listed", t.nodes, t.provider);
                }
                let mut op_types: Vec<OpCount> = t.ops.into_iter().map(|(op_type, count)| OpCount { op_type, count }).collect();
                op_types.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.op_type.cmp(&b.op_type)));
                ProviderNodes { provider: t.provider, nodes: t.nodes, op_types }
            })
            .collect();
        per_provider.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.provider.cmp(&b.provider)));
        Placement { per_provider, known }
    }
}

/// ` All nodes placed on [P]. Number of nodes: N` -> `(false, P, N)`;
/// ` Node(s) placed on [P]. Number of nodes: N` -> `(true, P, N)` (node lines follow).
fn header(line: &str) -> Option<(bool, &str, usize)> {
    let line = line.trim_start();
    let (listed, rest) = if let Some(rest) = line.strip_prefix("All nodes placed on [") {
        (false, rest)
    } else if let Some(rest) = line.strip_prefix("Node(s) placed on [") {
        (true, rest)
    } else {
        return None;
    };
    let (provider, rest) = rest.split_once(']')?;
    let nodes = rest.strip_prefix('.')?.trim_start().strip_prefix("Number of nodes:")?.trim().parse().ok()?;
    (!provider.is_empty()).then_some((listed, provider, nodes))
}

/// The message of a line ONNX Runtime's default sink wrote
/// (`2025-… [V:onnxruntime:, file.cc:12 Function] message`); other lines as they are.
fn strip_sink_prefix(line: &str) -> &str {
    let Some(at) = line.find(":onnxruntime:") else { return line };
    let tagged = at >= 2 && line.as_bytes()[at - 2] == b'[' && b"VIWEF".contains(&line.as_bytes()[at - 1]);
    match line[at..].find("] ") {
        Some(end) if tagged => &line[at + end + 2..],
        _ => line,
    }
}

/// How ONNX Runtime's warning about nodes off the preferred providers begins;
/// with a capture it is passed on at info level, the placement says more.
const FALLBACK_WARNING: &str = "Some nodes were not assigned to the preferred execution providers";

/// What the logging function shares with the capture.
#[derive(Debug, Default)]
struct Shared {
    reader: Reader,
    /// Set by [`PlacementCapture::finish`]: later messages (from runs) are not read.
    finished: bool,
}

/// Reads one session's placement report while the session is created.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let runtime = mmrt::runtime::OrtRuntime::load(None)?;
/// use mmrt::runtime::placement::PlacementCapture;
/// let builder = ort::session::Session::builder(&runtime.environment)?;
/// let (mut builder, capture) = PlacementCapture::attach(builder, "decoder");
/// let session = builder.commit_from_file("models/tiny/decoder.onnx")?;
/// let placement = capture.finish();
/// println!("{}", placement.summary()); // CPUExecutionProvider 179
/// # Ok(()) }
/// ```
///
/// Attaching sets the session's log level to verbose and routes its messages to
/// a logging function of its own (not stderr): placement lines are counted
/// (no line is kept), warnings and errors go to the `log` crate under target
/// `onnxruntime` (the "some nodes were not assigned to the preferred execution
/// providers" warning at info level), the rest is dropped. The function stays with the session, so
/// later messages of its runs reach it too; after [`finish`](Self::finish)
/// only warnings and errors are passed on.
#[derive(Debug)]
pub struct PlacementCapture {
    /// `None` when the logging function could not be set: placement unknown.
    shared: Option<Arc<Mutex<Shared>>>,
}

impl PlacementCapture {
    /// Route `builder`'s session log through a capture; `stage` names the
    /// session in forwarded warnings. Never fails: where ONNX Runtime refuses
    /// the logging function or the level, the builder comes back as it was (or
    /// with the function but its old level) and [`finish`](Self::finish) says unknown.
    pub fn attach(builder: SessionBuilder, stage: &str) -> (SessionBuilder, PlacementCapture) {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stage = stage.to_string();
        let sink = Arc::clone(&shared);
        let logger = Arc::new(move |level: LogLevel, _category: &str, _id: &str, location: &str, message: &str| match level {
            // The placement says which nodes left the preferred provider; this warning only says that some did.
            LogLevel::Warning if message.starts_with(FALLBACK_WARNING) => log::info!(target: "onnxruntime", "{stage}: {message}"),
            LogLevel::Warning => log::warn!(target: "onnxruntime", "{stage}: {message}"),
            LogLevel::Error | LogLevel::Fatal => log::error!(target: "onnxruntime", "{stage}: {message} ({location})"),
            LogLevel::Verbose | LogLevel::Info => {
                // Called from ONNX Runtime's threads through C: never panic here, so a poisoned lock is used as is.
                let mut shared = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !shared.finished {
                    shared.reader.feed(message);
                }
            }
        });
        let builder = match builder.with_logger(logger) {
            Ok(builder) => builder,
            Err(e) => {
                log::debug!("placement unknown: ONNX Runtime refused a session logging function ({e})");
                return (e.recover(), PlacementCapture { shared: None });
            }
        };
        match builder.with_log_level(LogLevel::Verbose) {
            Ok(builder) => (builder, PlacementCapture { shared: Some(shared) }),
            Err(e) => {
                log::debug!("placement unknown: ONNX Runtime refused the verbose session log level ({e})");
                (e.recover(), PlacementCapture { shared: None })
            }
        }
    }

    /// The placement reported while the session was created; call it after the
    /// commit. Unknown when nothing was reported (a failed commit, a minimal
    /// build of ONNX Runtime, or a capture that could not attach).
    pub fn finish(self) -> Placement {
        let Some(shared) = self.shared else { return Placement::default() };
        let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.finished = true;
        std::mem::take(&mut shared.reader).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;

    use crate::runtime::OrtRuntime;

    /// Recorded from this library (1.31.1, CPU build) by `record_cpu_fixture`.
    const CPU_TINY_DECODER: &str = include_str!("../../tests/fixtures/ort_logs/cpu_tiny_decoder.log");
    /// Written in ONNX Runtime's format, not recorded (see the folder's README).
    const CUDA_CPU_MIXED: &str = include_str!("../../tests/fixtures/ort_logs/cuda_cpu_mixed_decoder.log");

    fn tiny(graph: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny").join(graph)
    }

    fn runtime() -> Option<OrtRuntime> {
        match OrtRuntime::load(None) {
            Ok(rt) => Some(rt),
            Err(e) => {
                eprintln!("skipped: ONNX Runtime cannot be loaded (bash .ci/setup-ort): {e}");
                None
            }
        }
    }

    /// Session options as `runtime::session` sets them on the CPU.
    fn builder(rt: &OrtRuntime) -> SessionBuilder {
        Session::builder(&rt.environment).unwrap().with_optimization_level(GraphOptimizationLevel::Level3).unwrap()
    }

    fn ops(p: &ProviderNodes) -> Vec<(&str, usize)> {
        p.op_types.iter().map(|o| (o.op_type.as_str(), o.count)).collect()
    }

    #[test]
    fn recorded_cpu_log_puts_every_node_on_cpu() {
        let placement = parse(CPU_TINY_DECODER.lines());
        assert!(placement.known);
        assert_eq!(placement.per_provider.len(), 1);
        assert_eq!(placement.per_provider[0].provider, "CPUExecutionProvider");
        assert_eq!(placement.nodes_on("CPUExecutionProvider"), 179);
        assert_eq!(placement.total(), 179);
        // "All nodes placed on" lists no nodes.
        assert!(placement.per_provider[0].op_types.is_empty());
        assert_eq!(placement.fell_back("CPUExecutionProvider"), None);
        assert_eq!(placement.fell_back("CUDAExecutionProvider").as_deref(), Some("179 of 179 nodes on CPUExecutionProvider"));
        assert_eq!(placement.summary(), "CPUExecutionProvider 179");
    }

    #[test]
    fn mixed_log_counts_nodes_and_op_types_per_provider() {
        let placement = parse(CUDA_CPU_MIXED.lines());
        assert!(placement.known);
        // Most nodes first, whatever order ONNX Runtime printed the blocks in.
        let names: Vec<&str> = placement.per_provider.iter().map(|p| p.provider.as_str()).collect();
        assert_eq!(names, ["CUDAExecutionProvider", "CPUExecutionProvider"]);
        assert_eq!(placement.nodes_on("CUDAExecutionProvider"), 46);
        assert_eq!(placement.nodes_on("CPUExecutionProvider"), 9);
        assert_eq!(placement.nodes_on("TensorrtExecutionProvider"), 0);
        assert_eq!(placement.total(), 55);
        assert_eq!(
            ops(&placement.per_provider[0]),
            [("MatMulNBits", 19), ("SkipSimplifiedLayerNormalization", 8), ("FastGelu", 4), ("MemcpyFromHost", 4), ("Mul", 4), ("GroupQueryAttention", 3),
             ("MemcpyToHost", 2), ("Gather", 1), ("SimplifiedLayerNormalization", 1)]
        );
        assert_eq!(
            ops(&placement.per_provider[1]),
            [("Cast", 2), ("MatMulNBits", 2), ("Gather", 1), ("GroupQueryAttention", 1), ("ReduceSum", 1), ("Shape", 1), ("Sub", 1)]
        );
        assert_eq!(placement.summary(), "CUDAExecutionProvider 46, CPUExecutionProvider 9");
        assert_eq!(
            placement.fell_back("CUDAExecutionProvider").as_deref(),
            Some("9 of 55 nodes on CPUExecutionProvider (Cast ×2, MatMulNBits ×2, Gather ×1, GroupQueryAttention ×1, ReduceSum ×1, Shape ×1, 1 more op type)")
        );
        assert_eq!(
            placement.fell_back("CPUExecutionProvider").as_deref(),
            Some("46 of 55 nodes on CUDAExecutionProvider (MatMulNBits ×19, SkipSimplifiedLayerNormalization ×8, FastGelu ×4, MemcpyFromHost ×4, Mul ×4, GroupQueryAttention ×3, 3 more op types)")
        );
        // TensorRT asked for, nothing on it: both other blocks are named.
        assert!(placement.fell_back("TensorrtExecutionProvider").unwrap().contains("46 of 55 nodes on CUDAExecutionProvider (MatMulNBits ×19, "));
        assert!(placement.fell_back("TensorrtExecutionProvider").unwrap().contains("; 9 of 55 nodes on CPUExecutionProvider (Cast ×2, "));
    }

    #[test]
    fn all_nodes_form_and_the_default_sink_prefix() {
        let log = "2026-01-07 10:00:00.123 [V:onnxruntime:, session_state.cc:1578 VerifyEachNodeIsAssignedToAnEp] Node placements\n\
                   2026-01-07 10:00:00.123 [V:onnxruntime:, session_state.cc:1581 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [XnnpackExecutionProvider]. Number of nodes: 7\n";
        let placement = parse(log.lines());
        assert_eq!(placement.summary(), "XnnpackExecutionProvider 7");
        let split = ["Node placements", " Node(s) placed on [DmlExecutionProvider]. Number of nodes: 2", "  Conv (conv1)", "  Relu ()", "Done saving OrtValue mappings."];
        let placement = parse(split);
        assert_eq!(ops(&placement.per_provider[0]), [("Conv", 1), ("Relu", 1)]);
    }

    #[test]
    fn a_log_without_a_report_is_unknown() {
        for log in ["", "Node placements", "All nodes placed on [CPUExecutionProvider]. Number of nodes: many", " Node(s) placed on []. Number of nodes: 3",
                    " All nodes placed on [CPU", "\u{0}\u{ff}[V:onnxruntime:", "  MatMul (stray node line)"] {
            let placement = parse(log.lines());
            assert!(!placement.known, "{log:?}");
            assert_eq!(placement.total(), 0);
            assert_eq!(placement.summary(), "placement unknown");
            assert_eq!(placement.fell_back("CUDAExecutionProvider"), None);
        }
        assert_eq!(serde_json::to_string(&Placement::default()).unwrap(), r#"{"per_provider":[],"known":false}"#);
    }

    #[test]
    fn node_lines_end_at_the_next_message() {
        let log = [" Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 1", "  MatMul (a)", "SaveMLValueNameIndexMapping", "  Attention (not a node line any more)"];
        let placement = parse(log);
        assert_eq!(ops(&placement.per_provider[0]), [("MatMul", 1)]);
    }

    #[test]
    fn two_reports_add_up() {
        let placement = parse(CPU_TINY_DECODER.lines().chain(CUDA_CPU_MIXED.lines()));
        assert_eq!(placement.nodes_on("CPUExecutionProvider"), 179 + 9);
        assert_eq!(placement.total(), 179 + 55);
    }

    #[test]
    fn serializes_for_run_json() {
        let placement = parse(["Node placements", " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1", "  Shape (s)"]);
        assert_eq!(
            serde_json::to_string(&placement).unwrap(),
            r#"{"per_provider":[{"provider":"CPUExecutionProvider","nodes":1,"op_types":[{"op_type":"Shape","count":1}]}],"known":true}"#
        );
    }

    #[test]
    fn capture_on_cpu_puts_every_tiny_decoder_node_on_cpu() {
        let Some(rt) = runtime() else { return };
        let (mut builder, capture) = PlacementCapture::attach(builder(&rt), "decoder");
        let _session = builder.commit_from_file(tiny("decoder.onnx")).unwrap();
        let placement = capture.finish();
        assert!(placement.known, "no placement report captured");
        assert!(placement.total() > 0);
        assert_eq!(placement.nodes_on("CPUExecutionProvider"), placement.total(), "{}", placement.summary());
        assert_eq!(placement.fell_back("CPUExecutionProvider"), None);
    }

    #[test]
    fn a_failed_commit_leaves_placement_unknown() {
        let Some(rt) = runtime() else { return };
        let (mut builder, capture) = PlacementCapture::attach(builder(&rt), "missing");
        assert!(builder.commit_from_file(tiny("no-such-graph.onnx")).is_err());
        assert!(!capture.finish().known);
    }

    /// Rewrites `tests/fixtures/ort_logs/cpu_tiny_decoder.log`: every message the
    /// session's logging function receives while models/tiny's decoder opens.
    #[test]
    #[ignore = "rewrites a fixture; run by hand after an ONNX Runtime update"]
    fn record_cpu_fixture() {
        let Some(rt) = runtime() else { return };
        let lines = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&lines);
        let logger = Arc::new(move |_: LogLevel, _: &str, _: &str, _: &str, message: &str| {
            let mut lines = sink.lock().unwrap();
            lines.push_str(message);
            lines.push('\n');
        });
        let mut builder = builder(&rt).with_logger(logger).unwrap().with_log_level(LogLevel::Verbose).unwrap();
        let _session = builder.commit_from_file(tiny("decoder.onnx")).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ort_logs/cpu_tiny_decoder.log");
        std::fs::write(&path, &*lines.lock().unwrap()).unwrap();
        eprintln!("wrote {}", path.display());
    }

    /// Session creation time with and without a capture, interleaved, best of
    /// `MMRT_PLACEMENT_ROUNDS` (default 15) each; extra graphs in `MMRT_PLACEMENT_GRAPHS`
    /// (colon-separated paths).
    #[test]
    #[ignore = "timing; run by hand with --nocapture"]
    fn capture_overhead() {
        let Some(rt) = runtime() else { return };
        let rounds: usize = std::env::var("MMRT_PLACEMENT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
        let mut graphs = vec![tiny("decoder.onnx"), tiny("generator_denoiser.onnx")];
        if let Ok(extra) = std::env::var("MMRT_PLACEMENT_GRAPHS") {
            graphs.extend(extra.split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
        }
        for graph in graphs {
            let (mut plain, mut captured) = (Vec::new(), Vec::new());
            let mut nodes = 0;
            for _ in 0..rounds {
                let start = Instant::now();
                drop(builder(&rt).commit_from_file(&graph).unwrap());
                plain.push(start.elapsed());
                let start = Instant::now();
                let (mut b, capture) = PlacementCapture::attach(builder(&rt), "timing");
                drop(b.commit_from_file(&graph).unwrap());
                nodes = capture.finish().total();
                captured.push(start.elapsed());
            }
            let messages = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = Arc::clone(&messages);
            let logger = Arc::new(move |_: LogLevel, _: &str, _: &str, _: &str, _: &str| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            drop(builder(&rt).with_logger(logger).unwrap().with_log_level(LogLevel::Verbose).unwrap().commit_from_file(&graph).unwrap());
            let messages = messages.load(std::sync::atomic::Ordering::Relaxed);
            let stats = |v: &mut Vec<Duration>| {
                v.sort();
                (v[0].as_secs_f64() * 1e3, v[v.len() / 2].as_secs_f64() * 1e3)
            };
            let ((pmin, pmed), (cmin, cmed)) = (stats(&mut plain), stats(&mut captured));
            eprintln!(
                "{}: {nodes} nodes, {messages} messages; plain min {pmin:.1} ms median {pmed:.1} ms; captured min {cmin:.1} ms median {cmed:.1} ms ({:+.1}% median)",
                graph.display(),
                (cmed / pmed - 1.0) * 100.0
            );
        }
    }
}
