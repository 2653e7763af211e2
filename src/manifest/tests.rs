//! Manifest parsing and validation, table-driven over edits of the tiny bundle's manifest.

use super::*;

fn tiny() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/bundle.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parse(v: &serde_json::Value) -> std::result::Result<Manifest, String> {
    Manifest::from_json(&v.to_string(), Path::new("bundle.json")).map_err(|e| e.to_string())
}

#[test]
fn tiny_manifest_parses_and_names_every_file() {
    let m = parse(&tiny()).unwrap();
    assert_eq!(
        m.files(),
        [
            "tokenizer.json",
            "vision_encoder.onnx",
            "projector.onnx",
            "audio_encoder.onnx",
            "audio_projector.onnx",
            "embed.onnx",
            "decoder.onnx",
            "output_projector.onnx",
            "generator_denoiser.onnx",
            "generator_decoder.onnx"
        ]
    );
    assert_eq!(m.decoder().kv_cache.past_names()[..2], ["past_key_values.0.key", "past_key_values.0.value"]);
    assert_eq!(m.decoder().kv_cache.present_names().len(), 2 * m.decoder().kv_cache.num_layers);
}

/// Index of the first stage of `kind` (tests edit stages by kind, not position).
fn at(v: &serde_json::Value, kind: &str) -> usize {
    v["stages"].as_array().unwrap().iter().position(|s| s["kind"] == kind).unwrap()
}

#[test]
fn invalid_manifests_say_what_is_wrong() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 16] = [
        ("format", |v| v["format"] = "other".into(), "`format` must be"),
        ("both chat forms", |v| { v["prompt"]["chat_template"] = "{content}".into(); v["prompt"]["chat"] = serde_json::json!({"file": "c.jinja"}) }, "are both given"),
        ("chat path", |v| v["prompt"]["chat"] = serde_json::json!({"file": "../c.jinja"}), "points outside the bundle"),
        ("chat field", |v| v["prompt"]["chat"] = serde_json::json!({"file": "c.jinja", "bos": "<s>"}), "unknown field `bos`"),
        ("version", |v| v["version"] = 2.into(), "version` 2 is not supported"),
        ("unknown field", |v| v["stages"][0]["foo"] = 1.into(), "unknown field `foo`"),
        ("unknown kind", |v| v["stages"][0]["kind"] = "teleporter".into(), "unknown variant `teleporter`"),
        ("missing tensor", |v| { v["stages"][1].as_object_mut().unwrap().remove("output"); }, "missing field `output`"),
        ("empty tensor", |v| v["stages"][1]["output"] = " ".into(), "`output` names no tensor"),
        ("parent path", |v| v["stages"][1]["graph"] = "../x.onnx".into(), "points outside the bundle"),
        ("absolute path", |v| v["tokenizer"] = "/etc/passwd".into(), "points outside the bundle"),
        ("compact tokenizer path", |v| v["compact_tokenizer"] = "../tokenizer.bin".into(), "points outside the bundle"),
        ("no decoder", |v| { let i = at(v, "llm_decoder"); v["stages"].as_array_mut().unwrap().remove(i); }, "exactly one `llm_decoder`"),
        ("layer pattern", |v| { let i = at(v, "llm_decoder"); v["stages"][i]["kv_cache"]["past_key"] = "past.key".into() }, "must contain {layer}"),
        ("std", |v| v["stages"][0]["preprocess"]["std"][1] = 0.0.into(), "`std` must be positive"),
        ("top_p", |v| v["generation"]["top_p"] = 1.5.into(), "top-p must be in (0, 1]"),
    ];
    for (what, edit, needle) in cases {
        let mut v = tiny();
        edit(&mut v);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("bundle.json"), "{what}: names the file: {err}");
    }
}

