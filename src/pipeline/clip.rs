//! Video: frames sampled from a clip ([`crate::video`]) -> per-frame
//! preprocessing and image encoder (through the embedding cache) -> the
//! projector's temporal stage ([`Temporal`]) -> one item's rows.
//!
//! Decoding runs on its own thread and hands frames over a short queue, so a
//! frame is preprocessed and encoded while the next ones are decoded; frames
//! are encoded in batches of [`ENCODE_BATCH`] as they arrive, so only their
//! features are held, never every decoded frame.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{Array2, Array4, Axis};
use ort::value::{DynValue, TensorElementType};
use serde::Serialize;

use super::branch::{MediaEmbeddings, ModalityBranch};
use super::cache::{CacheStats, EmbeddingCache};
use super::frames::{self, FrameEncoder};
use super::input::MediaInput;
use super::request::{MediaOptions, StageTimings};
use crate::error::{Error, Result};
use crate::manifest::{EncoderStage, Modality, Preprocess, ProjectorStage, Temporal};
use crate::stages::graph::{StageGraph, StageLoader};
use crate::stages::projector::InputProjector;
use crate::tensor;
use crate::video::{self, Sampling, VideoFrame, VideoSpec};

/// Frames encoded per encoder call.
pub const ENCODE_BATCH: usize = 8;

/// Decoded frames waiting for the encoder (a bound on what decoding runs ahead).
const DECODE_QUEUE: usize = 4;

/// What was read of one video, for `--json` and `bench`.
#[derive(Debug, Clone, Serialize)]
pub struct VideoReport {
    /// The input, as errors name it.
    pub source: String,
    /// Frame width and height of the source.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames in the source (declared or counted), when known.
    pub total_frames: Option<u64>,
    /// The source's frame rate, when known.
    pub fps: Option<f64>,
    /// Indices of the frames used, in display order.
    pub indices: Vec<u64>,
    /// Their presentation times, seconds.
    pub seconds: Vec<f64>,
    /// Frames decoded (sampled ones and those needed to reach them).
    pub frames_decoded: u64,
    /// Corrupt frames skipped.
    pub frames_skipped: u64,
    /// Decoding and sampling time, milliseconds.
    pub decode_ms: f64,
    /// Preprocessing time of the used frames, milliseconds.
    pub preprocess_ms: f64,
    /// Encoder time, milliseconds (frames found in the cache cost none).
    pub encode_ms: f64,
    /// Embedding-cache hits and misses of its frames.
    pub cache: CacheStats,
}

/// The temporal stage in front of the LLM.
enum ClipProjector {
    /// The input projector per frame; rows concatenated, or averaged (`mean`).
    PerFrame { projector: InputProjector, mean: bool },
    /// One graph over the whole clip with the frame times.
    Graph(TemporalGraph),
}

/// `features [1, F, tokens, d_enc]` + `timestamps [1, F]` -> `[1, rows, d_llm]`.
struct TemporalGraph {
    graph: StageGraph,
    input: (String, TensorElementType),
    timestamps: (String, TensorElementType),
    output: String,
}

/// The video branch of a decoder-only bundle.
pub struct VideoBranch {
    frames: FrameEncoder,
    projector: ClipProjector,
    sampling: Sampling,
}

impl VideoBranch {
    /// Open the video `encoder` (per-frame image encoder) and `projector` with its temporal stage.
    pub fn open(loader: &StageLoader<'_>, encoder: &EncoderStage, projector: &ProjectorStage, cache: Arc<EmbeddingCache>) -> Result<Self> {
        let Preprocess::Video(settings) = &encoder.preprocess else {
            return Err(Error::Request(format!("stage \"{}\": a video encoder needs `preprocess.kind: video`", encoder.name)));
        };
        let sampling = match settings.fps {
            Some(fps) => Sampling::Rate { fps, max_frames: settings.frames },
            None => Sampling::Uniform { frames: settings.frames },
        };
        let frames = FrameEncoder::open(loader, encoder, cache)?;
        let projector = match projector.temporal.clone().unwrap_or(Temporal::Concat) {
            Temporal::Concat => ClipProjector::PerFrame { projector: InputProjector::open(loader, projector)?, mean: false },
            Temporal::Mean => ClipProjector::PerFrame { projector: InputProjector::open(loader, projector)?, mean: true },
            Temporal::Graph { timestamps } => ClipProjector::Graph(TemporalGraph::open(loader, projector, &timestamps)?),
        };
        Ok(Self { frames, projector, sampling })
    }

