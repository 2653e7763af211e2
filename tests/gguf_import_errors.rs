//! `mmrt import gguf` on bad GGUFs: each a clean failure (non-zero exit, a last `error:` line
//! naming what was found, no panic, no Python traceback). Hand-written GGUF files (header,
//! metadata, tensor infos, zeroed data) stand in for models the importer must refuse.
//! Needs the exporters' venv (`bash exporters/setup.sh`; `.ci/run` makes it); without it the test
//! says so and passes unless `MMRT_REQUIRE_REAL` is set.

mod common;

use common::cli::{command, output, panic_problems, Outcome};
use common::TempDir;

const GGUF_STRING: u32 = 8;
const GGML_F32: u32 = 0;
const GGML_Q2_K: u32 = 10;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A version-3 GGUF with string metadata and 1-D/2-D tensors of the given ggml types
/// (data zeroed, 32-byte aligned), `truncate_to` cutting it short.
fn gguf(meta: &[(&str, &str)], tensors: &[(&str, &[u64], u32, usize)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        string(&mut out, key);
        out.extend(GGUF_STRING.to_le_bytes());
        string(&mut out, value);
    }
    let mut offset = 0u64;
    for (name, dims, kind, bytes) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(kind.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (*bytes as u64).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.resize(out.len() + offset as usize, 0);
    out
}

fn venv_ready() -> bool {
    let ready = common::root().join(".cache/venv-exporters/bin/python").is_file();
    if !ready {
        assert!(!common::bundles::real_required(), "the exporters' venv is missing; run `bash exporters/setup.sh`");
        eprintln!("skipping: the exporters' venv is not there (bash exporters/setup.sh)");
    }
    ready
}

fn import(file: &std::path::Path, out: &std::path::Path) -> Outcome {
    output(command(&["import".as_ref(), "gguf".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str()]))
}

#[track_caller]
fn assert_clean_failure(what: &str, out: &Outcome, needles: &[&str]) {
    let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut problems = Vec::new();
    if out.ok {
        problems.push("exited 0".to_string());
    }
    if !last.starts_with("error:") {
        problems.push(format!("last stderr line is not an error: line: {last:?}"));
    }
    for needle in needles {
        if !last.contains(needle) {
            problems.push(format!("the error lacks {needle:?}"));
        }
    }
    if out.stderr.contains("Traceback (most recent call last)") {
        problems.push("a Python traceback".to_string());
    }
    problems.extend(panic_problems(&out.stderr));
    assert!(problems.is_empty(), "{what}: {}\nstderr:\n{}", problems.join("; "), out.stderr);
}

#[test]
fn bad_ggufs_are_refused_with_what_was_found() {
    if !venv_ready() {
        return;
    }
    let dir = TempDir::new("gguf-import");
    let out = dir.join("bundle");
    let norm: (&str, &[u64], u32, usize) = ("output_norm.weight", &[256], GGML_F32, 1024);

    let mamba = dir.file("mamba.gguf", &gguf(&[("general.architecture", "mamba")], &[norm]));
    assert_clean_failure("unsupported architecture", &import(&mamba, &out), &["'mamba'", "not supported", "llama"]);

    let q2 = ("blk.0.attn_q.weight", &[256u64, 4][..], GGML_Q2_K, 4 * 84);
    let q2k = dir.file("q2k.gguf", &gguf(&[("general.architecture", "llama")], &[norm, q2]));
    assert_clean_failure("unsupported block type", &import(&q2k, &out), &["blk.0.attn_q.weight", "Q2_K", "not supported"]);

    let mut cut = gguf(&[("general.architecture", "llama")], &[norm, q2]);
    cut.truncate(cut.len() - 200);
    let truncated = dir.file("truncated.gguf", &cut);
    assert_clean_failure("truncated data", &import(&truncated, &out), &["truncated"]);

    let header_only = dir.file("header.gguf", &gguf(&[("general.architecture", "llama")], &[norm])[..40]);
    assert_clean_failure("truncated header", &import(&header_only, &out), &["truncated or corrupt"]);

    let not_gguf = dir.file("model.gguf", b"PK\x03\x04 this is a zip, not a GGUF");
    assert_clean_failure("not a GGUF", &import(&not_gguf, &out), &["not a GGUF"]);

    assert_clean_failure("missing file", &import(&dir.join("absent.gguf"), &out), &["absent.gguf", "no such file"]);
    assert!(!out.exists(), "a failed import must not leave a bundle behind");
}
