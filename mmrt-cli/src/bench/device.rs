//! Device figures of a GPU execution provider (CUDA, TensorRT): the device
//! memory bandwidth the roofline divides by, and the device memory the
//! measuring process held at its peak.
//!
//! * Bandwidth: a one-node ONNX graph (`Identity` of a float32 tensor,
//!   [`identity_model`], written here at run time) run through ONNX Runtime
//!   itself with [`ort::session::IoBinding`], input and output both bound to
//!   buffers in the provider's device memory, so every run is one
//!   device-to-device copy; bytes/s = (bytes read + bytes written) / time, like
//!   the host probe ([`super::probe`]).
//! * Memory peak: `nvidia-smi` sampled from a thread while the provider loads
//!   and runs ([`MemorySampler`]): the process's own `used_memory` when the
//!   driver lists it, else the growth of the device-wide `memory.used` (in a
//!   container the driver lists host process ids, not ours). `ort` 2.0.0-rc.15
//!   with `api-20` has no allocator statistics (`AllocatorGetStats` is API 23),
//!   and the pipeline's CUDA arenas are not reachable from here, so the driver
//!   is the one source.
//!
//! Neither runs for host providers. Where one cannot run (no CUDA provider in
//! the library, no `nvidia-smi`) it says why, as [`Measured::NotMeasured`].

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::ep::ExecutionProvider;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::Tensor;

use mmrt::runtime::OrtRuntime;

use super::stats::Summary;

/// Buffer sizes (bytes per side) tried in order by the device probe: the
/// first that the device can hold twice. 512 MiB is ten times the largest GPU
/// L2 cache (50 MiB on H100/H200), and long enough (about 0.3 ms at 3 TB/s)
/// that one ONNX Runtime run's fixed cost (tens of microseconds) stays small.
pub const DEVICE_BUFFER_BYTES: [usize; 3] = [512 << 20, 128 << 20, 32 << 20];
/// Time between two `nvidia-smi` samples. The CUDA arena keeps what it grew
/// to until its session is dropped, so a peak lasts far longer than this.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Longest wait for one `nvidia-smi` answer (a hung driver must not hang the bench).
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;

/// A figure, or why it was not measured. In JSON: the figure's own object, or
/// `{"not_measured": "why"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Measured<T> {
    /// The figure.
    Value(T),
    /// Why there is none.
    NotMeasured {
        /// The reason, for people.
        not_measured: String,
    },
}

impl<T> Measured<T> {
    /// Not measured, because `why`.
    pub fn not(why: impl Into<String>) -> Self {
        Measured::NotMeasured { not_measured: why.into() }
    }

    /// The figure, if measured.
    pub fn value(&self) -> Option<&T> {
        match self {
            Measured::Value(v) => Some(v),
            Measured::NotMeasured { .. } => None,
        }
    }

    /// Why it was not measured, if it was not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Measured::Value(_) => None,
            Measured::NotMeasured { not_measured } => Some(not_measured),
        }
    }
}

impl<T> From<std::result::Result<T, String>> for Measured<T> {
    fn from(r: std::result::Result<T, String>) -> Self {
        r.map_or_else(Measured::not, Measured::Value)
    }
}

/// What the device copy probe measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceBandwidth {
    /// Bytes per second (read + written), over the repetitions.
    pub bytes_per_s: Summary,
    /// Size of each of the two buffers.
    pub buffer_bytes: usize,
    /// The memory copied in (`Cuda:0`, `Cpu:0`).
    pub device: String,
    /// How it was measured.
    pub method: String,
}

/// Where the probe's buffers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeDevice {
    /// Host memory on the CPU provider (what the unit tests can run).
    Host,
    /// CUDA device memory of GPU `device_id`, on the CUDA provider.
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

impl ProbeDevice {
    /// `[device memory, default]`, the memory inputs and outputs are bound to.
    fn memory_info(self) -> ort::Result<MemoryInfo<'static>> {
        match self {
            ProbeDevice::Host => MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default),
            ProbeDevice::Cuda { device_id } => MemoryInfo::new(AllocationDevice::CUDA, device_id, AllocatorType::Device, MemoryType::Default),
        }
    }

    fn name(self) -> String {
        match self {
            ProbeDevice::Host => "Cpu:0".into(),
            ProbeDevice::Cuda { device_id } => format!("Cuda:{device_id}"),
        }
    }
}

