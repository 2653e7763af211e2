//! The HTTP routes: each handler checks the key, reads the body within the
//! limit, turns it into a job for the named model, and answers with OpenAI's
//! shapes (a JSON object, or server-sent events when `stream` is set).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use mmrt::pipeline::CancelFlag;
use mmrt::tts::SpeechSettings;

use super::engine::{Capability, Event, Finished, Job, Model};
use super::error::ApiError;
use super::openai::{self, ChatRequest, CompletionRequest, Endpoint, Shapes};
use super::ServerState;

type AppState = Arc<ServerState>;
type Answer = Result<Response, ApiError>;

/// Count the answer under `route` and turn an error into its JSON.
fn answer(state: &ServerState, route: &'static str, result: Answer) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.shared.metrics.request(route, response.status().as_u16());
    response
}

/// Bearer-key check (when the server has a key), compared in constant time.
fn authorize(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if g.len() == key.len() && g.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 => Ok(()),
        Some(_) => Err(ApiError::unauthorized("incorrect API key provided")),
        None => Err(ApiError::unauthorized("no API key: send the header Authorization: Bearer <key>")),
    }
}

/// The body, refused with 413 above the limit (by its declared length when it has one).
async fn read_body(state: &ServerState, request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let limit = state.max_body_bytes;
    let (parts, body) = request.into_parts();
    authorize(state, &parts.headers)?;
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_large = || ApiError::too_large("body_too_large", format!("the request body is larger than this server's limit of {limit} bytes (--max-body-bytes)"));
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    Ok((parts.headers, bytes))
}

/// The model named `id`, able to do `capability`.
fn model<'a>(state: &'a ServerState, id: &str, capability: Capability) -> Result<&'a Model, ApiError> {
    let model = state.models.iter().find(|m| m.info.id == id).ok_or_else(|| {
        let names: Vec<&str> = state.models.iter().map(|m| m.info.id.as_str()).collect();
        ApiError::not_found("model_not_found", format!("the model `{id}` does not exist; this server has: {}", names.join(", ")))
    })?;
    if model.info.capability != capability {
        let what = match model.info.capability {
            Capability::Generate => "a language model (chat and completions)",
            Capability::Transcribe => "a speech-recognition model (audio/transcriptions)",
            Capability::Speak => "a voice (audio/speech)",
        };
        return Err(ApiError::bad_request("model_not_supported", format!("model `{id}` is {what}; it cannot serve this endpoint")));
    }
    Ok(model)
}

/// Queue a job, or answer 429/503.
fn submit(state: &ServerState, model: &Model, job: Job) -> Result<(), ApiError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::shutting_down());
    }
    model.submit(job).map_err(|depth| {
        let metrics = &state.shared.metrics;
        metrics.rejected.fetch_add(1, Ordering::Relaxed);
        // When the queue will have room: its length times a typical request's time.
        let typical = metrics.request_duration.mean().map_or(1.0, |d| d.as_secs_f64());
        ApiError::queue_full(&model.info.id, depth, (typical * depth as f64).ceil().clamp(1.0, 600.0) as u64)
    })
}

/// Raises its flag when dropped: a handler or a stream dropped because the
/// client went away cancels the work it started.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub async fn chat(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (_, body) = read_body(&state, request).await?;
        let body: ChatRequest = openai::parse(&body)?;
        let model = model(&state, &body.model, Capability::Generate)?;
        let request = body.to_request(&model.info, &model.info.generation, state.max_tokens_cap, &state.media)?;
        let include_usage = body.common.stream_options.as_ref().is_some_and(|o| o.include_usage);
        generate(&state, model, request, Shapes::new(Endpoint::Chat, &body.model), body.common.stream, include_usage).await
    }
    .await;
    answer(&state, "/v1/chat/completions", result)
}

pub async fn completions(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (_, body) = read_body(&state, request).await?;
        let body: CompletionRequest = openai::parse(&body)?;
        let model = model(&state, &body.model, Capability::Generate)?;
        let request = body.to_request(&model.info.generation, state.max_tokens_cap)?;
        let include_usage = body.common.stream_options.as_ref().is_some_and(|o| o.include_usage);
        generate(&state, model, request, Shapes::new(Endpoint::Completion, &body.model), body.common.stream, include_usage).await
    }
    .await;
    answer(&state, "/v1/completions", result)
}

