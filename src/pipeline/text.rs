//! A decoder-only request: render the prompt, encode and project its media
//! through their branches, tokenize with placeholder expansion, embed, merge
//! the media rows in, then the generation loop; media generated from signal
//! tokens afterwards.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array2, ArrayD, ArrayView2};
use ort::value::DynValue;

use super::request::{InputReport, Output, Request, StageTimings};
use super::{Backbone, Pipeline};
use crate::chat::Message;
use crate::error::{Error, Result};
use crate::generate::{self, Decoding, Detokenizer, GenerationConfig, StepInput, StopStrings};
use crate::manifest::Modality;
use crate::prompt;
use crate::stages::decoder::Decoder;
use crate::tensor;

pub(super) fn run(p: &mut Pipeline, request: &Request, config: &GenerationConfig, mut on_text: impl FnMut(&str) -> Result<()>) -> Result<Output> {
    let request_start = Instant::now();
    if config.num_beams > 1 {
        return Err(Error::Request(format!("bundle \"{}\": beam search is offered for speech-recognition bundles only", p.bundle.name())));
    }
    if let Some(side) = &p.output {
        side.check(&request.media_generation)?;
    }
    let mut timings = StageTimings::default();
    // Placeholders are checked before any encoder runs.
    // A Jinja chat template writes its own BOS; the `{content}` forms get `bos_token_id`.
    let format = &p.bundle.manifest.prompt;
    let (text, add_bos) = match (&p.chat, request.chat) {
        (Some(chat), true) => {
            let user = prompt::content(format, &request.prompt, &request.media_counts())?;
            let mut messages = request.history.clone();
            messages.push(Message::user(user));
            (chat.render(&messages, true)?, false)
        }
        _ if !request.history.is_empty() => {
            return Err(Error::Request(format!(
                "bundle \"{}\" has no Jinja chat template (`prompt.chat`), so earlier chat turns cannot be rendered; send one user message",
                p.bundle.name()
            )))
        }
        _ => (prompt::render_with(format, &request.prompt, &request.media_counts(), request.chat)?, true),
    };
    let Backbone::DecoderOnly { decoder, branches } = &mut p.backbone else { unreachable!("text::run is called for decoder-only bundles") };
    // Each modality's rows (item after item), each item's first row and row count, in modality order.
    let mut media: BTreeMap<Modality, (Array2<f32>, Vec<usize>)> = BTreeMap::new();
    let mut rows: BTreeMap<Modality, Vec<usize>> = BTreeMap::new();
    if let Some(missing) = request.inputs.keys().find(|m| !branches.iter().any(|b| b.modality() == **m)) {
        return Err(Error::Request(format!("bundle \"{}\" has no {missing} encoder; remove --{missing}", p.bundle.name())));
    }
    let mut input_report = InputReport::default();
    for (&modality, paths) in &request.inputs {
        let branch = branches.iter_mut().find(|b| b.modality() == modality).expect("checked above");
        let mut embedded = branch.embed(paths, &request.media_options, &mut timings)?;
        input_report.embedding_cache += embedded.cache;
        input_report.videos.append(&mut embedded.videos);
        let starts = embedded.tokens_per_item.iter().scan(0, |acc, &n| Some(std::mem::replace(acc, *acc + n))).collect();
        media.insert(modality, (embedded.rows()?, starts));
        rows.insert(modality, embedded.tokens_per_item);
    }
    let format = &p.bundle.manifest.prompt;
    let encoded = prompt::encode_with(&p.tokenizer, format, &text, &rows, add_bos)?;
    let context = generate::DecoderModel::context_length(decoder);
    if encoded.ids.len() >= context {
        return Err(Error::PromptTooLong { tokens: encoded.ids.len(), context });
    }

    let start = Instant::now();
    let text_embeds = decoder.embed(&encoded.ids)?;
    let embeds = if encoded.slots.is_empty() {
        text_embeds
    } else {
        let placed: Vec<(usize, ArrayView2<'_, f32>)> = encoded
            .slots
            .iter()
            .map(|s| {
                let (all, starts) = &media[&s.modality];
                (s.position, all.slice(ndarray::s![starts[s.item]..starts[s.item] + s.len, ..]))
            })
            .collect();
        merge(decoder, text_embeds, &placed)?
    };
    timings.push("embed", start.elapsed());

    let stop_tokens = if request.ignore_stop_tokens { &[][..] } else { &format.eos_token_ids[..] };
    let signals = p.output.as_ref().map(|o| o.signals());
    let halt = Cell::new(false);
    let mut decoding = Decoding::new(config, stop_tokens).with_signals(signals);
    decoding.halt = Some(&halt);
    let mut stream = Detokenizer::new();
    let mut sink = TextSink { stops: StopStrings::new(&request.stop)?, text: String::new(), halt: &halt };
    let tokenizer = &p.tokenizer;
    let mut time_to_first_token = None;
    request.cancel.check()?;
    let generation = generate::generate(decoder, StepInput::Embeds(embeds), &encoded.ids, &mut decoding, |id| {
        request.cancel.check()?;
        time_to_first_token.get_or_insert_with(|| request_start.elapsed());
        match stream.push(tokenizer, id)? {
            Some(piece) => sink.push(&piece, &mut on_text),
            None => Ok(()),
        }
    })?;
    if !halt.get() {
        if let Some(piece) = stream.finish(tokenizer)? {
            sink.push(&piece, &mut on_text)?;
        }
        let held = sink.stops.finish();
        sink.release(&held, &mut on_text)?;
    }
    let text_out = sink.text;
    timings.push("prefill", generation.prefill);
    timings.push("decode", generation.decode);
    let media = match p.output.as_mut() {
        Some(side) if !generation.signal_hidden.is_empty() => {
            let media = side.generate(&generation.signal_hidden, &request.media_generation, request.out_dir.as_deref())?;
            for m in &media {
                timings.push_ms("output_projector", m.output_projector_ms);
                timings.push_ms("denoise", m.timings.denoise_ms);
                timings.push_ms("generator_decode", m.timings.decode_ms);
            }
            media
        }
        _ => Vec::new(),
    };
    let token_gaps_ms = generation.token_gaps_ms();
    Ok(Output {
        token_ids: generation.ids,
        prefill_tokens: encoded.ids.len(),
        prompt_ids: encoded.ids,
        text: text_out,
        stop_reason: generation.stop_reason,
        timings,
        media,
        windows: Vec::new(),
        audio_seconds: 0.0,
        time_to_first_token,
        input_report,
        token_gaps_ms,
    })
}

/// Decoded text on its way out: through the stop strings, to the caller, into the final text.
struct TextSink<'a> {
    stops: StopStrings,
    text: String,
    halt: &'a Cell<bool>,
}