/// Device bandwidth for a GPU provider's roofline: [`copy_bandwidth`] on CUDA
/// device 0 (TensorRT computes in the same CUDA memory), or why it cannot run.
pub fn gpu_copy_bandwidth(runtime: &OrtRuntime, reps: usize) -> Measured<DeviceBandwidth> {
    if !ort::ep::CUDA::is_available().unwrap_or(false) {
        return Measured::not(format!(
            "the loaded ONNX Runtime library ({}) has no CUDA provider, so there is no device memory to copy in",
            runtime.info.library.display()
        ));
    }
    copy_bandwidth(runtime, ProbeDevice::Cuda { device_id: 0 }, &DEVICE_BUFFER_BYTES, reps).into()
}

/// Time `reps` runs (after one untimed) of [`identity_model`] with input and
/// output bound to buffers of the first size in `buffer_bytes` that `device`
/// can hold. Each run copies the input into the output on the device; a run
/// returns after the provider synchronized its stream, and the bound outputs
/// are synchronized again before the clock stops.
pub fn copy_bandwidth(runtime: &OrtRuntime, device: ProbeDevice, buffer_bytes: &[usize], reps: usize) -> std::result::Result<DeviceBandwidth, String> {
    let mut builder = Session::builder(&runtime.environment).map_err(|e| format!("creating the probe's session options: {e}"))?;
    if let ProbeDevice::Cuda { device_id } = device {
        ort::ep::CUDA::default()
            .with_device_id(device_id)
            .register(&mut builder)
            .map_err(|e| format!("the CUDA provider did not register for the copy probe: {e}"))?;
    }
    let mut session = builder.commit_from_memory(&identity_model()).map_err(|e| format!("opening the copy probe's Identity graph: {e}"))?;
    let memory = device.memory_info().map_err(|e| format!("describing {} memory: {e}", device.name()))?;
    let allocator = Allocator::new(&session, memory).map_err(|e| format!("getting the session's {} allocator: {e}", device.name()))?;

    let mut failures = Vec::new();
    for &bytes in buffer_bytes {
        let len = bytes / std::mem::size_of::<f32>();
        // Contents do not matter: the copy moves bytes, it does no arithmetic.
        let buffers = Tensor::<f32>::new(&allocator, [len]).and_then(|x| Ok((x, Tensor::<f32>::new(&allocator, [len])?)));
        let (x, y) = match buffers {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{} MiB: {e}", bytes >> 20));
                continue;
            }
        };
        let mut binding = session.create_binding().map_err(|e| format!("creating the probe's I/O binding: {e}"))?;
        binding.bind_input(IDENTITY_INPUT, &x).map_err(|e| format!("binding the probe's input: {e}"))?;
        binding.bind_output(IDENTITY_OUTPUT, y).map_err(|e| format!("binding the probe's output: {e}"))?;
        let mut run = || -> std::result::Result<f64, String> {
            let start = Instant::now();
            drop(session.run_binding(&binding).map_err(|e| format!("running the copy probe: {e}"))?);
            binding.synchronize_outputs().map_err(|e| format!("synchronizing the probe's output: {e}"))?;
            Ok(start.elapsed().as_secs_f64())
        };
        run()?;
        let samples = (0..reps.max(1)).map(|_| run().map(|s| (2 * len * 4) as f64 / s)).collect::<std::result::Result<Vec<_>, _>>()?;
        return Ok(DeviceBandwidth {
            bytes_per_s: Summary::from_samples(samples).ok_or("the copy probe timed no finite sample")?,
            buffer_bytes: len * 4,
            device: device.name(),
            method: format!(
                "ONNX Runtime run of a one-node Identity graph, input and output bound (IoBinding) to two {} MiB float32 buffers in {} memory: one device-to-device copy per run; bytes/s = (bytes read + bytes written) / time of the run",
                (len * 4) >> 20,
                device.name()
            ),
        });
    }
    Err(format!("no probe buffer pair fit in {} memory ({})", device.name(), failures.join("; ")))
}