/// Run a generation: stream its chunks, or wait and answer the whole.
async fn generate(state: &AppState, model: &Model, request: mmrt::Request, shapes: Shapes, stream: bool, include_usage: bool) -> Answer {
    let (receiver, guard) = queue_generation(state, model, request)?;
    if stream {
        let chunks = ChunkStream { receiver, _guard: guard, shapes, include_usage, first: true, pending: VecDeque::new(), ended: false };
        return Ok(Sse::new(chunks).into_response());
    }
    Ok(Json(shapes.response(&wait(receiver, guard).await?)).into_response())
}

/// Queue `request` on `model`: its events, and the guard that cancels it when dropped.
fn queue_generation(state: &ServerState, model: &Model, request: mmrt::Request) -> Result<(mpsc::UnboundedReceiver<Event>, CancelOnDrop), ApiError> {
    let (events, receiver) = mpsc::unbounded_channel();
    let guard = CancelOnDrop(request.cancel.clone());
    submit(state, model, Job::Generate { request: Box::new(request), events, arrived: Instant::now() })?;
    Ok((receiver, guard))
}

/// The end of a generation, its text pieces skipped; the guard cancels it if
/// this future is dropped first (the client left).
async fn wait(mut receiver: mpsc::UnboundedReceiver<Event>, _guard: CancelOnDrop) -> Result<Finished, ApiError> {
    loop {
        match receiver.recv().await {
            Some(Event::Text(_)) => {}
            Some(Event::Done(result)) => return result.map_err(ApiError::from),
            None => return Err(ApiError::internal("the model's worker stopped before answering")),
        }
    }
}

/// A generation's events as server-sent events in OpenAI's chunk format,
/// ending with `data: [DONE]`. Dropping it (the client left) cancels the generation.
struct ChunkStream {
    receiver: mpsc::UnboundedReceiver<Event>,
    _guard: CancelOnDrop,
    shapes: Shapes,
    include_usage: bool,
    first: bool,
    pending: VecDeque<SseEvent>,
    ended: bool,
}

impl ChunkStream {
    fn data(value: serde_json::Value) -> SseEvent {
        SseEvent::default().data(value.to_string())
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Text(text) => {
                let chunk = self.shapes.chunk(Some(&text), None, std::mem::take(&mut self.first));
                self.pending.push_back(Self::data(chunk));
            }
            Event::Done(Ok(finished)) => {
                let last = self.shapes.chunk(None, Some(finished.stop_reason), std::mem::take(&mut self.first));
                self.pending.push_back(Self::data(last));
                if self.include_usage {
                    self.pending.push_back(Self::data(self.shapes.usage_chunk(&finished)));
                }
                self.end();
            }
            Event::Done(Err(e)) => {
                self.pending.push_back(Self::data(ApiError::from(e).body()));
                self.end();
            }
        }
    }

    fn end(&mut self) {
        self.pending.push_back(SseEvent::default().data("[DONE]"));
        self.ended = true;
    }
}

impl tokio_stream::Stream for ChunkStream {
    type Item = Result<SseEvent, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(event)) => self.on_event(event),
                Poll::Ready(None) => {
                    self.pending.push_back(Self::data(ApiError::internal("the model's worker stopped before answering").body()));
                    self.end();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// `POST /v1/audio/transcriptions`: multipart with `file` (WAV) and `model`.
pub async fn transcriptions(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (headers, body) = read_body(&state, request).await?;
        let mut rebuilt = axum::http::Request::new(Body::from(body));
        *rebuilt.headers_mut() = headers;
        let mut form = axum::extract::Multipart::from_request(rebuilt, &())
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", format!("expected a multipart/form-data body: {e}")))?;
        let (mut file, mut model_id, mut format) = (None, None, "json".to_string());
        while let Some(field) = form.next_field().await.map_err(|e| ApiError::bad_request("invalid_multipart", e.to_string()))? {
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().unwrap_or("upload.wav").to_string();
            let bytes = field.bytes().await.map_err(|e| ApiError::bad_request("invalid_multipart", e.to_string()))?;
            let text = || String::from_utf8_lossy(&bytes).trim().to_string();
            match name.as_str() {
                "file" => file = Some(state.media.upload(&file_name, bytes.to_vec())?),
                "model" => model_id = Some(text()),
                "response_format" => format = text(),
                "temperature" if text().parse::<f32>().map_or(true, |t| t != 0.0) => {
                    return Err(ApiError::bad_param("temperature", "transcription decodes greedily (temperature 0)"));
                }
                _ => {}
            }
        }
        let file = file.ok_or_else(|| ApiError::bad_param("file", "the form has no `file` field"))?;
        let model_id = model_id.ok_or_else(|| ApiError::bad_param("model", "the form has no `model` field"))?;
        if !matches!(format.as_str(), "json" | "text") {
            return Err(ApiError::bad_param("response_format", format!("response_format \"{format}\" is not supported; use json or text")));
        }
        let model = model(&state, &model_id, Capability::Transcribe)?;
        let (receiver, guard) = queue_generation(&state, model, mmrt::Request::transcribe(file))?;
        let finished = wait(receiver, guard).await?;
        Ok(match format.as_str() {
            "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], finished.text).into_response(),
            _ => Json(json!({"text": finished.text, "usage": {"type": "tokens", "output_tokens": finished.completion_tokens}})).into_response(),
        })
    }
    .await;
    answer(&state, "/v1/audio/transcriptions", result)
}

