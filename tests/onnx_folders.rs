//! ONNX model folders with no bundle.json (manifest inference, `src/import/`).
//!
//! * Real folders (built by `bash exporters/onnx_folders/build.sh` into `.cache/onnx-folders/`;
//!   skipped with a note when missing unless `MMRT_REQUIRE_REAL` is set): SmolLM2-135M-Instruct as
//!   onnxruntime-genai's model builder writes it (int4, shared KV buffer) and as Optimum exports it
//!   (`onnx/model.onnx`, `onnx/model_quantized.onnx`, `onnx/model_fp16.onnx` with a float16 KV
//!   cache and logits). `mmrt run --bundle DIR` gives the greedy ids
//!   of the tools' own runtimes (`og.Generator`; an onnxruntime-in-Python loop), recorded in
//!   `tests/golden/onnx_folders.json` by `exporters/onnx_folders/goldens.py`.
//! * Tiny folders made here (hand-written configs, graphs that only declare their inputs and
//!   outputs): what is inferred, and every bad folder is one clear `error:` line, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{self, assert_all_fail, assert_fails, strings};
use common::onnx::decoder_io;
use common::TempDir;
use serde_json::{json, Value};

// ---------------------------------------------------------------- real folders

fn folder(name: &str) -> Option<PathBuf> {
    let dir = common::root().join(".cache/onnx-folders").join(name);
    let ready = dir.join("genai_config.json").is_file() || dir.join("onnx/model_fp16.onnx").is_file();
    common::bundles::built(dir, ready, common::bundles::real_required(), "exporters/onnx_folders/build.sh")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(common::root().join("tests/golden/onnx_folders.json")).expect("tests/golden/onnx_folders.json");
    serde_json::from_str(&text).expect("golden JSON")
}

