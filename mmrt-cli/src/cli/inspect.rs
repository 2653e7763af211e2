//! `mmrt inspect`: what a bundle holds (stages, graphs, tensors, prompt
//! format) and what the runtime offers (ONNX Runtime version, providers).

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use mmrt::error::Result;
use mmrt::runtime::session::{self, SessionConfig};
use mmrt::runtime::OrtRuntime;
use mmrt::stages::consistency::ConsistencyGenerator;
use mmrt::{Bundle, Pipeline};

/// Arguments of `mmrt inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bundle directory (holds bundle.json), or an ONNX model folder without one
    /// (onnxruntime-genai or Optimum / transformers.js: its manifest is inferred),
    /// or the decoder graph file of an Optimum folder (DIR/onnx/model_q4.onnx).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Graph variant of an Optimum / transformers.js folder without bundle.json
    /// (q4, fp16, quantized, ... as in onnx/model_q4.onnx; default: the unsuffixed model.onnx).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Print the validated manifest and runtime facts as JSON.
    #[arg(long)]
    pub json: bool,
    /// Providers to open the stages with (`inspect` reports where their nodes land).
    #[command(flatten)]
    pub session: super::SessionArgs,
    /// Hash every checksummed file, even those verified before and unchanged since.
    #[arg(long)]
    pub verify: bool,
}

/// Run the command.
pub fn inspect(cli: &Cli, args: &InspectArgs) -> Result<()> {
    let bundle = Bundle::open_verified(&args.bundle, &mmrt::import::ImportOptions::with_variant(args.variant.clone()), super::verification(args.verify))?;
    let plan = args.session.plan()?;
    let loaded = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu());
    let (graphs, report) = match &loaded {
        // Opening every stage checks the manifest's tensor names against the graphs.
        Ok(rt) => {
            let report = if bundle.manifest.text_to_speech().is_some() {
                mmrt::tts::Voice::open(rt, &bundle, &plan)?.provider().clone()
            } else if bundle.manifest.consistency_generator().is_some() {
                ConsistencyGenerator::open(rt, &bundle, &plan)?.provider().clone()
            } else {
                let options = mmrt::pipeline::LoadOptions { sessions: plan.clone(), ..Default::default() };
                Pipeline::load_with(rt, bundle.clone(), &options)?.provider().clone()
            };
            (graph_io(rt, &bundle)?, Some(report))
        }
        Err(_) => (Vec::new(), None),
    };
    let runtime = loaded.map(|rt| rt.info).map_err(|e| e.to_string());
    let providers = mmrt::runtime::ep::available_providers_if_loaded(runtime.is_ok());
    if args.json {
        let json = serde_json::json!({
            "root": bundle.root,
            "origin": bundle.origin,
            "checksums_verified": bundle.verified,
            "manifest": bundle.manifest,
            "onnxruntime": runtime.as_ref().ok(),
            "onnxruntime_error": runtime.as_ref().err(),
            "execution_providers": providers,
            "placement": report.as_ref().map(|r| &r.stages),
            "graphs": graphs.iter().map(|(g, io)| (g.clone(), serde_json::json!(io))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"));
        return Ok(());
    }
    let m = &bundle.manifest;
    println!("bundle      {} ({})", m.name, bundle.root.display());
    if !m.description.is_empty() {
        println!("            {}", m.description);
    }
    match &bundle.origin {
        mmrt::bundle::Origin::Manifest => println!("manifest    bundle.json"),
        mmrt::bundle::Origin::Inferred { layout, source, notes } => {
            println!("manifest    inferred from {source} ({layout} folder; no bundle.json; `mmrt import onnx` writes it out)");
            for note in notes {
                println!("              {note}");
            }
        }
    }
    println!("checksums   {} file(s) verified", m.checksums.len());
    match (&m.compact_tokenizer, m.tokenizer.is_empty()) {
        (Some(compact), _) => println!("tokenizer   {compact} (mmrt's compact form, mapped; {} is its source)", m.tokenizer),
        (None, false) => println!("tokenizer   {}", m.tokenizer),
        (None, true) => {}
    }
    println!("stages");
    for stage in &m.stages {
        println!("  {}", stage.summary());
    }
    for (graph, io) in &graphs {
        println!("graph       {graph}");
        for line in io {
            println!("              {line}");
        }
    }
    let mut said = None;
    for stage in report.iter().flat_map(|r| &r.stages) {
        let registered: Vec<&str> = stage.registered.iter().map(|k| k.cli_name()).collect();
        println!("placement   {:<24} {} (providers: {})", stage.stage, stage.placement.summary(), registered.join(" > "));
        if let Some(reason) = stage.fallback_reason.as_ref().filter(|r| said != Some(*r)) {
            println!("              {} did not register: {reason}", stage.requested.cli_name());
            said = Some(reason);
        }
    }
    if m.stages.iter().any(|s| s.is_standalone()) {
        // A standalone generator has no prompt or text generation settings.
        return print_runtime(runtime, &providers);
    }
    println!("prompt      {:?}", m.prompt.template);
    println!("stop ids    {:?}", m.prompt.eos_token_ids);
    let g = &m.generation;
    let (temperature, top_k, top_p) = g.sampling.knobs();
    println!(
        "generation  max_new_tokens={} temperature={temperature} top_k={top_k} top_p={top_p} repetition_penalty={} beams={}",
        g.max_new_tokens, g.repetition_penalty, g.num_beams
    );
    print_runtime(runtime, &providers)
}

fn print_runtime(runtime: std::result::Result<mmrt::runtime::RuntimeInfo, String>, providers: &[&str]) -> Result<()> {
    match runtime {
        Ok(info) => println!("onnxruntime {} ({}); providers: {}", info.version, info.library.display(), providers.join(", ")),
        Err(e) => println!("onnxruntime not loaded: {e}"),
    }
    Ok(())
}

/// Inputs and outputs of every graph of the bundle, in manifest order.
fn graph_io(runtime: &OrtRuntime, bundle: &Bundle) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for stage in &bundle.manifest.stages {
        for graph in stage.files().into_iter().filter(|f| f.ends_with(".onnx")) {
            let opened = session::open(runtime, &bundle.resolve(graph)?, stage.name(), &SessionConfig::default())?;
            out.push((graph.to_string(), session::describe_io(&opened.session)));
        }
    }
    Ok(out)
}
