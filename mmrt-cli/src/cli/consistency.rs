//! `mmrt run` on a consistency generator bundle (e.g. models/terrain): noise
//! -> `--steps` graph calls at `--difficulty` -> `<stage>.png` (16-bit
//! grayscale) and `<stage>.f32` (raw float32 heights, little-endian,
//! row-major) in `--out-dir`; `--json` reports the shape, noise levels and
//! per-step timings.

use std::io::Write;
use std::time::Instant;

use super::run::RunArgs;
use super::speak::ms_since;
use super::Cli;
use mmrt::diffusion::Noise;
use mmrt::error::{Error, Result};
use mmrt::manifest::ConsistencyGeneratorStage;
use mmrt::runtime::OrtRuntime;
use mmrt::stages::consistency::{ConsistencyGenerator, ConsistencySettings};
use mmrt::Bundle;

/// The flag that sets a consistency generator's condition.
const CONDITION_FLAG: &str = "difficulty";

/// Generate one sample with the consistency generator bundle `bundle`.
pub fn generate(cli: &Cli, args: &RunArgs, bundle: Bundle) -> Result<()> {
    let name = bundle.name().to_string();
    let stage = bundle.manifest.consistency_generator().cloned().ok_or_else(|| Error::Request(format!("bundle \"{name}\" has no consistency generator")))?;
    check_flags(args, &name)?;
    let settings = settings(args, &stage, &name)?;
    let out_dir = args
        .out_dir
        .as_deref()
        .ok_or_else(|| Error::Request(format!("bundle \"{name}\" writes a height map: pass --out-dir DIR ({0}.png and {0}.f32)", stage.name)))?;
    let out_dir = mmrt::media::prepare_out_dir(out_dir)?;
    let plan = args.session.plan()?;
    let runtime = OrtRuntime::load_for(cli.ort_lib.as_deref(), plan.wants_gpu())?;
    let start = Instant::now();
    let mut generator = ConsistencyGenerator::open(&runtime, &bundle, &plan)?;
    let load_ms = ms_since(start);
    if let Some(reason) = &generator.provider().fallback_reason {
        eprintln!("warning: {reason}; running on CPU (use --strict-ep to make this an error)");
    }
    let generated = generator.generate(&settings)?;
    let start = Instant::now();
    let png = out_dir.join(format!("{}.png", stage.name));
    let heights = out_dir.join(format!("{}.f32", stage.name));
    generated.height_map.write_png16(&png)?;
    generated.height_map.write_f32(&heights)?;
    let write_ms = ms_since(start);
    let map = &generated.height_map;
    let (low, high) = map.extent();
    if args.json {
        let t = &generated.timings;
        let json = serde_json::json!({
            "bundle": name,
            "stage": stage.name,
            "png": png,
            "heights": heights,
            "heights_format": "float32 little-endian, row-major [height, width]",
            "shape": [map.height, map.width],
            "height_range": map.height_range,
            "height_min": low,
            "height_max": high,
            "steps": generated.used.steps,
            "sigmas": generated.used.sigmas,
            "condition": {
                "name": generated.used.condition_name,
                "value": generated.used.condition,
                "graph_value": generated.used.condition_value,
            },
            "seed": args.sampling.seed,
            "timings": {
                "load_ms": load_ms,
                "step_ms": t.step_ms,
                "sample_ms": t.sample_ms,
                "transform_ms": t.transform_ms,
                "write_ms": write_ms,
            },
            "execution_provider": generator.provider(),
        });
        writeln!(std::io::stdout().lock(), "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        eprintln!(
            "wrote {} and {} ({}x{}, heights {low:.3}..{high:.3} of {}; {} {}, {} step(s), {:.0} ms)",
            png.display(),
            heights.display(),
            map.width,
            map.height,
            map.height_range,
            generated.used.condition_name,
            generated.used.condition,
            generated.used.steps,
            generated.timings.sample_ms
        );
    }
    Ok(())
}

/// A consistency generator takes `--steps`, `--difficulty`, `--seed` and `--out-dir` only.
fn check_flags(args: &RunArgs, name: &str) -> Result<()> {
    let s = &args.sampling;
    let llm = args.prompt.is_some()
        || !args.images.is_empty()
        || !args.audio.is_empty()
        || args.chat
        || args.vad
        || args.beams.is_some()
        || args.max_tokens.is_some()
        || args.guidance.is_some()
        || s.temperature.is_some()
        || s.top_k.is_some()
        || s.top_p.is_some()
        || s.repetition_penalty.is_some();
    if llm || args.speech.any() || args.pcm_stdout {
        return Err(Error::Request(format!(
            "bundle \"{name}\" is a consistency generator (no text in): it takes --out-dir, --steps, --{CONDITION_FLAG}, --seed \
             and --json only (no --prompt, --image, --audio, --chat, --guidance or sampling and voice flags)"
        )));
    }
    Ok(())
}

/// The request's settings, checked against the manifest before any model loads.
fn settings(args: &RunArgs, stage: &ConsistencyGeneratorStage, name: &str) -> Result<ConsistencySettings> {
    if args.difficulty.is_some() && stage.condition.name != CONDITION_FLAG {
        return Err(Error::Request(format!(
            "bundle \"{name}\" is conditioned on \"{}\", which --{CONDITION_FLAG} does not set",
            stage.condition.name
        )));
    }
    if let Some(d) = args.difficulty {
        stage.condition.check(d).map_err(Error::Request)?;
    }
    if let Some(steps) = args.steps {
        mmrt::manifest::check_steps("--steps", steps).map_err(Error::Request)?;
    }
    Ok(ConsistencySettings { steps: args.steps, condition: args.difficulty, noise: Noise::Seed(args.sampling.seed) })
}
