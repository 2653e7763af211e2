//! The models behind the server: each loaded bundle gets one worker thread
//! that owns it and runs one request at a time, fed by a bounded queue. The
//! async side never touches a model: it queues a job and reads the job's
//! events. A full queue is refused at once (429) rather than waited on; a job
//! whose client has gone is dropped when it reaches the front, and a running
//! one stops at its next token (its events channel is closed, or its
//! [`CancelFlag`] raised).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use mmrt::generate::StopReason;
use mmrt::manifest::Modality;
use mmrt::pipeline::{CancelFlag, LoadOptions};
use mmrt::runtime::{OrtRuntime, SessionPlan};
use mmrt::tts::{SpeechSettings, Voice};
use mmrt::{Bundle, Error, Pipeline, Request, Result};

use super::metrics::{Metrics, ModelGauges};

/// What a model can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Text generation (chat and completions), with its input modalities.
    Generate,
    /// Speech recognition (an encoder-decoder bundle).
    Transcribe,
    /// Text to speech (a voice bundle).
    Speak,
}

/// A model as the API lists it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    pub capability: Capability,
    /// Media an LLM takes besides text.
    pub modalities: Vec<Modality>,
    /// Whether the bundle has a Jinja chat template (earlier turns can be rendered).
    pub jinja_chat: bool,
    /// Whether it has any chat template.
    pub chat: bool,
    /// Unix seconds when it was loaded.
    pub created: u64,
    /// The bundle's generation settings (requests override them).
    pub generation: mmrt::generate::GenerationConfig,
}

/// A generation's progress, sent to the request's handler.
pub enum Event {
    /// Newly decoded text.
    Text(String),
    /// The end: the final numbers, or why it failed.
    Done(Result<Finished>),
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Finished {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub stop_reason: StopReason,
}

/// Synthesized speech.
pub struct Speech {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

/// Work for a model's thread.
pub enum Job {
    Generate { request: Box<Request>, events: mpsc::UnboundedSender<Event>, arrived: Instant },
    Speak { text: String, settings: SpeechSettings, cancel: CancelFlag, reply: oneshot::Sender<Result<Speech>> },
}

impl Job {
    /// Answer without running (its client may be gone already).
    fn refuse(self, error: Error) {
        match self {
            Job::Generate { events, .. } => {
                let _ = events.send(Event::Done(Err(error)));
            }
            Job::Speak { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }

    fn cancel_flag(&self) -> &CancelFlag {
        match self {
            Job::Generate { request, .. } => &request.cancel,
            Job::Speak { cancel, .. } => cancel,
        }
    }
}

/// What a worker owns.
enum Engine {
    Pipeline(Box<Pipeline>),
    Voice(Box<Voice>),
}

/// A loaded model: its description, its queue and its gauges.
pub struct Model {
    pub info: ModelInfo,
    sender: mpsc::Sender<Job>,
    capacity: usize,
    queued: Arc<AtomicU64>,
    running: Arc<AtomicU64>,
}

/// Everything shared between the server and the workers.
pub struct Shared {
    pub metrics: Metrics,
    /// Raised when shutdown's grace period is over: running jobs stop at their next token.
    pub shutdown: CancelFlag,
}

impl Model {
    /// Load `bundle` and start its worker with a queue of `capacity` waiting jobs.
    pub fn load(runtime: &OrtRuntime, id: String, bundle: Bundle, sessions: &SessionPlan, capacity: usize, shared: Arc<Shared>) -> Result<Model> {
        let manifest = &bundle.manifest;
        let generation = manifest.generation.clone();
        let (engine, capability, modalities, chat, jinja_chat) = if manifest.text_to_speech().is_some() {
            (Engine::Voice(Box::new(Voice::open(runtime, &bundle, sessions)?)), Capability::Speak, Vec::new(), false, false)
        } else {
            let modalities: Vec<Modality> = [Modality::Image, Modality::Audio, Modality::Video].into_iter().filter(|m| manifest.encoder(*m).is_some()).collect();
            let seq2seq = manifest.seq2seq_decoder().is_some();
            let chat = manifest.prompt.chat_template.is_some() || manifest.prompt.chat.is_some();
            let jinja = manifest.prompt.chat.is_some();
            let pipeline = Pipeline::load_with(runtime, bundle, &LoadOptions { sessions: sessions.clone(), ..LoadOptions::default() })?;
            if let Some(reason) = &pipeline.provider().fallback_reason {
                log::warn!("model \"{id}\": {reason}; running on CPU");
            }
            let capability = if seq2seq { Capability::Transcribe } else { Capability::Generate };
            (Engine::Pipeline(Box::new(pipeline)), capability, if seq2seq { Vec::new() } else { modalities }, chat, jinja)
        };
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let info = ModelInfo { id: id.clone(), capability, modalities, jinja_chat, chat, created, generation };
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let (queued, running) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let worker = Worker { engine, receiver, queued: queued.clone(), running: running.clone(), shared };
        std::thread::Builder::new()
            .name(format!("mmrt-model-{id}"))
            .spawn(move || worker.run())
            .map_err(|e| Error::Request(format!("starting the worker thread of model \"{id}\": {e}")))?;
        Ok(Model { info, sender, capacity: capacity.max(1), queued, running })
    }

    /// Queue `job`, or refuse it when the queue is full (the caller answers 429).
    pub fn submit(&self, job: Job) -> std::result::Result<(), usize> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(self.capacity)
            }
        }
    }

