//! `mmrt assist`: the voice loop in one command. Speech in -> a speech
//! recognition bundle (Whisper) -> an instruct LLM bundle with its chat
//! template -> a voice bundle -> WAV.
//!
//! The LLM's streamed text is cut into sentences as it arrives; a second
//! thread speaks each sentence while the LLM goes on decoding, so the first
//! audio is ready long before the answer is complete ("time to first audio").
//! Times are measured from the start of recognition, after the three bundles
//! are loaded (loading is reported apart).

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use clap::Args;

use super::speak::{ms_since, write_wav, SpeechArgs};
use super::{Cli, SamplingArgs, SessionArgs};
use mmrt::error::{Error, Result};
use mmrt::pipeline::LoadOptions;
use mmrt::runtime::OrtRuntime;
use mmrt::tts::sentences::SentenceSplitter;
use mmrt::tts::{SpeechSettings, Voice};
use mmrt::{Bundle, Pipeline, Request};

/// A run of text without a sentence end is spoken once it is this long (cut at
/// a comma or space), so a long sentence does not hold back the audio.
const MAX_PIECE_CHARS: usize = 160;
/// The first piece goes at its first clause end once it is this long: the
/// answer starts to sound while the rest of its first sentence is decoded.
const FIRST_CLAUSE_CHARS: usize = 24;

/// Arguments of `mmrt assist`.
#[derive(Debug, Args)]
pub struct AssistArgs {
    /// Speech recognition bundle (e.g. models/whisper-base).
    #[arg(long, value_name = "DIR", default_value = "models/whisper-base")]
    pub asr: PathBuf,
    /// Instruct LLM bundle with a chat template (the f32 SmolLM2 answers simple questions
    /// better than its 4-bit GGUF form).
    #[arg(long, value_name = "DIR", default_value = "models/smollm2-135m-f32")]
    pub llm: PathBuf,
    /// Voice bundle (e.g. models/piper-joe).
    #[arg(long, value_name = "DIR", default_value = "models/piper-joe")]
    pub tts: PathBuf,
    /// The spoken question (WAV, any rate: it is resampled for the recognizer).
    #[arg(long, value_name = "PATH", conflicts_with = "text")]
    pub audio: Option<PathBuf>,
    /// A typed question instead of --audio (skips recognition).
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Where the spoken answer goes.
    #[arg(long, value_name = "PATH", default_value = "answer.wav")]
    pub out: PathBuf,
    /// Most tokens of the answer (default 128).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub speech: SpeechArgs,
    /// Print one JSON object (question, answer, per-stage times, time to first audio, peak RSS).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// What the speaking thread measured.
struct Spoken {
    samples: Vec<f32>,
    sentences: usize,
    first_audio_ms: Option<f64>,
    synth_ms: f64,
}

/// Where the question comes from, as the flags say.
enum Source {
    Typed(String),
    Spoken(PathBuf),
}

/// The question, ready to be read: typed, or a WAV with its recognizer loaded.
enum Question {
    Typed(String),
    Spoken { audio: PathBuf, asr: Box<Pipeline> },
}

pub fn assist(cli: &Cli, args: &AssistArgs) -> Result<()> {
    let source = match (&args.audio, &args.text) {
        (Some(audio), None) => {
            mmrt::preprocess::wav::validate_wav(audio).map_err(|source| Error::Audio { path: audio.clone(), source })?;
            Source::Spoken(audio.clone())
        }
        (None, Some(text)) if !text.trim().is_empty() => Source::Typed(text.trim().to_string()),
        _ => return Err(Error::Request("pass the question as --audio FILE.wav (spoken) or --text TEXT (typed)".into())),
    };
    check_out_path(&args.out)?;
    let settings = args.speech.settings();
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let options = LoadOptions { sessions: plan.clone(), ..LoadOptions::default() };

    let start = Instant::now();
    let question = match source {
        Source::Typed(text) => Question::Typed(text),
        Source::Spoken(audio) => Question::Spoken { audio, asr: Box::new(open_asr(&runtime, &args.asr, &options)?) },
    };
    let asr_load_ms = ms_since(start);
    let start = Instant::now();
    let mut llm = open_llm(&runtime, &args.llm, &options)?;
    let overrides = args.sampling.overrides(&llm.bundle().manifest.generation, Some(args.max_tokens), None)?;
    let llm_load_ms = ms_since(start);
    let start = Instant::now();
    let voice = Voice::open(&runtime, &Bundle::open(&args.tts)?, &plan)?;
    voice.resolve(&settings)?;
    let tts_load_ms = ms_since(start);

    // From here on the clock runs as a user waits: recognition, answer, speech.
    let t0 = Instant::now();
    let question = match question {
        Question::Typed(text) => text,
        Question::Spoken { audio, mut asr } => asr.run(&Request::transcribe(audio), |_| Ok(()))?.text.trim().to_string(),
    };
    if question.is_empty() {
        return Err(Error::Request("the recognizer heard no words in --audio".into()));
    }
    let asr_ms = ms_since(t0);

    let rate = voice.sample_rate();
    let (tx, rx) = mpsc::channel::<String>();
    let speaker = std::thread::spawn(move || speak_sentences(voice, rx, settings, t0));
    let mut splitter = SentenceSplitter::with_max_chars(MAX_PIECE_CHARS).with_early_first_clause(FIRST_CLAUSE_CHARS);
    let mut first_token_ms = None;
    let mut request = Request::new(question.clone()).with_chat(true);
    request.generation = overrides;
    let answer = llm.run(&request, |piece| {
        first_token_ms.get_or_insert_with(|| ms_since(t0));
        for sentence in splitter.push(piece) {
            // The speaker only stops early on an error, which join() reports below.
            let _ = tx.send(sentence);
        }
        Ok(())
    });
    if let Some(rest) = splitter.finish() {
        let _ = tx.send(rest);
    }
    drop(tx);
    let llm_done_ms = ms_since(t0);
    let spoken = speaker.join().map_err(|_| Error::Request("the speaking thread panicked".into()))?;
    let answer = answer?;
    let spoken = spoken?;
    let total_ms = ms_since(t0);
    write_wav(&args.out, rate, &spoken.samples)?;

    let audio_seconds = spoken.samples.len() as f64 / rate as f64;
    let report = serde_json::json!({
        "question": question,
        "answer": answer.text,
        "wav": args.out,
        "load_ms": {"asr": asr_load_ms, "llm": llm_load_ms, "tts": tts_load_ms},
        "asr_ms": asr_ms,
        "llm_first_token_ms": first_token_ms,
        "llm_done_ms": llm_done_ms,
        "llm_tokens": answer.token_ids.len(),
        "first_audio_ms": spoken.first_audio_ms,
        "total_ms": total_ms,
        "tts_ms": spoken.synth_ms,
        "tts_real_time_factor": spoken.synth_ms / 1e3 / audio_seconds.max(1e-9),
        "audio_seconds": audio_seconds,
        "sentences": spoken.sentences,
        "peak_rss_mib": crate::bench::memory::peak_rss_bytes().map(|b| b as f64 / (1 << 20) as f64),
    });
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{report}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        writeln!(stdout, "Q: {question}\nA: {}", answer.text.trim()).map_err(|e| Error::io("<stdout>", e))?;
        eprintln!(
            "wrote {} ({audio_seconds:.1} s); first audio after {:.0} ms, done after {:.0} ms (recognition {:.0} ms)",
            args.out.display(),
            spoken.first_audio_ms.unwrap_or(f64::NAN),
            total_ms,
            asr_ms
        );
    }
    Ok(())
}