#[test]
fn decoder_takes_embeddings_or_ids_never_both() {
    // the text-only form: ids in, no embedding graph
    let mut v = tiny();
    let d = at(&v, "llm_decoder");
    v["stages"][d]["inputs"] = serde_json::json!({"input_ids": "input_ids", "attention_mask": "attention_mask"});
    v["stages"][d].as_object_mut().unwrap().remove("embedding");
    let m = parse(&v).unwrap();
    assert!(m.decoder().embedding.is_none());
    assert!(!m.files().contains(&"embed.onnx"));
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 4] = [
        ("both", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["inputs"]["input_ids"] = "input_ids".into() }, "exactly one of"),
        ("neither", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["inputs"].as_object_mut().unwrap().remove("inputs_embeds"); }, "exactly one of"),
        ("embeds without graph", |v| { let d = at(v, "llm_decoder"); v["stages"][d].as_object_mut().unwrap().remove("embedding"); }, "needs an `embedding` graph"),
        (
            "ids with graph",
            |v| {
                let d = at(v, "llm_decoder");
                let inputs = v["stages"][d]["inputs"].as_object_mut().unwrap();
                inputs.remove("inputs_embeds");
                inputs.insert("input_ids".into(), "input_ids".into());
            },
            "only for a decoder taking",
        ),
    ];
    for (what, edit, needle) in cases {
        let mut v = tiny();
        edit(&mut v);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
}

/// The tiny manifest's decoder turned into a token-table decoder: the table
/// embeds and computes the logits from `hidden_states`.
fn with_token_table(v: &mut serde_json::Value) {
    let d = at(v, "llm_decoder");
    let stage = v["stages"][d].as_object_mut().unwrap();
    stage.remove("embedding");
    stage.insert("outputs".into(), serde_json::json!({"hidden_states": "hidden_states"}));
    stage.insert("token_table".into(), serde_json::json!({"file": "token_table.bin", "format": "q8_0", "vocab": 64, "width": 32, "scale": 2.0}));
}

#[test]
fn token_table_decoders_take_embeddings_and_return_hidden_states() {
    let mut v = tiny();
    with_token_table(&mut v);
    let m = parse(&v).unwrap();
    let table = m.decoder().token_table.as_ref().unwrap();
    assert_eq!((table.vocab, table.width, table.scale), (64, 32, 2.0));
    assert!(m.files().contains(&"token_table.bin") && !m.files().contains(&"embed.onnx"));
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 6] = [
        ("logits too", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["outputs"]["logits"] = "logits".into() }, "not both"),
        ("no hidden", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["outputs"] = serde_json::json!({}); }, "`outputs.hidden_states`, which is missing"),
        ("ids", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["inputs"] = serde_json::json!({"input_ids": "input_ids"}); }, "takes `inputs.inputs_embeds`"),
        ("format", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["token_table"]["format"] = "q4_0".into() }, "unknown variant `q4_0`"),
        ("path", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["token_table"]["file"] = "../t.bin".into() }, "points outside the bundle"),
        (
            "no logits at all",
            |v| {
                let d = at(v, "llm_decoder");
                v["stages"][d].as_object_mut().unwrap().remove("token_table");
                v["stages"][d]["inputs"] = serde_json::json!({"input_ids": "input_ids"});
            },
            "`outputs.logits` is missing",
        ),
    ];
    for (what, edit, needle) in cases {
        let mut v = tiny();
        with_token_table(&mut v);
        edit(&mut v);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
}

#[test]
fn invalid_output_side_says_what_is_wrong() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 7] = [
        ("scheduler kind", |v| { let g = at(v, "modality_generator"); v["stages"][g]["scheduler"]["kind"] = "pndm".into() }, "unknown variant `pndm`"),
        ("scheduler option", |v| { let g = at(v, "modality_generator"); v["stages"][g]["scheduler"]["eta"] = 0.5.into() }, "unknown field `eta`"),
        ("zero steps", |v| { let g = at(v, "modality_generator"); v["stages"][g]["steps"] = 0.into() }, "`steps` must be at least 1"),
        ("guidance", |v| { let g = at(v, "modality_generator"); v["stages"][g]["guidance_scale"] = (-1.0).into() }, "`guidance_scale` must be finite and >= 0"),
        ("latent shape", |v| { let g = at(v, "modality_generator"); v["stages"][g]["latent_shape"] = serde_json::json!([4, 0, 8]) }, "`latent_shape`"),
        ("no hidden states", |v| { let d = at(v, "llm_decoder"); v["stages"][d]["outputs"].as_object_mut().unwrap().remove("hidden_states"); }, "outputs.hidden_states"),
        ("no generator", |v| { let g = at(v, "modality_generator"); v["stages"].as_array_mut().unwrap().remove(g); }, "has no modality_generator"),
    ];
    let tiny = tiny();
    for (what, edit, needle) in cases {
        let mut v = tiny.clone();
        edit(&mut v);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
}

