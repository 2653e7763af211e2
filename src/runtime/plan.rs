//! Session settings per stage, as data: one [`SessionConfig`] for every stage
//! (the command line's `--ep`, `--threads`), overridden per stage name by the
//! manifest's optional `sessions` block and by `--stage NAME:KEY=VALUE` flags,
//! so each stage can run where it suits (a vision encoder on the GPU, the
//! decoder on the CPU, or the reverse).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::provider_options::{self, ProviderSpec};
use super::{ExecutionProviderKind, SessionConfig};
use crate::error::{Error, Result};

/// Changes to the default session settings for one stage; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSession {
    /// Execution provider of this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ep: Option<ExecutionProviderKind>,
    /// Options of this stage's provider (ONNX Runtime's keys, e.g. `device_id`,
    /// `gpu_mem_limit`, `trt_fp16_enable`), checked against what it accepts.
    /// They replace the default provider's options when `ep` is set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "scalar_map")]
    pub ep_options: BTreeMap<String, String>,
    /// Intra-op threads of this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// ONNX Runtime session configuration entries (e.g. `session.disable_prepacking` = `1`),
    /// added to the default ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Whether the CPU memory arena is on (see [`SessionConfig::cpu_arena`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arena: Option<bool>,
}

impl StageSession {
    /// Apply `other` on top of `self` (its `Some`s and options win).
    fn merge(&mut self, other: &StageSession) {
        if other.ep.is_some_and(|ep| Some(ep) != self.ep) {
            self.ep_options.clear();
        }
        self.ep = other.ep.or(self.ep);
        self.ep_options.extend(other.ep_options.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.threads = other.threads.or(self.threads);
        self.arena = other.arena.or(self.arena);
        self.options.extend(other.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// The session settings of every stage of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct SessionPlan {
    /// Settings of every stage without an override.
    pub default: SessionConfig,
    /// Per stage name.
    pub stages: BTreeMap<String, StageSession>,
}

impl SessionPlan {
    /// The same settings for every stage.
    pub fn uniform(default: SessionConfig) -> Self {
        Self { default, stages: BTreeMap::new() }
    }

    /// Add overrides (later ones win over earlier ones for the same stage and key).
    pub fn with_overrides<'a>(mut self, overrides: impl IntoIterator<Item = (&'a String, &'a StageSession)>) -> Self {
        for (stage, o) in overrides {
            self.stages.entry(stage.clone()).or_default().merge(o);
        }
        self
    }

    /// The settings of `stage`. A graph of a stage (`decoder.embedding`,
    /// `whisper_decoder.cross_kv`) follows its stage (the part before the first dot).
    pub fn for_stage(&self, stage: &str) -> SessionConfig {
        let owner = stage.split('.').next().unwrap_or(stage);
        let mut config = self.default.clone();
        if let Some(o) = self.stages.get(owner) {
            if let Some(ep) = o.ep.filter(|&ep| ep != config.provider) {
                config.provider = ep;
                config.provider_options.clear();
            }
            config.provider_options.extend(o.ep_options.iter().map(|(k, v)| (k.clone(), v.clone())));
            config.threads = o.threads.or(config.threads);
            config.cpu_arena = o.arena.unwrap_or(config.cpu_arena);
            config.options.extend(o.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        config
    }

    /// The plan a bundle runs with: its manifest's `sessions` block over this
    /// plan's default, this plan's per-stage overrides on top, every override
    /// naming one of the bundle's stages.
    pub fn for_manifest(&self, manifest: &crate::manifest::Manifest) -> Result<SessionPlan> {
        let plan = SessionPlan { default: self.default.clone(), stages: manifest.sessions.clone() }.with_overrides(&self.stages);
        plan.check_stage_names(manifest.stages.iter().map(|s| s.name()))?;
        plan.check_provider_options()?;
        Ok(plan)
    }

    /// Whether any stage is asked to run on a GPU provider (a GPU-capable
    /// ONNX Runtime library is then looked for first).
    pub fn wants_gpu(&self) -> bool {
        self.default.provider.is_gpu() || self.stages.values().any(|o| o.ep.is_some_and(ExecutionProviderKind::is_gpu))
    }

    /// Check every stage's provider options against what its provider accepts
    /// (the manifest's `sessions` block is checked here, flags when parsed).
    pub fn check_provider_options(&self) -> Result<()> {
        for stage in self.stages.keys() {
            let config = self.for_stage(stage);
            provider_options::validate(config.provider, &config.provider_options)
                .map_err(|why| Error::Request(format!("session settings of stage \"{stage}\": {why}")))?;
        }
        Ok(())
    }

    /// Check every override names one of `stages` (a typo must not be ignored).
    pub fn check_stage_names<'a>(&self, stages: impl IntoIterator<Item = &'a str> + Clone) -> Result<()> {
        for name in self.stages.keys() {
            if !stages.clone().into_iter().any(|s| s == name) {
                let known: Vec<&str> = stages.clone().into_iter().collect();
                return Err(Error::Request(format!("session settings name stage \"{name}\", which the bundle does not have (stages: {})", known.join(", "))));
            }
        }
        Ok(())
    }
}

/// Parse one `--ep-stage NAME=PROVIDER[:KEY=VALUE,...]` flag: the stage's
/// provider and its options, validated.
pub fn parse_ep_stage_flag(spec: &str) -> Result<(String, StageSession)> {
    let bad = |why: &str| Error::Request(format!("--ep-stage {spec:?}: {why} (expected NAME=PROVIDER[:KEY=VALUE,...], e.g. vision_encoder=cuda:device_id=0)"));
    let (stage, provider) = spec.split_once('=').ok_or_else(|| bad("no '=' after the stage name"))?;
    if stage.is_empty() || stage.contains(':') {
        return Err(bad("the stage name is empty or holds a ':'"));
    }
    let ProviderSpec { kind, options } = provider.parse::<ProviderSpec>().map_err(|e| bad(&e))?;
    Ok((stage.to_string(), StageSession { ep: Some(kind), ep_options: options, ..StageSession::default() }))
}

/// Deserialize a map whose values may be JSON strings, numbers or booleans
/// (`"device_id": 0`, `"trt_fp16_enable": true`) as strings.
fn scalar_map<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Bool(b) => Ok((k, if b { "1" } else { "0" }.to_string())),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            other => Err(serde::de::Error::custom(format!("provider option \"{k}\" must be a string, number or boolean, not {other}"))),
        })
        .collect()
}