/// Every golden prompt of `key` through `mmrt run --bundle ARG --json` (plus `extra` flags):
/// the same prompt length and the same greedy ids as the reference runtime.
fn check_greedy(key: &str, bundle_arg: &Path, extra: &[&str]) {
    let g = golden();
    let f = &g["folders"][key];
    let cases = f["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3, "{key}: at least three prompts");
    let full = cases.iter().filter(|c| c["new_ids"].as_array().unwrap().len() == 32).count();
    assert!(full >= 3, "{key}: at least three prompts run the full 32 tokens, {full} do");
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let mut args = vec!["--max-tokens", "32", "--threads", "2", "--json"];
        args.extend(extra);
        let out = cli::run_bundle(bundle_arg, prompt, &[], &args);
        assert!(out.ok, "{key}: {prompt:?}: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).expect("run --json");
        assert_eq!(v["prompt_tokens"].as_u64().unwrap() as usize, case["prompt_ids"].as_array().unwrap().len(), "{key}: {prompt:?}: prompt length");
        assert_eq!(common::ids(&v["token_ids"]), common::ids(&case["new_ids"]), "{key}: {prompt:?}: greedy ids vs {}", f["runtime"]);
    }
}

#[test]
fn genai_folder_runs_as_onnxruntime_genai_generates() {
    let Some(dir) = folder("genai-int4") else { return };
    check_greedy("genai-int4", &dir, &[]);
}

#[test]
fn optimum_folder_runs_as_onnxruntime_greedy_loop() {
    let Some(dir) = folder("optimum") else { return };
    check_greedy("optimum", &dir, &[]);
}

#[test]
fn optimum_quantized_variant_by_flag_and_by_file() {
    let Some(dir) = folder("optimum") else { return };
    check_greedy("optimum:quantized", &dir, &["--variant", "quantized"]);
    // The graph file itself: one prompt is enough to show the same manifest is inferred.
    let g = golden();
    let case = &g["folders"]["optimum:quantized"]["cases"][0];
    let out = cli::run_bundle(&dir.join("onnx/model_quantized.onnx"), case["prompt"].as_str().unwrap(), &[], &["--max-tokens", "32", "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(common::ids(&v["token_ids"]), common::ids(&case["new_ids"]));
}

#[test]
fn optimum_fp16_variant_runs_a_float16_cache_and_logits() {
    let Some(dir) = folder("optimum") else { return };
    let out = cli::mmrt(&["inspect".as_ref(), "--bundle".as_ref(), dir.as_os_str(), "--variant".as_ref(), "fp16".as_ref()]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("float16 KV cache, float16 logits"), "{}", out.stdout);
    check_greedy("optimum:fp16", &dir, &["--variant", "fp16"]);
}

#[test]
fn inspect_says_the_manifest_was_inferred() {
    let Some(dir) = folder("genai-int4") else { return };
    let out = cli::mmrt(&["inspect".as_ref(), "--bundle".as_ref(), dir.as_os_str()]);
    assert!(out.ok, "{}", out.stderr);
    for needle in ["inferred from genai_config.json", "onnxruntime-genai folder", "30 layers, 3 KV heads of size 64", "past_present_share_buffer", "chat_template.jinja"] {
        assert!(out.stdout.contains(needle), "inspect lacks {needle:?}:\n{}", out.stdout);
    }
}

// ---------------------------------------------------------------- tiny folders made here

/// A genai folder: `genai_config.json` from `config`, `model.onnx` declaring `graph`, the tiny tokenizer.
fn genai_folder(tag: &str, config: &Value, graph: &[u8]) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("genai_config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::write(dir.path().join("model.onnx"), graph).unwrap();
    std::fs::copy(common::tiny_dir().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    dir
}

/// genai_config.json of a 2-layer model: 4 query heads, 2 KV heads of size 8, vocab 100.
fn genai_config() -> Value {
    json!({
        "model": {
            "type": "llama", "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": 0,
            "context_length": 64, "vocab_size": 100,
            "decoder": {
                "filename": "model.onnx", "head_size": 8, "hidden_size": 32,
                "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value"},
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []}
            }
        },
        "search": {"past_present_share_buffer": true, "max_length": 64, "do_sample": true, "temperature": 0.5, "top_k": 5, "top_p": 0.9}
    })
}

/// An Optimum folder: `config.json` from `config`, `generation_config.json`, the tiny tokenizer,
/// and each of `graphs` (folder-relative path) declaring the same 2-layer decoder.
fn optimum_folder(tag: &str, config: &Value, graphs: &[&str]) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::write(dir.path().join("generation_config.json"), br#"{"eos_token_id": 2, "bos_token_id": 1}"#).unwrap();
    std::fs::copy(common::tiny_dir().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    for g in graphs {
        let path = dir.path().join(g);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, decoder_io(2, 2, 8, 100, true, &[])).unwrap();
    }
    dir
}

fn optimum_config() -> Value {
    json!({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "hidden_size": 32, "vocab_size": 100, "max_position_embeddings": 64, "eos_token_id": 2, "bos_token_id": 1})
}

/// `mmrt import onnx ARG --out -`: the printed manifest.
fn imported(arg: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<&std::ffi::OsStr> = vec!["import".as_ref(), "onnx".as_ref(), arg.as_os_str(), "--out".as_ref(), "-".as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = cli::mmrt(&args);
    assert!(out.ok, "import onnx {}: {}", arg.display(), out.stderr);
    let manifest: Value = serde_json::from_str(&out.stdout).expect("a JSON manifest on stdout");
    mmrt::manifest::Manifest::from_json(&out.stdout, Path::new("stdout")).expect("the written manifest reads back");
    manifest
}

#[test]
fn genai_folder_manifest_is_inferred_from_config_and_graph() {
    let dir = genai_folder("genai-ok", &genai_config(), &decoder_io(2, 2, 0, 100, false, &[]));
    let m = imported(dir.path(), &[]);
    let d = &m["stages"][0];
    assert_eq!(d["kind"], "llm_decoder");
    assert_eq!(d["graph"], "model.onnx");
    assert_eq!(d["inputs"], json!({"inputs_embeds": null, "input_ids": "input_ids", "attention_mask": "attention_mask", "position_ids": null}));
    let kv = &d["kv_cache"];
    assert_eq!((kv["num_layers"].as_u64(), kv["head_dim"].as_u64(), kv["shared_buffer"].as_bool()), (Some(2), Some(8), Some(true)));
    assert_eq!(kv["past_key"], "past_key_values.{layer}.key");
    assert_eq!(d["context_length"], 64);
    assert_eq!(m["prompt"]["eos_token_ids"], json!([2, 3]));
    assert_eq!(m["prompt"]["template"], "{content}");
    let g = &m["generation"];
    assert_eq!((g["temperature"].as_f64(), g["top_k"].as_u64(), g["top_p"].as_f64().map(|p| (p * 100.0).round())), (Some(0.5), Some(5), Some(90.0)), "search block: {g}");

    // Written into the folder by default, never over an existing file.
    let write = || cli::mmrt(&["import".as_ref(), "onnx".as_ref(), dir.path().as_os_str()]);
    let first = write();
    assert!(first.ok && dir.path().join("bundle.json").is_file(), "{}", first.stderr);
    assert_fails("a second import over bundle.json", &write(), &["bundle.json", "never overwrites"]);
}

#[test]
fn optimum_folder_variants_default_flag_and_file() {
    let dir = optimum_folder("optimum-ok", &optimum_config(), &["onnx/model.onnx", "onnx/model_q4.onnx", "onnx/model_fp16.onnx"]);
    let graph = |m: &Value| m["stages"][0]["graph"].as_str().unwrap().to_string();
    let m = imported(dir.path(), &[]);
    assert_eq!(graph(&m), "onnx/model.onnx", "the unsuffixed export is the default");
    assert_eq!(m["stages"][0]["inputs"]["position_ids"], "position_ids");
    assert_eq!(m["stages"][0]["kv_cache"]["shared_buffer"], false);
    assert_eq!(m["stages"][0]["kv_cache"]["head_dim"], Value::Null, "fixed in the graph");
    assert_eq!(graph(&imported(dir.path(), &["--variant", "q4"])), "onnx/model_q4.onnx");
    assert_eq!(graph(&imported(&dir.path().join("onnx/model_fp16.onnx"), &[])), "onnx/model_fp16.onnx");
}

/// `mmrt run --bundle DIR --prompt hi EXTRA…`.
fn run(dir: &Path, extra: &[&str]) -> cli::Outcome {
    cli::run_bundle(dir, "hi", &[], extra)
}

#[test]
fn bad_folders_are_clear_errors() {
    let mut rows = Vec::new();
    let mut keep = Vec::new(); // temp folders live until the table is checked
    macro_rules! case {
        ($what:expr, $dir:expr, $extra:expr, $needles:expr $(,)?) => {{
            let dir: TempDir = $dir;
            rows.push(($what.to_string(), run(dir.path(), $extra), strings($needles)));
            keep.push(dir);
        }};
    }

    case!("an empty folder", TempDir::new("empty"), &[], &["no bundle.json, genai_config.json", "config.json", "found an empty folder"]);
    case!("config.json and no graph", optimum_folder("nograph", &optimum_config(), &[]), &[], &["no decoder graph", "model.onnx", "config.json, generation_config.json, tokenizer.json"]);

    let mut c = genai_config();
    c["model"]["decoder"]["filename"] = json!("../outside.onnx");
    case!("genai filename with ..", genai_folder("dotdot", &c, b""), &[], &["model.decoder.filename", "\"../outside.onnx\"", "outside the folder"]);
    c["model"]["decoder"]["filename"] = json!("/etc/hostname");
    case!("genai filename absolute", genai_folder("absolute", &c, b""), &[], &["\"/etc/hostname\"", "outside the folder"]);
    let escape = genai_folder("symlink", &genai_config(), b"");
    let outside = TempDir::new("outside");
    std::fs::write(outside.path().join("model.onnx"), decoder_io(2, 2, 0, 100, false, &[])).unwrap();
    std::fs::remove_file(escape.path().join("model.onnx")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("model.onnx"), escape.path().join("model.onnx")).unwrap();
    case!("genai graph symlinked out of the folder", escape, &[], &["\"model.onnx\"", "outside the folder"]);
    let config_escape = TempDir::new("configlink");
    std::fs::write(outside.path().join("genai_config.json"), serde_json::to_vec(&genai_config()).unwrap()).unwrap();
    std::os::unix::fs::symlink(outside.path().join("genai_config.json"), config_escape.path().join("genai_config.json")).unwrap();
    case!("genai_config.json symlinked out of the folder", config_escape, &[], &["genai_config.json", "outside the folder"]);

    let graph = decoder_io(2, 2, 0, 100, false, &[]);
    // Two `graph` fields merge (protobuf): the declared I/O, and a weight whose data is "../secret.bin".
    let leaky = [graph.clone(), common::onnx::onnx_with_external_data("../secret.bin")].concat();
    case!("external data outside the folder", genai_folder("extdata", &genai_config(), &leaky), &[], &["keeps external data in \"../secret.bin\"", "outside"]);
    let mut c = genai_config();
    c["model"]["decoder"]["num_key_value_heads"] = json!(4);
    case!("KV heads disagree with the graph", genai_folder("heads", &c, &graph), &[], &["genai_config.json says 4 key/value heads", "past_key_values.0.key", "has 2"]);
    let mut c = genai_config();
    c["model"]["decoder"]["num_hidden_layers"] = json!(3);
    case!("layers disagree with the graph", genai_folder("layers", &c, &graph), &[], &["says 3 layers", "past inputs for 2"]);
    case!(
        "head size disagrees with the graph",
        genai_folder("headsize", &genai_config(), &decoder_io(2, 2, 16, 100, false, &[])),
        &[],
        &["says head size 8", "has 16"],
    );
    let mut c = optimum_config();
    c["num_key_value_heads"] = json!(1);
    case!("Optimum KV heads disagree", optimum_folder("optheads", &c, &["onnx/model.onnx"]), &[], &["config.json says 1 key/value heads", "has 2"]);
    let mut c = genai_config();
    c["model"]["decoder"]["num_hidden_layers"] = json!(1u64 << 40);
    case!("layer count over the limit", genai_folder("huge", &c, &graph), &[], &["layer count", "limits::MAX_LAYERS"]);
    let mut c = genai_config();
    c["model"]["context_length"] = json!(1u64 << 30);
    case!("context over the limit", genai_folder("context", &c, &graph), &[], &["context length", "limits::MAX_CONTEXT_LENGTH"]);
    case!(
        "a graph input mmrt does not feed",
        genai_folder("logitskeep", &genai_config(), &decoder_io(2, 2, 0, 100, false, &["num_logits_to_keep"])),
        &[],
        &["num_logits_to_keep", "does not feed"],
    );

    let variants = optimum_folder("ambiguous", &optimum_config(), &["onnx/model_q4.onnx", "onnx/model_fp16.onnx"]);
    rows.push(("ambiguous variants".into(), run(variants.path(), &[]), strings(&["2 variants", "q4 (onnx/model_q4.onnx)", "fp16 (onnx/model_fp16.onnx)", "--variant"])));
    rows.push(("a variant not there".into(), run(variants.path(), &["--variant", "int8"]), strings(&["no variant \"int8\"", "q4 (onnx/model_q4.onnx)"])));
    rows.push(("a variant that is a path".into(), run(variants.path(), &["--variant", "../x"]), strings(&["--variant \"../x\""])));
    keep.push(variants);

    let mut c = genai_config();
    c["model"]["type"] = json!("bert");
    case!("unknown genai model type", genai_folder("genaitype", &c, &graph), &[], &["unknown model type \"bert\"", "llama"]);
    let mut c = optimum_config();
    c["model_type"] = json!("roberta");
    case!("unknown Optimum model type", optimum_folder("opttype", &c, &["onnx/model.onnx"]), &[], &["unknown model type \"roberta\"", "model_type"]);
    let mut c = genai_config();
    c["model"]["vision"] = json!({"filename": "vision.onnx"});
    case!("genai vision session", genai_folder("vision", &c, &graph), &[], &["not supported yet", "model.vision (vision.onnx)"]);
    case!(
        "Optimum VLM folder",
        optimum_folder("vlm", &optimum_config(), &["onnx/vision_encoder.onnx", "onnx/embed_tokens.onnx", "onnx/decoder_model_merged.onnx"]),
        &[],
        &["not supported yet", "onnx/vision_encoder.onnx (a vision encoder)", "onnx/embed_tokens.onnx"],
    );
    let manifest_dir = TempDir::new("withmanifest");
    std::fs::copy(common::tiny_dir().join("bundle.json"), manifest_dir.path().join("bundle.json")).unwrap();
    case!("--variant on a bundle.json folder", manifest_dir, &["--variant", "q4"], &["--variant", "has one"]);
    assert_all_fail(rows);
    drop((keep, outside));
}
