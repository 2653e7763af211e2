//! OpenAI's request and response shapes, and their translation to and from
//! mmrt's [`Request`]. Unknown fields are ignored (clients send many); known
//! ones with values mmrt cannot honour (`n` > 1, `logprobs`) are refused,
//! never silently dropped.

use serde::Deserialize;
use serde_json::{json, Value};

use mmrt::chat::Message;
use mmrt::generate::{GenerationConfig, GenerationOverrides, Sampling, StopReason};
use mmrt::manifest::Modality;
use mmrt::pipeline::MediaInput;
use mmrt::Request;

use super::engine::{Finished, ModelInfo};
use super::error::ApiError;
use super::media::MediaPolicy;

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub common: Common,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptField,
    #[serde(flatten)]
    pub common: Common,
}

/// The settings both share.
#[derive(Debug, Default, Deserialize)]
pub struct Common {
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Not OpenAI's, but common among local servers (llama.cpp, vLLM).
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    pub stop: Option<StopField>,
    pub n: Option<u32>,
    pub logprobs: Option<bool>,
    pub echo: Option<bool>,
    /// Generate through end-of-sequence tokens (vLLM's extension; benchmarks need fixed lengths).
    #[serde(default)]
    pub ignore_eos: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: InputAudio },
    /// A video (vLLM's extension of the chat format): a `file://` URL.
    VideoUrl { video_url: ImageUrl },
}

#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub struct InputAudio {
    pub data: String,
    pub format: String,
}

/// Parse a JSON body into `T`, answering 400 with serde's words on failure.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "the body is not valid JSON" } else { "the body does not match the request schema" };
        ApiError::bad_request("invalid_json", format!("{what}: {e}"))
    })
}

impl Common {
    /// Refuse what mmrt does not do, rather than ignore it.
    fn check_supported(&self) -> Result<(), ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_param("n", "n must be 1: mmrt generates one choice per request"));
        }
        if self.logprobs == Some(true) {
            return Err(ApiError::bad_param("logprobs", "logprobs are not available from mmrt"));
        }
        if self.echo == Some(true) {
            return Err(ApiError::bad_param("echo", "echo is not supported"));
        }
        Ok(())
    }

    /// The generation overrides over the bundle's `defaults`, with the server's token cap.
    fn overrides(&self, defaults: &GenerationConfig, token_cap: usize) -> Result<GenerationOverrides, ApiError> {
        let max = self.max_completion_tokens.or(self.max_tokens);
        if let Some(n) = max {
            if n == 0 || n > token_cap as u64 {
                let param = if self.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
                return Err(ApiError::bad_param(param, format!("{param} is {n}; this server allows 1 to {token_cap} (--max-tokens-cap)")));
            }
        }
        let (temperature, top_k, top_p) = defaults.sampling.knobs();
        let temperature = self.temperature.unwrap_or(temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::bad_param("temperature", format!("temperature must be between 0 and 2, got {temperature}")));
        }
        let sampling = Sampling::from_knobs(temperature, self.top_k.unwrap_or(top_k), self.top_p.unwrap_or(top_p))
            .map_err(|e| ApiError::bad_param("top_p", e.to_string()))?;
        // Without a client budget the bundle's default holds, but never above the cap.
        let budget = max.map(|n| n as usize).unwrap_or_else(|| defaults.max_new_tokens.min(token_cap));
        let overrides = GenerationOverrides { max_new_tokens: Some(budget), sampling: Some(sampling), seed: Some(self.seed.unwrap_or(0)), ..Default::default() };
        defaults.with_overrides(&overrides).validate().map_err(ApiError::from)?;
        Ok(overrides)
    }

    fn stops(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s.clone()],
            Some(StopField::Many(v)) => v.clone(),
        }
    }

    /// The request skeleton both endpoints fill.
    fn request(&self, prompt: String, defaults: &GenerationConfig, token_cap: usize) -> Result<Request, ApiError> {
        self.check_supported()?;
        let stops = self.stops();
        mmrt::generate::StopStrings::new(&stops).map_err(|e| ApiError::bad_param("stop", e.to_string()))?;
        let mut request = Request::new(prompt).with_stop(stops).with_ignore_stop_tokens(self.ignore_eos);
        request.generation = self.overrides(defaults, token_cap)?;
        Ok(request)
    }
}

impl CompletionRequest {
    /// The mmrt request: the prompt through the bundle's plain template, as `mmrt run` does.
    pub fn to_request(&self, defaults: &GenerationConfig, token_cap: usize) -> Result<Request, ApiError> {
        let prompt = match &self.prompt {
            PromptField::One(p) => p.clone(),
            PromptField::Many(v) if v.len() == 1 => v[0].clone(),
            PromptField::Many(v) => return Err(ApiError::bad_param("prompt", format!("{} prompts given; send one per request", v.len()))),
        };
        self.common.request(prompt, defaults, token_cap)
    }
}