#[test]
fn audio_video_and_output_stages_are_described() {
    // The tiny bundle has the audio input side; add an audio output side.
    let mut v = tiny();
    let stages = v["stages"].as_array_mut().unwrap();
    stages.push(serde_json::json!({"kind": "output_projector", "name": "audio_out", "modality": "audio",
        "graph": "op.onnx", "input": "hidden", "output": "cond", "signal_tokens": ["[AUD0]"]}));
    stages.push(serde_json::json!({"kind": "modality_generator", "name": "audio_gen", "modality": "audio",
        "denoiser": {"graph": "unet.onnx", "inputs": {"latents": "sample", "timestep": "t", "conditioning": "c"}, "output": "out"},
        "decoder": {"graph": "vocoder.onnx", "input": "z", "output": "wave"},
        "scheduler": {"kind": "euler_discrete", "beta_schedule": "scaled_linear"},
        "latent_shape": [8, 256], "steps": 20, "guidance_scale": 2.5,
        "output": {"type": "audio", "format": "wav", "sample_rate": 16000, "value_range": [-1.0, 1.0]}}));
    let m = parse(&v).unwrap();
    assert!(m.encoder(Modality::Audio).is_some() && m.projector(Modality::Audio).is_some());
    assert!(m.files().contains(&"vocoder.onnx"));
    assert!(m.generator(Modality::Audio).is_some() && m.output_projector(Modality::Audio).is_some());
    assert_eq!(m.prompt.placeholders[&Modality::Audio], "<audio>");
    // An encoder without its projector is rejected, and so is one without a placeholder.
    let mut no_placeholder = v.clone();
    no_placeholder["prompt"]["placeholders"].as_object_mut().unwrap().remove("audio");
    assert!(parse(&no_placeholder).unwrap_err().contains("needs a placeholder and a media token id for audio"));
    let i = v["stages"].as_array().unwrap().iter().position(|s| s["name"] == "audio_projector").unwrap();
    v["stages"].as_array_mut().unwrap().remove(i);
    assert!(parse(&v).unwrap_err().contains("has no input_projector"));
}

