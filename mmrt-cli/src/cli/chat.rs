//! `mmrt chat`: a multi-turn conversation on stdin/stdout. One user message
//! per line; each answer is streamed to stdout and ends with a newline, the
//! KV cache kept from turn to turn (`mmrt::pipeline::Conversation`).
//! `/reset` starts over, `/exit` or end of input ends; `-v` prints each
//! turn's prefill size and speed on stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::{Cli, SamplingArgs, SessionArgs};
use mmrt::error::{Error, Result};
use mmrt::generate::{GenerationConfig, GenerationOverrides};
use mmrt::pipeline::{Conversation, LoadOptions};
use mmrt::runtime::OrtRuntime;
use mmrt::{Bundle, Pipeline, Request};

/// Arguments of `mmrt chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Bundle directory (holds bundle.json); its manifest needs `prompt.chat` (a Jinja chat template).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// System message opening the conversation (default: the template's own, if any).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// New tokens per answer at most (default: the bundle's).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

impl ChatArgs {
    /// The flags' changes to the bundle's generation settings `defaults`.
    fn overrides(&self, defaults: &GenerationConfig) -> Result<GenerationOverrides> {
        if let Some(n) = self.max_tokens.filter(|&n| n > mmrt::limits::MAX_NEW_TOKENS) {
            return Err(Error::Request(format!("--max-tokens {n} is above the limit of {} tokens (limits::MAX_NEW_TOKENS)", mmrt::limits::MAX_NEW_TOKENS)));
        }
        self.sampling.overrides(defaults, self.max_tokens, None)
    }
}

/// Run the command.
pub fn chat(cli: &Cli, args: &ChatArgs) -> Result<()> {
    let bundle = Bundle::open(&args.bundle)?;
    if bundle.manifest.seq2seq_decoder().is_some() {
        return Err(Error::Request(format!("bundle \"{}\" is a speech-recognition bundle; `mmrt chat` needs a language model", bundle.name())));
    }
    if bundle.manifest.prompt.chat.is_none() {
        return Err(Error::Request(format!(
            "bundle \"{}\" has no Jinja chat template (`prompt.chat` in bundle.json); use `mmrt run --chat` for one turn",
            bundle.name()
        )));
    }
    let overrides = args.overrides(&bundle.manifest.generation)?;
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let options = LoadOptions { sessions: plan, ..LoadOptions::default() };
    let mut pipeline = Pipeline::load_with(&runtime, bundle, &options)?;
    if let Some(reason) = &pipeline.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let mut conversation = Conversation::new();
    if let Some(system) = &args.system {
        conversation = conversation.with_system(system.as_str());
    }
    let interactive = std::io::stdin().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0usize;
    let mut turn = 0usize;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| Error::io("<stdin>", e))?;
        let message = line.trim_end_matches(['\r', '\n']);
        match message.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                conversation.reset();
                if interactive || cli.verbose > 0 {
                    eprintln!("(conversation cleared)");
                }
                continue;
            }
            _ => {}
        }
        turn += 1;
        let mut request = Request::new(message);
        request.generation = overrides.clone();
        let result = pipeline.chat(&mut conversation, &request, |piece| {
            stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| Error::io("<stdout>", e))
        });
        writeln!(stdout).map_err(|e| Error::io("<stdout>", e))?;
        match result {
            Ok(output) if cli.verbose > 0 => {
                let rate = output.decode_tokens_per_s();
                eprintln!(
                    "[turn {turn}: prefill {} of {} tokens ({} reused from the cache) in {:.1} ms; {} new tokens, {rate:.1} tok/s; stop: {:?}]",
                    output.prefill_tokens,
                    output.prompt_ids.len(),
                    output.prompt_ids.len() - output.prefill_tokens,
                    output.timings.get("prefill").unwrap_or(0.0),
                    output.token_ids.len(),
                    output.stop_reason,
                );
            }
            Ok(_) => {}
            Err(e) => {
                // The conversation is unchanged by a failed turn: the user may go on or /reset.
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(Error::Request(format!("{failed} of {turn} turn(s) failed (see the errors above)")));
    }
    Ok(())
}
