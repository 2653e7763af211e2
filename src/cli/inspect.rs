//! `mmrt inspect`: what a bundle holds (stages, graphs, tensors, prompt
//! format) and what the runtime offers (ONNX Runtime version, providers).

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::error::Result;
use crate::manifest::Stage;
use crate::runtime::session::{self, SessionConfig};
use crate::runtime::OrtRuntime;
use crate::{Bundle, Pipeline};

/// Arguments of `mmrt inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bundle directory (holds bundle.json).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Print the validated manifest and runtime facts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the command.
pub fn inspect(cli: &Cli, args: &InspectArgs) -> Result<()> {
    let bundle = Bundle::open(&args.bundle)?;
    let loaded = OrtRuntime::load(cli.ort_lib.as_deref());
    let graphs = match &loaded {
        // Opening every stage checks the manifest's tensor names against the graphs.
        Ok(rt) => {
            if crate::speech::is_speech_bundle(&bundle) {
                crate::speech::SpeechPipeline::load(rt, bundle.clone(), &SessionConfig::default(), None)?;
            } else {
                let pipeline = Pipeline::load(rt, bundle.clone(), &SessionConfig::default())?;
                super::run::check_prompt_tokens(pipeline.bundle(), pipeline.tokenizer())?;
            }
            graph_io(rt, &bundle)?
        }
        Err(_) => Vec::new(),
    };
    let runtime = loaded.map(|rt| rt.info).map_err(|e| e.to_string());
    let providers = crate::runtime::ep::available_providers_if_loaded(runtime.is_ok());
    if args.json {
        let json = serde_json::json!({
            "root": bundle.root,
            "manifest": bundle.manifest,
            "onnxruntime": runtime.as_ref().ok(),
            "onnxruntime_error": runtime.as_ref().err(),
            "execution_providers": providers,
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
    println!("checksums   {} file(s) verified", m.checksums.len());
    println!("stages");
    for stage in &m.stages {
        println!("  {}", describe(stage));
    }
    for (graph, io) in &graphs {
        println!("graph       {graph}");
        for line in io {
            println!("              {line}");
        }
    }
    println!("prompt      {:?}", m.prompt.template);
    println!("stop ids    {:?}", m.prompt.eos_token_ids);
    let g = &m.generation;
    println!(
        "generation  max_new_tokens={} temperature={} top_k={} top_p={} repetition_penalty={}",
        g.max_new_tokens, g.temperature, g.top_k, g.top_p, g.repetition_penalty
    );
    match runtime {
        Ok(info) => println!("onnxruntime {} ({}); providers: {}", info.version, info.library.display(), providers.join(", ")),
        Err(e) => println!("onnxruntime not loaded: {e}"),
    }
    Ok(())
}

fn describe(stage: &Stage) -> String {
    match stage {
        Stage::ModalityEncoder(s) => format!("modality_encoder  {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
        Stage::InputProjector(s) => format!("input_projector   {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
        Stage::LlmDecoder(s) => format!(
            "llm_decoder       {:<16} {} ({}): {} layers, context {}",
            s.name,
            s.graph,
            match &s.embedding {
                Some(e) => format!("inputs_embeds, + {}", e.graph),
                None => "token ids in, text only".into(),
            },
            s.kv_cache.num_layers,
            s.context_length
        ),
        Stage::Seq2seqDecoder(s) => format!(
            "seq2seq_decoder   {:<16} {} (+ cross-attention projection {}): {} layers, context {}",
            s.name, s.graph, s.cross_kv.graph, s.kv_cache.num_layers, s.context_length
        ),
        Stage::OutputProjector(s) => format!("output_projector  {:<16} {} {}: {} -> {}", s.name, s.modality, s.graph, s.input, s.output),
        Stage::ModalityGenerator(s) => {
            format!(
                "modality_generator {:<15} {} {} + {}: {}, {} steps, guidance {}, latents {:?}",
                s.name,
                s.modality,
                s.denoiser.graph,
                s.decoder.graph,
                s.scheduler.class_name(),
                s.steps,
                s.guidance_scale,
                s.latent_shape
            )
        }
    }
}

/// Inputs and outputs of every graph of the bundle, in manifest order.
fn graph_io(runtime: &OrtRuntime, bundle: &Bundle) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for stage in &bundle.manifest.stages {
        for graph in stage.files() {
            let opened = session::open(runtime, &bundle.resolve(graph)?, stage.name(), &SessionConfig::default())?;
            out.push((graph.to_string(), session::describe_io(&opened.session)));
        }
    }
    Ok(out)
}