fn whisper_like() -> serde_json::Value {
    serde_json::json!({
        "format": "mmrt.bundle", "version": 1, "name": "w", "tokenizer": "tokenizer.json",
        "stages": [
            {"kind": "modality_encoder", "name": "audio_encoder", "modality": "audio", "graph": "encoder.onnx",
             "input": "input_features", "output": "encoder_hidden_states",
             "preprocess": {"type": "audio", "sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80, "chunk_seconds": 30.0}},
            {"kind": "seq2seq_decoder", "name": "text_decoder", "graph": "decoder.onnx",
             "cross_kv": {"graph": "cross_kv.onnx", "input": "encoder_hidden_states", "key": "cross.{layer}.key", "value": "cross.{layer}.value"},
             "input_ids": "input_ids", "logits": "logits",
             "kv_cache": {"num_layers": 2, "past_key": "past.{layer}.key", "past_value": "past.{layer}.value",
                          "present_key": "present.{layer}.key", "present_value": "present.{layer}.value"},
             "context_length": 448,
             "decoder_prompt": {"start_token_id": 50258, "language_token_id": 50259, "task_token_id": 50359, "no_timestamps_token_id": 50363},
             "suppress_tokens": [1, 2], "begin_suppress_tokens": [220, 50257]}
        ],
        "prompt": {"template": "{content}", "eos_token_ids": [50257]}
    })
}

#[test]
fn seq2seq_manifests_parse_and_invalid_ones_say_what_is_wrong() {
    let m = parse(&whisper_like()).unwrap();
    let d = m.seq2seq_decoder().unwrap();
    assert!(m.llm_decoder().is_none());
    assert_eq!(d.decoder_prompt.ids(), [50258, 50259, 50359, 50363]);
    assert_eq!(d.cross_kv.names(2), ["cross.0.key", "cross.0.value", "cross.1.key", "cross.1.value"]);
    assert_eq!(m.files(), ["tokenizer.json", "encoder.onnx", "cross_kv.onnx", "decoder.onnx"]);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 6] = [
        ("no encoder", |v| { v["stages"].as_array_mut().unwrap().remove(0); }, "needs exactly one modality_encoder, for audio"),
        ("cross pattern", |v| v["stages"][1]["cross_kv"]["key"] = "cross.key".into(), "`cross_kv.key` must contain {layer}"),
        ("context", |v| v["stages"][1]["context_length"] = 4.into(), "leaves no room after the 4-token decoder prompt"),
        ("unknown prompt field", |v| v["stages"][1]["decoder_prompt"]["lang"] = 1.into(), "unknown field `lang`"),
        ("two decoders", |v| { let d = v["stages"][1].clone(); let mut d2 = d; d2["name"] = "x".into(); v["stages"].as_array_mut().unwrap().push(d2); }, "exactly one `llm_decoder` or `seq2seq_decoder`"),
        ("empty ids name", |v| v["stages"][1]["input_ids"] = "".into(), "`input_ids` names no tensor"),
    ];
    for (what, edit, needle) in cases {
        let mut v = whisper_like();
        edit(&mut v);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
}

/// Every tagged object is written with `kind`; the v1 spelling `type` of
/// preprocessing and media outputs still reads, and giving both is an error.
#[test]
fn one_tag_key_with_the_v1_spelling_read() {
    let v1 = tiny();
    let encoder = at(&v1, "modality_encoder");
    assert!(v1["stages"][encoder]["preprocess"].get("type").is_some(), "the committed tiny bundle is a v1 manifest");
    let m = parse(&v1).unwrap();
    let written = serde_json::to_value(&m).unwrap();
    let pre = &written["stages"][encoder]["preprocess"];
    assert!(pre.get("kind").is_some() && pre.get("type").is_none(), "written with `kind`: {pre}");
    let generator = at(&written, "modality_generator");
    assert_eq!(written["stages"][generator]["output"]["kind"], "image");
    // What mmrt writes reads back the same.
    let again = serde_json::to_value(parse(&written).unwrap()).unwrap();
    assert_eq!(again, written);
    let mut both = v1.clone();
    both["stages"][encoder]["preprocess"]["kind"] = "image".into();
    let err = parse(&both).unwrap_err();
    assert!(err.contains("both `kind` and `type`"), "{err}");
}

/// A standalone consistency generator bundle, as exporters/terrain writes it.
fn terrain_like() -> serde_json::Value {
    serde_json::json!({
        "format": "mmrt.bundle", "version": 1, "name": "terrain",
        "stages": [{
            "kind": "consistency_generator", "name": "terrain", "graph": "unet.onnx",
            "inputs": {"sample": "noisy", "sigma": "sigma", "condition": "difficulty"}, "output": "denoised",
            "sample_shape": [1, 128, 128], "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "steps": 1,
            "condition": {"name": "difficulty", "default": 50, "min": 1, "max": 100, "offset": 1.0, "divisor": 99.0},
            "output_transform": {"kind": "height_map", "value_range": [-1.0, 1.0], "asinh_scale": 0.1,
                                 "height_range": 22.16864013671875, "zero_floor": true}
        }]
    })
}

#[test]
fn consistency_generator_bundles_stand_alone() {
    let m = parse(&terrain_like()).unwrap();
    let c = m.consistency_generator().unwrap();
    assert_eq!(m.files(), ["unet.onnx"]);
    assert!(m.llm_decoder().is_none() && m.text_to_speech().is_none());
    // The package's label: (d - 1) / 99 as float32.
    assert_eq!(c.condition.graph_value(1), 0.0);
    assert_eq!(c.condition.graph_value(100), 1.0);
    assert_eq!(c.condition.graph_value(50), (49.0f64 / 99.0) as f32);
    assert!(c.condition.check(0).unwrap_err().contains("from 1 to 100, got 0"));
    assert_eq!(height_map_size(&c.sample_shape), Ok((128, 128)));
    let tiny_stage = tiny()["stages"][0].clone();
    let mut two = terrain_like();
    two["stages"].as_array_mut().unwrap().push(tiny_stage);
    assert!(parse(&two).unwrap_err().contains("stands alone in its bundle"));
    let mut with_tokenizer = terrain_like();
    with_tokenizer["tokenizer"] = "tokenizer.json".into();
    assert!(parse(&with_tokenizer).unwrap_err().contains("has no `tokenizer`"));
}

#[test]
fn invalid_consistency_generators_name_the_field() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 20] = [
        ("sigma order", |s| s["sigma_min"] = 90.0.into(), "`sigma_min` (90) must be smaller than `sigma_max` (80)"),
        ("sigma equal in f32", |s| s["sigma_min"] = 79.999999999.into(), "must be smaller than `sigma_max`"),
        ("sigma_min zero", |s| s["sigma_min"] = 0.0.into(), "`sigma_min` must be a positive number"),
        ("sigma_min underflows f32", |s| s["sigma_min"] = 1e-50.into(), "`sigma_min` must be a positive number within float32's range"),
        ("sigma_max huge", |s| s["sigma_max"] = 1e300.into(), "`sigma_max` must be a positive number within float32's range"),
        ("rho", |s| s["rho"] = (-7.0).into(), "`rho` must be a positive number"),
        ("steps 0", |s| s["steps"] = 0.into(), "`steps` must be in 1..=1000"),
        ("steps huge", |s| s["steps"] = 1001.into(), "limits::MAX_CONSISTENCY_STEPS"),
        ("shape empty", |s| s["sample_shape"] = serde_json::json!([]), "`sample_shape` must be non-empty"),
        ("shape zero", |s| s["sample_shape"] = serde_json::json!([1, 0, 128]), "positive sizes"),
        ("shape huge", |s| s["sample_shape"] = serde_json::json!([1, 65536, 65536]), "limits::MAX_LATENT_ELEMENTS"),
        ("shape channels", |s| s["sample_shape"] = serde_json::json!([3, 128, 128]), "[height, width] or [1, height, width]"),
        ("condition range", |s| s["condition"]["min"] = 200.into(), "`condition.min` and `condition.max`"),
        ("condition default", |s| s["condition"]["default"] = 0.into(), "`condition.default` 0 is outside"),
        ("condition divisor", |s| s["condition"]["divisor"] = 0.0.into(), "`condition.divisor` must be finite and non-zero"),
        ("condition overflow", |s| s["condition"]["divisor"] = 1e-300.into(), "outside float32's range"),
        ("value range", |s| s["output_transform"]["value_range"] = serde_json::json!([1.0, -1.0]), "`output_transform.value_range`"),
        ("asinh scale", |s| s["output_transform"]["asinh_scale"] = 0.0.into(), "`output_transform.asinh_scale` must be a positive number"),
        ("same inputs", |s| s["inputs"]["sigma"] = "noisy".into(), "three different tensors"),
        ("transform kind", |s| s["output_transform"]["kind"] = "point_cloud".into(), "unknown variant `point_cloud`"),
    ];
    for (what, edit, needle) in cases {
        let mut v = terrain_like();
        edit(&mut v["stages"][0]);
        let err = parse(&v).expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("bundle.json"), "{what}: names the file: {err}");
    }
}