impl TextSink<'_> {
    fn push(&mut self, piece: &str, on_text: &mut impl FnMut(&str) -> Result<()>) -> Result<()> {
        if self.halt.get() {
            return Ok(());
        }
        let check = self.stops.push(piece);
        if check.stopped {
            self.halt.set(true);
        }
        self.release(&check.release, on_text)
    }

    fn release(&mut self, text: &str, on_text: &mut impl FnMut(&str) -> Result<()>) -> Result<()> {
        if !text.is_empty() {
            on_text(text)?;
            self.text.push_str(text);
        }
        Ok(())
    }
}

/// Replace the placeholder rows of `text_embeds` `[1, seq, d]` with each
/// item's rows `[len, d]` at its first position, in the element type the
/// decoder declares.
fn merge(decoder: &Decoder, text_embeds: DynValue, items: &[(usize, ArrayView2<'_, f32>)]) -> Result<DynValue> {
    let stage = generate::DecoderModel::name(decoder);
    let Some(dtype) = decoder.embeds_type() else {
        return Err(Error::Request(format!(
            "stage \"{stage}\" is the text-only form of the decoder (token ids in); media needs a bundle whose decoder takes inputs_embeds"
        )));
    };
    let mut merged: ArrayD<f32> = tensor::to_f32_array(&text_embeds, stage, "inputs_embeds")?;
    let d_text = merged.shape()[2];
    for &(pos, rows) in items {
        if rows.ncols() != d_text {
            return Err(Error::Tensor {
                stage: stage.into(),
                tensor: "inputs_embeds".into(),
                expected: format!("projected embeddings of width {d_text} (the token embedding width)"),
                found: format!("width {}", rows.ncols()),
            });
        }
        merged.slice_mut(ndarray::s![0, pos..pos + rows.nrows(), ..]).assign(&rows);
    }
    tensor::float_value(merged, dtype, stage, "inputs_embeds")
}