    /// Decode, sample, preprocess and encode one video: per-frame features, frame times and the report.
    fn encode_clip(&mut self, input: &MediaInput, sampling: &Sampling) -> Result<(Vec<Arc<Array2<f32>>>, VideoReport)> {
        let label = input.label();
        let mut collector = FrameCollector::new(label.clone());
        let summary = match input {
            MediaInput::Frames { frames, .. } => {
                let indices = frames.iter().map(|f| f.index).collect();
                for frame in frames {
                    collector.add(&mut self.frames, frame)?;
                }
                let first = frames.first().map(|f| f.image.dimensions()).unwrap_or((0, 0));
                SourceSummary { width: first.0, height: first.1, total_frames: None, fps: None, indices, decoded: 0, skipped: 0, decode: Duration::ZERO }
            }
            MediaInput::File(path) => decode_threaded(&VideoSpec::File(path.clone()), sampling, &mut self.frames, &mut collector)?,
            _ => return Err(Error::Request(format!("{}: a video must be a file, an image directory or decoded frames", label.display()))),
        };
        collector.flush(&mut self.frames)?;
        if collector.features.is_empty() {
            return Err(Error::Request(format!("{}: no frame could be read", label.display())));
        }
        Ok(collector.into_report(summary))
    }

    fn project(&mut self, features: &[Arc<Array2<f32>>], seconds: &[f64]) -> Result<(DynValue, Duration)> {
        let start = Instant::now();
        let stacked = frames::stack(features, self.frames.name())?;
        let value = match &mut self.projector {
            ClipProjector::PerFrame { projector, mean } => {
                let input = tensor::float_value(stacked.into_dyn(), TensorElementType::Float32, self.frames.name(), "output")?;
                let (value, _) = projector.project(input)?;
                let rows = tensor::to_f32_array(&value, projector.name(), "output")?;
                let [f, t, d] = rows.shape()[..] else {
                    return Err(bad_rows(projector.name(), rows.shape()));
                };
                let joined = if *mean { rows.mean_axis(Axis(0)).expect("frames > 0").insert_axis(Axis(0)).into_dyn() } else { rows.into_shape_with_order((1, f * t, d)).map_err(|e| Error::Request(e.to_string()))?.into_dyn() };
                tensor::float_value(joined, TensorElementType::Float32, projector.name(), "output")?
            }
            ClipProjector::Graph(graph) => graph.run(stacked.insert_axis(Axis(0)), seconds)?,
        };
        Ok((value, start.elapsed()))
    }
}

impl ModalityBranch for VideoBranch {
    fn modality(&self) -> Modality {
        Modality::Video
    }

    fn embed(&mut self, inputs: &[MediaInput], options: &MediaOptions, timings: &mut StageTimings) -> Result<MediaEmbeddings> {
        let sampling = options.video_sampling.clone().unwrap_or_else(|| self.sampling.clone());
        let (mut values, mut tokens_per_item, mut videos) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cache, mut project_time) = (CacheStats::default(), Duration::ZERO);
        for input in inputs {
            let (features, report) = self.encode_clip(input, &sampling)?;
            let (value, t) = self.project(&features, &report.seconds)?;
            project_time += t;
            let dims = tensor::dims(&value);
            let [1, rows, _] = dims[..] else {
                return Err(bad_rows(self.projector_name(), &dims.iter().map(|&d| d as usize).collect::<Vec<_>>()));
            };
            cache += report.cache;
            values.push(value);
            tokens_per_item.push(rows as usize);
            videos.push(report);
        }
        let sum = |f: fn(&VideoReport) -> f64| videos.iter().map(f).sum::<f64>();
        timings.push_ms("video_decode", sum(|v| v.decode_ms));
        timings.push_ms("video_preprocess", sum(|v| v.preprocess_ms));
        timings.push_ms(self.frames.name(), sum(|v| v.encode_ms));
        timings.push(self.projector_name(), project_time);
        Ok(MediaEmbeddings { values, tokens_per_item, stage: self.projector_name().to_string(), cache, videos })
    }
}

impl VideoBranch {
    fn projector_name(&self) -> &str {
        match &self.projector {
            ClipProjector::PerFrame { projector, .. } => projector.name(),
            ClipProjector::Graph(graph) => graph.graph.stage(),
        }
    }
}

/// What the decoding side reports.
struct SourceSummary {
    width: u32,
    height: u32,
    total_frames: Option<u64>,
    fps: Option<f64>,
    indices: Vec<u64>,
    decoded: u64,
    skipped: u64,
    decode: Duration,
}