/// The probe graph's input name.
pub const IDENTITY_INPUT: &str = "x";
/// The probe graph's output name.
pub const IDENTITY_OUTPUT: &str = "y";

/// A serialized ONNX `ModelProto` (IR 8, opset 13): `y = Identity(x)`, both
/// float32 of shape `[n]` (`n` symbolic, so one graph serves any buffer size).
///
/// Field numbers are the ONNX protobuf's (onnx/onnx.proto): ModelProto
/// ir_version = 1, graph = 7, opset_import = 8; GraphProto node = 1, name = 2,
/// input = 11, output = 12; NodeProto input = 1, output = 2, op_type = 4;
/// ValueInfoProto name = 1, type = 2; TypeProto tensor_type = 1;
/// TypeProto.Tensor elem_type = 1, shape = 2; TensorShapeProto dim = 1;
/// Dimension dim_param = 2; OperatorSetIdProto domain = 1, version = 2.
pub fn identity_model() -> Vec<u8> {
    /// `[n]` float32 (`TensorProto.DataType.FLOAT` = 1), named `name`.
    fn value_info(name: &str) -> Vec<u8> {
        let mut dim = Vec::new();
        bytes_field(&mut dim, 2, b"n");
        let mut shape = Vec::new();
        bytes_field(&mut shape, 1, &dim);
        let mut tensor = Vec::new();
        varint_field(&mut tensor, 1, 1);
        bytes_field(&mut tensor, 2, &shape);
        let mut ty = Vec::new();
        bytes_field(&mut ty, 1, &tensor);
        let mut info = Vec::new();
        bytes_field(&mut info, 1, name.as_bytes());
        bytes_field(&mut info, 2, &ty);
        info
    }
    let mut node = Vec::new();
    bytes_field(&mut node, 1, IDENTITY_INPUT.as_bytes());
    bytes_field(&mut node, 2, IDENTITY_OUTPUT.as_bytes());
    bytes_field(&mut node, 4, b"Identity");
    let mut graph = Vec::new();
    bytes_field(&mut graph, 1, &node);
    bytes_field(&mut graph, 2, b"mmrt_copy_probe");
    bytes_field(&mut graph, 11, &value_info(IDENTITY_INPUT));
    bytes_field(&mut graph, 12, &value_info(IDENTITY_OUTPUT));
    let mut opset = Vec::new();
    bytes_field(&mut opset, 1, b"");
    varint_field(&mut opset, 2, 13);
    let mut model = Vec::new();
    varint_field(&mut model, 1, 8);
    bytes_field(&mut model, 7, &graph);
    bytes_field(&mut model, 8, &opset);
    model
}

/// Append a base-128 varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append field `number` with wire type 0 (varint).
fn varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    varint(out, u64::from(number) << 3);
    varint(out, v);
}

/// Append field `number` with wire type 2 (length-delimited).
fn bytes_field(out: &mut Vec<u8>, number: u32, body: &[u8]) {
    varint(out, u64::from(number) << 3 | 2);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// The device memory a provider's measuring process held at its peak.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMemory {
    /// Largest sample, in bytes.
    pub peak_bytes: u64,
    /// `nvidia-smi` samples taken.
    pub samples: usize,
    /// What was sampled.
    pub method: String,
}

/// `nvidia-smi` sampled from a background thread until [`MemorySampler::finish`].
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Measured<DeviceMemory>>>,
}

impl MemorySampler {
    /// Start sampling the device memory of process `pid` (and of the whole
    /// device, measured from now, for when the driver does not list `pid`).
    pub fn start(pid: u32) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nvidia-smi sampler".into())
            .spawn(move || sample(pid, &flag, |args| nvidia_smi(Path::new("nvidia-smi"), args)))
            .ok();
        MemorySampler { stop, thread }
    }

    /// Take a last sample, stop, and return the peak (or why there is none).
    pub fn finish(mut self) -> Measured<DeviceMemory> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(m)) => m,
            Some(Err(_)) => Measured::not("the nvidia-smi sampler thread panicked"),
            None => Measured::not("the nvidia-smi sampler thread could not start"),
        }
    }
}