/// Parse one `--stage NAME:KEY=VALUE` flag: KEY is `ep`, `ep.OPTION` (a provider option), `threads`, `arena` (0 or 1), or an
/// ONNX Runtime session configuration key (it contains a dot, e.g.
/// `session.disable_prepacking`).
pub fn parse_stage_flag(spec: &str) -> Result<(String, StageSession)> {
    let bad = |why: &str| Error::Request(format!("--stage {spec:?}: {why} (expected NAME:KEY=VALUE, KEY one of ep, ep.OPTION, threads, arena, or an ONNX Runtime session key such as session.disable_prepacking)"));
    let (stage, setting) = spec.split_once(':').ok_or_else(|| bad("no ':' after the stage name"))?;
    let (key, value) = setting.split_once('=').ok_or_else(|| bad("no '=' in the setting"))?;
    if stage.is_empty() || key.is_empty() || value.is_empty() {
        return Err(bad("empty stage, key or value"));
    }
    let mut o = StageSession::default();
    match key {
        "ep" => {
            o.ep = Some(value.parse::<ExecutionProviderKind>().map_err(|e| bad(&e))?);
        }
        k if k.starts_with("ep.") => {
            o.ep_options.insert(k["ep.".len()..].to_string(), value.to_string());
        }
        "threads" => {
            let n: usize = value.parse().map_err(|_| bad(&format!("threads must be a positive integer, got {value:?}")))?;
            if n == 0 {
                return Err(bad("threads must be at least 1"));
            }
            o.threads = Some(n);
        }
        "arena" => {
            o.arena = Some(match value {
                "1" | "true" | "on" => true,
                "0" | "false" | "off" => false,
                _ => return Err(bad(&format!("arena is 0 or 1, got {value:?}"))),
            });
        }
        k if k.contains('.') => {
            o.options.insert(k.to_string(), value.to_string());
        }
        _ => return Err(bad(&format!("unknown key {key:?}"))),
    }
    Ok((stage.to_string(), o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_overrides_apply_to_their_stage_and_its_graphs_only() {
        let (name, o) = parse_stage_flag("llm:threads=3").unwrap();
        let (name2, o2) = parse_stage_flag("llm:session.disable_prepacking=1").unwrap();
        let (name3, o3) = parse_stage_flag("vision:ep=cuda").unwrap();
        let (name4, o4) = parse_stage_flag("vision:arena=0").unwrap();
        let plan = SessionPlan::uniform(SessionConfig::default()).with_overrides([(&name, &o), (&name2, &o2), (&name3, &o3), (&name4, &o4)]);
        let llm = plan.for_stage("llm.embedding");
        assert_eq!(llm.threads, Some(3));
        assert_eq!(llm.options.get("session.disable_prepacking").map(String::as_str), Some("1"));
        assert_eq!(llm.provider, ExecutionProviderKind::Cpu);
        assert_eq!(plan.for_stage("vision").provider, ExecutionProviderKind::Cuda);
        assert!(!plan.for_stage("vision").cpu_arena && llm.cpu_arena, "the arena is off for its stage only");
        assert_eq!(plan.for_stage("projector"), SessionConfig::default());
        assert!(plan.wants_gpu(), "vision asks for CUDA");
        assert!(!SessionPlan::uniform(SessionConfig::default()).with_overrides([(&name, &o)]).wants_gpu());
        assert!(plan.check_stage_names(["llm", "vision"]).is_ok());
        assert!(plan.check_stage_names(["llm"]).unwrap_err().to_string().contains("\"vision\""));
    }

    #[test]
    fn bad_flags_name_the_problem() {
        for (spec, needle) in [("llm", "':'"), ("llm:threads", "'='"), ("llm:threads=0", "at least 1"), ("llm:ep=gpu", "gpu"), ("llm:speed=2", "unknown key"), ("llm:arena=maybe", "arena is 0 or 1")] {
            let err = parse_stage_flag(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
