//! The output side of an any-to-any bundle: signal tokens -> output projector
//! -> modality generator -> media files.
//!
//! The generation loop forces and collects the hidden states of each complete
//! run of signal tokens ([`crate::generate::SignalTokens`]); each run becomes one
//! conditioning tensor and one generated media item, written as
//! `<generator>_<n>.<ext>` when the request names an output directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::generate::SignalTokens;
use crate::manifest::Modality;
use crate::media::Media;
use crate::stages::graph::StageLoader;
use crate::stages::generator::{DiffusionSettings, GeneratorTimings, ModalityGenerator, UsedSettings};
use crate::stages::output_projector::OutputProjector;
use crate::tokenizer::TextTokenizer;

/// One generated media item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedMedia {
    /// Image or audio.
    pub modality: Modality,
    /// File written (`None` when the request named no output directory).
    pub path: Option<PathBuf>,
    /// `png` or `wav`.
    pub format: &'static str,
    /// Scheduler, steps and guidance used.
    pub settings: UsedSettings,
    /// Output projector milliseconds.
    pub output_projector_ms: f64,
    /// Denoiser loop and decoder milliseconds.
    pub timings: GeneratorTimings,
    /// The media itself.
    #[serde(skip)]
    pub media: Media,
}

/// Signal tokens, output projector and generator of one modality.
pub struct OutputSide {
    signals: SignalTokens,
    projector: OutputProjector,
    generator: ModalityGenerator,
}

impl OutputSide {
    /// Open the output side of `bundle`, if it has one (the image modality; one
    /// output side per bundle for now). Signal tokens must each be one token
    /// of the tokenizer.
    pub fn open(loader: &StageLoader<'_>, tokenizer: &TextTokenizer) -> Result<Option<Self>> {
        let bundle = loader.bundle;
        let manifest = &bundle.manifest;
        let Some(stage) = manifest.output_projectors().next() else {
            return Ok(None);
        };
        let generator_stage = manifest.generator(stage.modality).expect("validated: a generator per output projector");
        let signals = signal_ids(tokenizer, &stage.signal_tokens, &stage.name, &manifest.tokenizer)
            .map_err(|message| Error::Manifest { path: bundle.root.join(crate::bundle::MANIFEST_FILE), message })?;
        let projector = OutputProjector::open(loader, stage)?;
        let generator = ModalityGenerator::open(loader, generator_stage)?;
        // The projector's conditioning feeds the denoiser: where both graphs declare
        // static sizes (batch aside), they must agree.
        if let (Some(out), Some(cond)) = (projector.output_dims(), generator.conditioning_dims()) {
            let wanted: Vec<Option<usize>> =
                out.iter().enumerate().map(|(i, d)| if i == 0 { None } else { d.and_then(|d| usize::try_from(d).ok()) }).collect();
            let (stage_name, tensor) = generator.conditioning_input();
            let source = format!("the output of output_projector \"{}\"", stage.name);
            crate::runtime::session::check_dims(&stage_name, tensor, Some(&cond), &wanted, &source)?;
        }
        Ok(Some(Self { signals, projector, generator }))
    }

    /// The signal token ids, in run order.
    pub fn signals(&self) -> &SignalTokens {
        &self.signals
    }

    /// The generator (to change its scheduler or call it directly).
    pub fn generator_mut(&mut self) -> &mut ModalityGenerator {
        &mut self.generator
    }

    /// The output projector.
    pub fn projector_mut(&mut self) -> &mut OutputProjector {
        &mut self.projector
    }

    /// Check generation settings against the generator (step count within the
    /// scheduler's training range, guidance) before any model runs.
    pub fn check(&self, settings: &DiffusionSettings) -> Result<()> {
        self.generator.check(settings)
    }

    /// Turn each run's hidden states `[k, d_llm]` into media; write it into
    /// `out_dir` when given. Run `i` draws seeded noise from stream `i`.
    pub fn generate(&mut self, runs: &[Vec<f32>], settings: &DiffusionSettings, out_dir: Option<&Path>) -> Result<Vec<GeneratedMedia>> {
        let k = self.signals.ids.len();
        let mut out = Vec::with_capacity(runs.len());
        for (i, hidden) in runs.iter().enumerate() {
            let (conditioning, projector_time): (_, Duration) = self.projector.project(hidden, k)?;
            let (media, used, timings) = self.generator.generate(&conditioning, settings, i as u64)?;
            let path = match out_dir {
                Some(dir) => {
                    let path = dir.join(format!("{}_{i}.{}", self.generator.name(), media.extension()));
                    media.write(&path)?;
                    Some(path)
                }
                None => None,
            };
            out.push(GeneratedMedia {
                modality: media.modality(),
                path,
                format: media.extension(),
                settings: used,
                output_projector_ms: projector_time.as_secs_f64() * 1e3,
                timings,
                media,
            });
        }
        Ok(out)
    }
}

/// Ids of the manifest's signal tokens; each must be a single token of the
/// tokenizer. The error says which token, stage and tokenizer file.
pub fn signal_ids(tokenizer: &TextTokenizer, tokens: &[String], stage: &str, tokenizer_file: &str) -> std::result::Result<SignalTokens, String> {
    let ids = tokens
        .iter()
        .map(|t| {
            tokenizer.token_to_id(t).ok_or_else(|| {
                format!(
                    "signal token \"{t}\" of stage \"{stage}\" is not a token of the tokenizer ({tokenizer_file}); \
                     the bundle's tokenizer and manifest disagree"
                )
            })
        })
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    Ok(SignalTokens { ids })
}