/// Decode `spec` on a second thread; frames are preprocessed and encoded here as they come.
fn decode_threaded(spec: &VideoSpec, sampling: &Sampling, encoder: &mut FrameEncoder, collector: &mut FrameCollector) -> Result<SourceSummary> {
    let (sender, receiver) = mpsc::sync_channel::<VideoFrame>(DECODE_QUEUE);
    std::thread::scope(|scope| {
        let decoding = scope.spawn(move || {
            video::read_sampled(spec, sampling, &mut |frame| sender.send(frame).map_err(|_| Error::Cancelled))
        });
        let mut failure = None;
        for frame in receiver.iter() {
            if let Err(e) = collector.add(encoder, &frame) {
                failure = Some(e);
                break;
            }
        }
        // Dropping the receiver (end of this scope's loop) stops a decoder still sending.
        drop(receiver);
        let decoded = decoding.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(e) = failure {
            return Err(e);
        }
        let report = decoded?;
        Ok(SourceSummary {
            width: report.info.width,
            height: report.info.height,
            total_frames: report.info.frames,
            fps: report.info.fps,
            indices: report.indices,
            decoded: report.frames_decoded,
            skipped: report.frames_skipped,
            decode: report.decode_time,
        })
    })
}

/// Frames of one clip on their way to the encoder: preprocessed, batched, encoded.
struct FrameCollector {
    label: PathBuf,
    pending: Vec<Array4<f32>>,
    features: Vec<Arc<Array2<f32>>>,
    seconds: Vec<f64>,
    preprocess: Duration,
    encode: Duration,
    cache: CacheStats,
}

impl FrameCollector {
    fn new(label: PathBuf) -> Self {
        Self { label, pending: Vec::new(), features: Vec::new(), seconds: Vec::new(), preprocess: Duration::ZERO, encode: Duration::ZERO, cache: CacheStats::default() }
    }

    fn add(&mut self, encoder: &mut FrameEncoder, frame: &VideoFrame) -> Result<()> {
        let start = Instant::now();
        let label = PathBuf::from(format!("{} frame {} ({:.3} s)", self.label.display(), frame.index, frame.seconds));
        let item = encoder.preprocess(&frame.image, &label)?;
        if let Some(((h0, w0), (h, w))) = self.pending.first().and_then(|first| encoder.size_mismatch(first, &item)) {
            return Err(Error::Request(format!("{}: preprocessed to {w}x{h}, but earlier frames to {w0}x{h0} (frames of one clip must share a size)", label.display())));
        }
        self.pending.push(item);
        self.seconds.push(frame.seconds);
        self.preprocess += start.elapsed();
        if self.pending.len() >= ENCODE_BATCH {
            self.flush(encoder)?;
        }
        Ok(())
    }

    fn flush(&mut self, encoder: &mut FrameEncoder) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let encoded = encoder.encode(&self.pending)?;
        self.pending.clear();
        self.encode += encoded.encode_time;
        self.cache += encoded.cache;
        self.features.extend(encoded.features);
        Ok(())
    }

    fn into_report(self, source: SourceSummary) -> (Vec<Arc<Array2<f32>>>, VideoReport) {
        let report = VideoReport {
            source: self.label.display().to_string(),
            width: source.width,
            height: source.height,
            total_frames: source.total_frames,
            fps: source.fps,
            indices: source.indices,
            seconds: self.seconds,
            frames_decoded: source.decoded,
            frames_skipped: source.skipped,
            decode_ms: source.decode.as_secs_f64() * 1e3,
            preprocess_ms: self.preprocess.as_secs_f64() * 1e3,
            encode_ms: self.encode.as_secs_f64() * 1e3,
            cache: self.cache,
        };
        (self.features, report)
    }
}

impl TemporalGraph {
    fn open(loader: &StageLoader<'_>, stage: &ProjectorStage, timestamps: &str) -> Result<Self> {
        let graph = loader.open(&stage.name, &stage.graph)?;
        let input_type = graph.input_type(&stage.input)?;
        let timestamps_type = graph.input_type(timestamps)?;
        graph.require_output(&stage.output)?;
        Ok(Self { graph, input: (stage.input.clone(), input_type), timestamps: (timestamps.to_string(), timestamps_type), output: stage.output.clone() })
    }

    fn run(&mut self, features: ndarray::Array4<f32>, seconds: &[f64]) -> Result<DynValue> {
        let stage = self.graph.stage().to_string();
        let frames = features.shape()[1];
        let features = tensor::float_value(features.into_dyn(), self.input.1, &stage, &self.input.0)?;
        let times = ndarray::Array2::from_shape_vec((1, frames), seconds.iter().map(|&s| s as f32).collect())
            .map_err(|e| Error::Request(format!("{stage}: frame times: {e}")))?;
        let times = tensor::float_value(times.into_dyn(), self.timestamps.1, &stage, &self.timestamps.0)?;
        let inputs = vec![(self.input.0.as_str().into(), features.into()), (self.timestamps.0.as_str().into(), times.into())];
        let mut out = self.graph.run(inputs, &[&self.output])?;
        Ok(out.remove(0))
    }
}

fn bad_rows(stage: &str, found: &[usize]) -> Error {
    Error::Tensor { stage: stage.into(), tensor: "output".into(), expected: "[frames, tokens, d_llm] per frame, or [1, rows, d_llm] per clip".into(), found: format!("{found:?}") }
}