/// `POST /v1/audio/speech`'s body.
#[derive(serde::Deserialize)]
struct SpeechRequest {
    model: String,
    input: String,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    /// mmrt's extensions: the voice's noise scales (0 and 0 make speech deterministic).
    #[serde(default)]
    noise_scale: Option<f32>,
    #[serde(default)]
    noise_w: Option<f32>,
}

/// `POST /v1/audio/speech`: text to a WAV (or raw 16-bit PCM) with a voice bundle.
pub async fn speech(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (_, body) = read_body(&state, request).await?;
        let body: SpeechRequest = openai::parse(&body)?;
        let model = model(&state, &body.model, Capability::Speak)?;
        let format = body.response_format.as_deref().unwrap_or("wav");
        if !matches!(format, "wav" | "pcm") {
            return Err(ApiError::bad_param("response_format", format!("response_format \"{format}\" is not supported; use wav or pcm")));
        }
        let speed = body.speed.unwrap_or(1.0);
        if !(0.25..=4.0).contains(&speed) {
            return Err(ApiError::bad_param("speed", format!("speed must be between 0.25 and 4.0, got {speed}")));
        }
        if body.input.len() > mmrt::limits::MAX_TTS_TEXT_BYTES {
            return Err(ApiError::too_large("input_too_large", format!("input is {} bytes; at most {}", body.input.len(), mmrt::limits::MAX_TTS_TEXT_BYTES)));
        }
        let settings = SpeechSettings { length_scale: (speed != 1.0).then(|| 1.0 / speed), noise_scale: body.noise_scale, noise_w: body.noise_w, ..Default::default() };
        let (reply, receiver) = oneshot::channel();
        let cancel = CancelFlag::default();
        let guard = CancelOnDrop(cancel.clone());
        submit(&state, model, Job::Speak { text: body.input, settings, cancel, reply })?;
        let speech = receiver.await.map_err(|_| ApiError::internal("the voice's worker stopped before answering"))?.map_err(ApiError::from)?;
        drop(guard);
        let pcm = mmrt::tts::to_pcm16(&speech.samples);
        Ok(match format {
            "pcm" => ([(header::CONTENT_TYPE, "audio/pcm")], pcm.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>()).into_response(),
            _ => ([(header::CONTENT_TYPE, "audio/wav")], mmrt::media::encode_wav_pcm16(speech.sample_rate, 1, &pcm)).into_response(),
        })
    }
    .await;
    answer(&state, "/v1/audio/speech", result)
}

fn model_json(m: &Model) -> serde_json::Value {
    json!({"id": m.info.id, "object": "model", "created": m.info.created, "owned_by": "mmrt"})
}

pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = authorize(&state, &headers).map(|_| {
        Json(json!({"object": "list", "data": state.models.iter().map(model_json).collect::<Vec<_>>()})).into_response()
    });
    answer(&state, "/v1/models", result)
}

pub async fn get_model(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = authorize(&state, &headers).and_then(|_| {
        let m = state.models.iter().find(|m| m.info.id == id).ok_or_else(|| ApiError::not_found("model_not_found", format!("the model `{id}` does not exist")))?;
        Ok(Json(model_json(m)).into_response())
    });
    answer(&state, "/v1/models/{id}", result)
}

pub async fn health(State(state): State<AppState>) -> Response {
    let draining = state.draining.load(Ordering::Relaxed);
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let models: Vec<_> = state.models.iter().map(|m| m.info.id.clone()).collect();
    (status, Json(json!({"status": if draining { "draining" } else { "ok" }, "models": models}))).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let gauges: Vec<_> = state.models.iter().map(Model::gauges).collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.shared.metrics.render(&gauges)).into_response()
}

pub async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    let message = format!("no route {} {}", request.method(), request.uri().path());
    answer(&state, "unknown", Err(ApiError::not_found("unknown_url", message)))
}