fn open_asr(runtime: &OrtRuntime, dir: &PathBuf, options: &LoadOptions) -> Result<Pipeline> {
    let asr = Pipeline::load_with(runtime, Bundle::open(dir)?, options)?;
    if !asr.is_encoder_decoder() {
        return Err(Error::Request(format!("--asr {}: not a speech recognition bundle (it has no seq2seq_decoder)", dir.display())));
    }
    Ok(asr)
}

fn open_llm(runtime: &OrtRuntime, dir: &PathBuf, options: &LoadOptions) -> Result<Pipeline> {
    let llm = Pipeline::load_with(runtime, Bundle::open(dir)?, options)?;
    let prompt = &llm.bundle().manifest.prompt;
    if llm.is_encoder_decoder() || (llm.chat_template().is_none() && prompt.chat_template.is_none()) {
        return Err(Error::Request(format!("--llm {}: needs an instruct LLM bundle with a chat template", dir.display())));
    }
    Ok(llm)
}

/// Refuse an output path whose folder does not exist, before any model loads.
fn check_out_path(out: &std::path::Path) -> Result<()> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(Error::OutputDir { path: parent.to_path_buf(), message: "does not exist (the folder of --out)".into() });
    }
    if out.is_dir() {
        return Err(Error::Request(format!("--out {} is a folder; name a .wav file", out.display())));
    }
    Ok(())
}

/// The speaking thread: each sentence as it arrives, stripped of markdown marks.
fn speak_sentences(mut voice: Voice, sentences: mpsc::Receiver<String>, settings: SpeechSettings, t0: Instant) -> Result<Spoken> {
    let rate = voice.sample_rate();
    let mut spoken = Spoken { samples: Vec::new(), sentences: 0, first_audio_ms: None, synth_ms: 0.0 };
    for sentence in sentences {
        let text = speakable(&sentence);
        if !text.chars().any(char::is_alphanumeric) {
            continue;
        }
        voice.speak(&text, &settings, |chunk| {
            spoken.first_audio_ms.get_or_insert_with(|| ms_since(t0));
            spoken.synth_ms += chunk.synth_ms;
            spoken.sentences += 1;
            mmrt::tts::append_joined(&mut spoken.samples, chunk.samples, rate);
            Ok(())
        })?;
    }
    Ok(spoken)
}

/// Drop markdown marks an LLM writes (`**bold**`, `# heading`, `` `code` ``, list bullets),
/// which espeak-ng would otherwise read out ("asterisk").
fn speakable(text: &str) -> String {
    let text: String = text.chars().filter(|c| !matches!(c, '*' | '#' | '`' | '_' | '~')).collect();
    text.lines().map(|l| l.trim_start_matches(['-', '>', ' '])).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_marks_are_not_spoken() {
        assert_eq!(speakable("**Paris** is the `capital`.\n- yes"), "Paris is the capital. yes");
    }
}