    /// Queue depth and running count, for `/metrics`.
    pub fn gauges(&self) -> ModelGauges {
        ModelGauges { name: self.info.id.clone(), queued: self.queued.load(Ordering::Relaxed), running: self.running.load(Ordering::Relaxed) }
    }
}

struct Worker {
    engine: Engine,
    receiver: mpsc::Receiver<Job>,
    queued: Arc<AtomicU64>,
    running: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        while let Some(job) = self.receiver.blocking_recv() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if job.cancel_flag().is_cancelled() || self.shared.shutdown.is_cancelled() {
                self.shared.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                job.refuse(Error::Cancelled);
                continue;
            }
            self.running.store(1, Ordering::Relaxed);
            // A panic in one request must not take the model down with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(job)));
            if outcome.is_err() {
                log::error!("a request panicked in a model worker; the model keeps serving");
            }
            self.running.store(0, Ordering::Relaxed);
        }
    }

    fn handle(&mut self, job: Job) {
        let metrics = &self.shared.metrics;
        match (job, &mut self.engine) {
            (Job::Generate { request, events, arrived }, Engine::Pipeline(pipeline)) => {
                let waited = arrived.elapsed();
                metrics.queue_wait.observe(waited);
                let shutdown = &self.shared.shutdown;
                let result = pipeline.run(&request, |piece| {
                    shutdown.check()?;
                    events.send(Event::Text(piece.to_string())).map_err(|_| Error::Cancelled)
                });
                let done = match result {
                    Ok(output) => {
                        let tokens = output.token_ids.len();
                        metrics.prompt_tokens.fetch_add(output.prompt_ids.len() as u64, Ordering::Relaxed);
                        metrics.completion_tokens.fetch_add(tokens as u64, Ordering::Relaxed);
                        if let Some(ttft) = output.time_to_first_token {
                            metrics.time_to_first_token.observe(waited + ttft);
                        }
                        let rate = output.decode_tokens_per_s();
                        if rate > 0.0 {
                            metrics.time_per_output_token.observe(Duration::from_secs_f64(1.0 / rate));
                        }
                        Ok(Finished { text: output.text, prompt_tokens: output.prompt_ids.len(), completion_tokens: tokens, stop_reason: output.stop_reason })
                    }
                    Err(e) => {
                        if matches!(e, Error::Cancelled) {
                            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e)
                    }
                };
                metrics.request_duration.observe(arrived.elapsed());
                let _ = events.send(Event::Done(done));
            }
            (Job::Speak { text, settings, cancel, reply }, Engine::Voice(voice)) => {
                let sample_rate = voice.sample_rate();
                let mut samples = Vec::new();
                let shutdown = &self.shared.shutdown;
                let result = voice.speak(&text, &settings, |chunk| {
                    cancel.check()?;
                    shutdown.check()?;
                    samples.extend_from_slice(&chunk.samples);
                    Ok(())
                });
                let _ = reply.send(result.map(|_| Speech { sample_rate, samples }));
            }
            (Job::Generate { events, .. }, Engine::Voice(_)) => {
                let _ = events.send(Event::Done(Err(Error::Request("this model is a voice: it speaks text (POST /v1/audio/speech)".into()))));
            }
            (Job::Speak { reply, .. }, Engine::Pipeline(_)) => {
                let _ = reply.send(Err(Error::Request("this model is not a voice (POST /v1/audio/speech needs a text-to-speech bundle)".into())));
            }
        }
    }
}