impl Drop for MemorySampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The sampler's loop, with `query` running `nvidia-smi ARGS` (a seam for tests).
fn sample(pid: u32, stop: &AtomicBool, query: impl Fn(&[&str]) -> std::result::Result<String, String>) -> Measured<DeviceMemory> {
    let apps = &["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"][..];
    let used = &["--query-gpu=memory.used", "--format=csv,noheader,nounits"][..];
    let baseline = match query(used).map(|t| parse_used_mib(&t)) {
        Ok(Some(mib)) => mib,
        Ok(None) => return Measured::not("nvidia-smi reported no GPU memory.used"),
        Err(why) => return Measured::not(why),
    };
    let (mut own_peak, mut device_peak, mut samples) = (None::<u64>, baseline, 0);
    loop {
        // Read the flag first: the last round samples after the caller asked to stop.
        let last = stop.load(Ordering::Relaxed);
        if let Ok(text) = query(apps) {
            if let Some(mib) = parse_process_mib(&text, pid) {
                own_peak = Some(own_peak.map_or(mib, |p| p.max(mib)));
            }
        }
        if let Some(mib) = query(used).ok().and_then(|t| parse_used_mib(&t)) {
            device_peak = device_peak.max(mib);
        }
        samples += 1;
        if last {
            break;
        }
        let until = Instant::now() + SAMPLE_EVERY;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let every = SAMPLE_EVERY.as_millis();
    Measured::Value(match own_peak {
        Some(mib) => DeviceMemory {
            peak_bytes: mib * MIB,
            samples,
            method: format!("largest used_memory of this process (pid {pid}) in nvidia-smi --query-compute-apps, sampled every {every} ms from before the runtime loaded to the end of the measured runs; includes the CUDA context"),
        },
        None => DeviceMemory {
            peak_bytes: (device_peak - baseline) * MIB,
            samples,
            method: format!("nvidia-smi does not list this process (pid {pid}; in a container it shows host ids): largest device-wide memory.used (all GPUs) minus its value before the runtime loaded, sampled every {every} ms to the end of the measured runs; other processes on the GPU count too"),
        },
    })
}

/// `used_memory` (MiB) of `pid` in `--query-compute-apps=pid,used_memory
/// --format=csv,noheader,nounits` output (summed over GPUs), if listed.
fn parse_process_mib(text: &str, pid: u32) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let mut fields = line.split(',').map(str::trim);
        let (Some(p), Some(mib)) = (fields.next(), fields.next()) else { continue };
        if p.parse() == Ok(pid) {
            if let Ok(mib) = mib.parse::<u64>() {
                found = Some(found.unwrap_or(0) + mib);
            }
        }
    }
    found
}

