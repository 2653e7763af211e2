//! Caption many images with one loaded bundle (the evaluation runner of
//! `exporters/vlm_shapes/eval.py`): the same `Pipeline` as `mmrt run`, without
//! reopening the bundle (checksums, sessions) for every image.
//!
//!     cargo run --release --example caption_batch -- BUNDLE [--prompt TEXT] IMAGE...
//!
//! Prints one JSON object per image: `{"image", "text", "token_ids"}`. Without
//! `--prompt` the bundle's `prompt.default_prompt` is used.

use std::io::Write;
use std::path::PathBuf;

use mmrt::runtime::{OrtRuntime, SessionConfig};
use mmrt::{Bundle, Error, Pipeline, Request};

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let bundle = args.next().ok_or_else(|| Error::Request("usage: caption_batch BUNDLE [--prompt TEXT] IMAGE...".into()))?;
    let mut prompt = None;
    let mut images = Vec::new();
    while let Some(a) = args.next() {
        if a == "--prompt" {
            prompt = Some(args.next().ok_or_else(|| Error::Request("--prompt needs a value".into()))?);
        } else {
            images.push(PathBuf::from(a));
        }
    }
    let bundle = Bundle::open(&bundle)?;
    let prompt = prompt
        .or_else(|| bundle.manifest.prompt.default_prompt.clone())
        .ok_or_else(|| Error::Request("the bundle has no default prompt: pass --prompt".into()))?;
    let runtime = OrtRuntime::load(None)?;
    let config = SessionConfig { threads: Some(2), ..SessionConfig::default() };
    let mut pipeline = Pipeline::load(&runtime, bundle, &config)?;
    let mut stdout = std::io::stdout().lock();
    for image in images {
        let out = pipeline.run(&Request::new(prompt.clone()).with_images([image.clone()]), |_| Ok(()))?;
        let line = serde_json::json!({"image": image, "text": out.text, "token_ids": out.token_ids});
        writeln!(stdout, "{line}").map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}
