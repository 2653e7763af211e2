//! An encoder-decoder request (speech recognition): read and resample the
//! audio, split it into `chunk_seconds` windows (or voice-activity spans),
//! and per window: log-mel -> audio encoder -> cross-attention projection
//! (once) -> the generation loop (or beam search) after the forced decoder
//! prompt, with the manifest's suppressed tokens as logits processors.
//! Windows' texts are joined in order.

use std::time::{Duration, Instant};

use super::request::{CancelFlag, Output, Request, StageTimings, WindowResult};
use super::{Backbone, Pipeline};
use crate::error::{Error, Result};
use crate::generate::beam::{beam_search, BeamSettings};
use crate::generate::{self, DecoderModel, Decoding, GenerationConfig, Generation, ProcessorChain, StepInput, StopReason, SuppressTokens};
use crate::manifest::{Modality, Seq2seqDecoderStage};
use crate::stages::seq2seq::WindowDecoder;

pub(super) fn run(p: &mut Pipeline, request: &Request, config: &GenerationConfig, mut on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
    let name = p.bundle.name().to_string();
    let audio_path = match (request.media(Modality::Audio), request.inputs.len()) {
        ([one], 1) => one.clone(),
        ([], _) | (_, 2..) => return Err(Error::Request(format!("bundle \"{name}\" is a speech-recognition bundle: give it one audio file and nothing else"))),
        (more, _) => return Err(Error::Request(format!("bundle \"{name}\" transcribes one file per run; {} audio files were given", more.len()))),
    };
    if !request.prompt.is_empty() {
        return Err(Error::Request(format!("bundle \"{name}\" transcribes audio only; it takes no prompt")));
    }
    let Backbone::EncoderDecoder { audio, decoder, vad } = &mut p.backbone else { unreachable!("transcribe::run is called for encoder-decoder bundles") };
    let mut timings = StageTimings::default();
    let start = Instant::now();
    let samples = audio.load(&audio_path)?;
    let rate = audio.sample_rate() as f64;
    timings.push("read_resample", start.elapsed());

    let spans = match (&request.vad, vad.as_mut()) {
        (Some(cfg), Some(vad)) => {
            let start = Instant::now();
            let spans = audio.spans(&samples, Some((vad, cfg)))?;
            timings.push("vad", start.elapsed());
            if spans.is_empty() {
                return Err(Error::Request(format!(
                    "{}: voice activity detection found no speech in {:.1} s of audio (threshold {}); nothing to transcribe",
                    audio_path.label().display(),
                    samples.len() as f64 / rate,
                    cfg.threshold
                )));
            }
            spans
        }
        (Some(_), None) => return Err(Error::Request("voice activity detection was requested but no VAD model is loaded".into())),
        (None, _) => audio.spans(&samples, None)?,
    };

    let stage = decoder.stage().clone();
    let prompt_ids = stage.decoder_prompt.ids();
    let stop_tokens = &p.bundle.manifest.prompt.eos_token_ids;
    let mut windows = Vec::with_capacity(spans.len());
    let (mut t_mel, mut t_enc, mut t_cross, mut t_dec) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut features = Vec::new();
    let mut time_to_first_token = None;
    let mut streamed_any = false;
    for &(s, e) in &spans {
        request.cancel.check()?;
        let (states, mel, enc) = audio.encode_span(&samples[s..e], &mut features)?;
        t_mel += mel;
        t_enc += enc;
        let (cross, t) = decoder.cross_kv(states)?;
        t_cross += t;
        let t = Instant::now();
        let mut model = decoder.window(&cross);
        let (ids, stop_reason) = decode_window(&mut model, &stage, &prompt_ids, config, stop_tokens, &request.cancel)?;
        t_dec += t.elapsed();
        time_to_first_token.get_or_insert_with(|| start.elapsed());
        let text = p.tokenizer.decode(&ids, true).map_err(|e| Error::Tokenizer { context: "decoding the transcript".into(), message: e.to_string() })?;
        // Streamed as the final text joins them: non-empty windows, trimmed, one space apart.
        let piece = text.trim();
        if !piece.is_empty() {
            on_text(&if streamed_any { format!(" {piece}") } else { piece.to_string() })?;
            streamed_any = true;
        }
        windows.push(WindowResult { start_s: s as f64 / rate, end_s: e as f64 / rate, token_ids: ids, text, stop_reason });
    }
    timings.push("log_mel", t_mel);
    timings.push(audio.encoder_name(), t_enc);
    timings.push(&format!("{}.cross_kv", decoder.name()), t_cross);
    timings.push(decoder.name(), t_dec);
    let text = windows.iter().map(|w| w.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ");
    Ok(Output {
        token_ids: windows.iter().flat_map(|w| w.token_ids.iter().copied()).collect(),
        text,
        prefill_tokens: prompt_ids.len(),
        prompt_ids,
        stop_reason: windows.last().map_or(StopReason::MaxTokens, |w| w.stop_reason),
        timings,
        media: Vec::new(),
        windows,
        audio_seconds: samples.len() as f64 / rate,
        time_to_first_token,
        input_report: Default::default(),
        token_gaps_ms: Vec::new(),
    })
}

/// Decode one window after the forced prompt: greedy (or sampled) through the
/// generation loop, or beam search, both with the manifest's suppressed
/// tokens. The context bounds prompt + generated, as transformers' `max_length` does.
fn decode_window(
    model: &mut WindowDecoder<'_>,
    stage: &Seq2seqDecoderStage,
    prompt_ids: &[u32],
    config: &GenerationConfig,
    stop_tokens: &[u32],
    cancel: &CancelFlag,
) -> Result<(Vec<u32>, StopReason)> {
    let room = stage.context_length.saturating_sub(prompt_ids.len());
    let budget = config.max_new_tokens.min(room);
    // The manifest's suppressed tokens, appended to a chain (the same for both searches).
    let suppress = |chain: ProcessorChain| {
        chain.with_opt(SuppressTokens::always(&stage.suppress_tokens)).with_opt(SuppressTokens::at_begin(&stage.begin_suppress_tokens))
    };
    let (ids, reason) = if config.num_beams > 1 {
        let mut logits = Vec::new();
        let cache = model.new_cache()?;
        let cache = model.step(StepInput::Ids(prompt_ids), cache, &mut logits)?;
        let settings = BeamSettings { num_beams: config.num_beams, length_penalty: 1.0, max_new_tokens: budget, stop_tokens: stop_tokens.to_vec() };
        let result = beam_search(model, cache, logits, &settings, &mut suppress(ProcessorChain::new()))?;
        (result.ids, result.stop_reason)
    } else {
        let mut decoding = Decoding::new(&GenerationConfig { max_new_tokens: budget, ..config.clone() }, stop_tokens);
        decoding.processors = suppress(std::mem::take(&mut decoding.processors));
        let Generation { ids, stop_reason, .. } = generate::generate(model, StepInput::Ids(prompt_ids), prompt_ids, &mut decoding, |_| cancel.check())?;
        (ids, stop_reason)
    };
    // A budget cut short by the context is the context's doing.
    let reason = if reason == StopReason::MaxTokens && budget < config.max_new_tokens { StopReason::ContextFull } else { reason };
    Ok((ids, reason))
}