/// The sum of `--query-gpu=memory.used --format=csv,noheader,nounits` lines (MiB).
fn parse_used_mib(text: &str) -> Option<u64> {
    let values: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Run `program ARGS`, returning stdout, or why it gave none (not found,
/// failed, or no answer within [`NVIDIA_SMI_TIMEOUT`]).
fn nvidia_smi(program: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let name = program.display();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name} could not run ({e}): no NVIDIA driver tools on PATH"))?;
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} gave no answer in {} s", NVIDIA_SMI_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("reading {name}'s output: {e}"))?;
    if !out.status.success() {
        return Err(format!("{name} {} failed ({})", args.join(" "), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> OrtRuntime {
        OrtRuntime::load(None).expect("ONNX Runtime (run .ci/setup-ort)")
    }

    #[test]
    fn varints_are_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, 512 << 20);
        assert_eq!(out, [0x01, 0xac, 0x02, 0x80, 0x80, 0x80, 0x80, 0x02]);
    }

    #[test]
    fn identity_graph_opens_and_copies_on_the_cpu() {
        let runtime = runtime();
        let model = identity_model();
        let io = mmrt::onnx_proto::parse_graph_io(&model).expect("the written graph parses");
        let names = |v: &[mmrt::onnx_proto::ValueInfo]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!((names(&io.inputs), names(&io.outputs)), (vec!["x float32 [n]".to_string()], vec!["y float32 [n]".to_string()]));

        let mut session = Session::builder(&runtime.environment).unwrap().commit_from_memory(&model).expect("ONNX Runtime opens the graph");
        for len in [1, 1000] {
            let data: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let input = Tensor::from_array(([len], data.clone())).unwrap();
            let outputs = session.run(ort::inputs![IDENTITY_INPUT => input]).expect("run");
            let (shape, out) = outputs[IDENTITY_OUTPUT].try_extract_tensor::<f32>().unwrap();
            assert_eq!(shape.to_vec(), [len as i64]);
            assert_eq!(out, &data[..], "output equals input ({len} elements)");
        }
    }

    #[test]
    fn copy_probe_runs_through_io_binding_on_host_memory() {
        let bw = copy_bandwidth(&runtime(), ProbeDevice::Host, &[1 << 20], 3).expect("host copy probe");
        assert_eq!(bw.bytes_per_s.samples.len(), 3);
        assert!(bw.bytes_per_s.min > 0.0, "{bw:?}");
        assert_eq!((bw.buffer_bytes, bw.device.as_str()), (1 << 20, "Cpu:0"));
        assert!(bw.method.contains("IoBinding"), "{}", bw.method);
    }

    #[test]
    fn gpu_probe_reports_why_without_cuda() {
        let runtime = runtime(); // first: asking ort about providers before a library is loaded panics
        if ort::ep::CUDA::is_available().unwrap_or(false) {
            return; // a GPU build: measured for real by .ci/gpu-check
        }
        let m = gpu_copy_bandwidth(&runtime, 1);
        assert!(m.reason().is_some_and(|r| r.contains("no CUDA provider")), "{m:?}");
        assert_eq!(serde_json::to_value(&m).unwrap()["not_measured"], m.reason().unwrap());
    }

    #[test]
    fn measured_round_trips_through_json() {
        let m = Measured::Value(DeviceMemory { peak_bytes: 5, samples: 2, method: "m".into() });
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"peak_bytes":5,"samples":2,"method":"m"}"#);
        assert_eq!(serde_json::from_str::<Measured<DeviceMemory>>(&text).unwrap(), m);
        let not = Measured::<DeviceMemory>::not("why");
        assert_eq!(serde_json::from_str::<Measured<DeviceMemory>>(&serde_json::to_string(&not).unwrap()).unwrap(), not);
    }

    #[test]
    fn nvidia_smi_lines_parse() {
        let apps = "4242, 1536\n17, 80\n4242, 512\n";
        assert_eq!(parse_process_mib(apps, 4242), Some(2048), "summed over GPUs");
        assert_eq!(parse_process_mib(apps, 5), None);
        assert_eq!(parse_process_mib("", 5), None);
        assert_eq!(parse_used_mib("1000\n 24 \n"), Some(1024));
        assert_eq!(parse_used_mib("[N/A]\n"), None);
    }

    #[test]
    fn sampler_prefers_the_process_then_the_device_then_says_why() {
        use std::cell::Cell;
        let stop = AtomicBool::new(true); // one round
        // The process is listed: its own figure.
        let own = sample(7, &stop, |args| Ok(if args[0].contains("compute-apps") { "7, 300\n".into() } else { "1000\n".into() }));
        let own = own.value().expect("measured").clone();
        assert_eq!(own.peak_bytes, 300 * MIB);
        assert!(own.method.contains("pid 7"));
        // Not listed: device-wide growth since the baseline.
        let calls = Cell::new(0);
        let device = sample(7, &stop, |args| {
            calls.set(calls.get() + 1);
            Ok(if args[0].contains("compute-apps") { "99, 300\n".into() } else if calls.get() == 1 { "1000\n".into() } else { "1700\n".into() })
        });
        let device = device.value().expect("measured").clone();
        assert_eq!(device.peak_bytes, 700 * MIB);
        assert!(device.method.contains("device-wide"));
        // No nvidia-smi: the reason.
        let none = sample(7, &stop, |_| Err("nvidia-smi could not run (No such file or directory (os error 2))".into()));
        assert!(none.reason().unwrap().contains("nvidia-smi"));
    }

    #[test]
    fn missing_nvidia_smi_is_a_reason_not_a_hang() {
        let err = nvidia_smi(Path::new("/nonexistent/nvidia-smi"), &["-L"]).unwrap_err();
        assert!(err.contains("could not run"), "{err}");
    }
}