impl ChatRequest {
    /// The mmrt request: earlier turns as history, the last user turn as the
    /// prompt with its media, rendered with the bundle's chat template (as
    /// `mmrt run --chat`), or its plain template when it has none.
    pub fn to_request(&self, model: &ModelInfo, defaults: &GenerationConfig, token_cap: usize, media: &MediaPolicy) -> Result<Request, ApiError> {
        let Some((last, earlier)) = self.messages.split_last() else {
            return Err(ApiError::bad_param("messages", "messages is empty; send at least one user message"));
        };
        if last.role != "user" {
            return Err(ApiError::bad_param("messages", format!("the last message must be the user's, not \"{}\"", last.role)));
        }
        let mut history = Vec::with_capacity(earlier.len());
        for (i, message) in earlier.iter().enumerate() {
            if !matches!(message.role.as_str(), "system" | "developer" | "user" | "assistant") {
                return Err(ApiError::bad_param("messages", format!("message {i} has role \"{}\"; use system, user or assistant", message.role)));
            }
            let role = if message.role == "developer" { "system" } else { message.role.as_str() };
            let (text, items) = flatten(message, i, media)?;
            if !items.is_empty() {
                return Err(ApiError::bad_param("messages", format!("message {i} carries media: images and audio are taken in the last user message only")));
            }
            history.push(Message::new(role, text));
        }
        let index = self.messages.len() - 1;
        let (text, items) = flatten(last, index, media)?;
        if !history.is_empty() && !model.jinja_chat {
            return Err(ApiError::bad_param(
                "messages",
                format!("model \"{}\" has no Jinja chat template, so it takes one user message, not a conversation", model.id),
            ));
        }
        let mut request = self.common.request(text, defaults, token_cap)?;
        request.history = history;
        request.chat = model.chat;
        for (modality, input) in items {
            if !model.modalities.contains(&modality) {
                return Err(ApiError::bad_param("messages", format!("model \"{}\" takes no {modality} input", model.id)));
            }
            request.inputs.entry(modality).or_default().push(input);
        }
        Ok(request)
    }
}

/// A message's text (parts joined by newlines) and its media, in order.
fn flatten(message: &ChatMessage, index: usize, media: &MediaPolicy) -> Result<(String, Vec<(Modality, MediaInput)>), ApiError> {
    let mut texts = Vec::new();
    let mut items = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(t)) => texts.push(t.clone()),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let label = format!("message {index} part {j}");
                match part {
                    Part::Text { text } => texts.push(text.clone()),
                    Part::ImageUrl { image_url } => items.push((Modality::Image, media.image(&image_url.url, &label)?)),
                    Part::InputAudio { input_audio } => items.push((Modality::Audio, media.audio(&input_audio.data, &input_audio.format, &label)?)),
                    Part::VideoUrl { video_url } => items.push((Modality::Video, media.video(&video_url.url, &label)?)),
                }
            }
        }
    }
    Ok((texts.join("\n"), items))
}

/// OpenAI's finish reason.
pub fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::StopToken | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
    }
}

pub fn usage(f: &Finished) -> Value {
    json!({"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens, "total_tokens": f.prompt_tokens + f.completion_tokens})
}

/// Which endpoint's shapes to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// The shapes of one response: its id, creation time and model.
pub struct Shapes {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Shapes {
    pub fn new(endpoint: Endpoint, model: &str) -> Self {
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
        Self { endpoint, id: format!("{prefix}-{}", next_id()), created, model: model.to_string() }
    }

    /// The whole (non-streamed) response.
    pub fn response(&self, f: &Finished) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({"index": 0, "message": {"role": "assistant", "content": f.text}, "logprobs": null, "finish_reason": finish_reason(f.stop_reason)}),
            Endpoint::Completion => json!({"index": 0, "text": f.text, "logprobs": null, "finish_reason": finish_reason(f.stop_reason)}),
        };
        json!({"id": self.id, "object": self.object(false), "created": self.created, "model": self.model, "choices": [choice], "usage": usage(f)})
    }

    /// One streamed chunk: a piece of text, or (with `finish`) the last one.
    pub fn chunk(&self, text: Option<&str>, finish: Option<StopReason>, first: bool) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish.map(finish_reason)})
            }
            Endpoint::Completion => json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish.map(finish_reason)}),
        };
        json!({"id": self.id, "object": self.object(true), "created": self.created, "model": self.model, "choices": [choice]})
    }

    /// The usage chunk of `stream_options.include_usage` (no choices).
    pub fn usage_chunk(&self, f: &Finished) -> Value {
        json!({"id": self.id, "object": self.object(true), "created": self.created, "model": self.model, "choices": [], "usage": usage(f)})
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
}

/// A process-unique id suffix.
pub fn next_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let pid = std::process::id();
    format!("{pid:x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_bodies_parse_with_parts_and_unknown_fields() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"user":"x","stream":true,"stop":"END"}"#;
        let r: ChatRequest = parse(body).unwrap();
        assert_eq!(r.messages.len(), 2);
        assert!(r.common.stream);
        assert!(matches!(r.common.stop, Some(StopField::One(ref s)) if s == "END"));
    }

    #[test]
    fn malformed_json_is_a_400_naming_the_problem() {
        let e = parse::<ChatRequest>(b"{\"model\": ").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert!(e.message.contains("messages"), "{}", e.message);
    }

    #[test]
    fn unsupported_knobs_are_refused_not_dropped() {
        let defaults = GenerationConfig::default();
        let common = Common { n: Some(2), ..Default::default() };
        assert!(common.request("x".into(), &defaults, 64).is_err());
        let common = Common { max_tokens: Some(65), ..Default::default() };
        assert!(common.request("x".into(), &defaults, 64).unwrap_err().message.contains("1 to 64"));
        let common = Common { temperature: Some(0.7), top_p: Some(0.9), seed: Some(3), ..Default::default() };
        let r = common.request("x".into(), &defaults, 64).unwrap();
        assert_eq!(r.generation.seed, Some(3));
        assert!(matches!(r.generation.sampling, Some(Sampling::Random { top_p, .. }) if top_p == 0.9));
    }
}
