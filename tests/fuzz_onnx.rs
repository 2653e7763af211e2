//! Fuzz target: the ONNX protobuf reader (`onnx_proto::parse_model`),
//! which the bundle loader runs on every graph (to confine external data)
//! before ONNX Runtime sees it, and its declared-I/O reader
//! (`onnx_proto::parse_graph_io`), which manifest inference runs on the
//! decoder graph of an untrusted model folder. Inputs are small graphs of the tiny bundle and
//! `tests/fixtures/fuzz/onnx/` (external data, Constant nodes, QDQ, int4,
//! If subgraphs), mutated as bytes, plus random protobuf messages nested a
//! few levels deep.
//! See `tests/fuzz_common/mod.rs` for the knobs (`MMRT_FUZZ_CASES`, ...).

mod fuzz_common;

use fuzz_common::{fuzz, FuzzRng, INTERESTING_U32};
use mmrt::onnx_proto::{parse_graph_io, parse_model};
use rand::Rng;

/// About 1 s in a debug build.
const DEFAULT_CASES: usize = 30_000;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A random protobuf message using the field numbers the reader looks at.
fn random_message(rng: &mut FuzzRng, depth: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..8) {
        let number = [1u64, 2, 4, 5, 7, 8, 13, 11, 3, 12][rng.random_range(0..10)];
        match rng.random_range(0..6) {
            0 | 1 if depth < 5 => {
                let body = random_message(rng, depth + 1);
                put_varint(&mut out, number << 3 | 2);
                put_varint(&mut out, body.len() as u64);
                out.extend(body);
            }
            2 => {
                put_varint(&mut out, number << 3);
                let v = if rng.random_bool(0.5) { INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())] as u64 } else { rng.random() };
                put_varint(&mut out, v);
            }
            3 => {
                let body: &[u8] = [&b"location"[..], b"Constant", b"MatMulNBits", b"DequantizeLinear", b"../x.bin", b""][rng.random_range(0..6)];
                put_varint(&mut out, number << 3 | 2);
                put_varint(&mut out, body.len() as u64);
                out.extend_from_slice(body);
            }
            4 => {
                // A length that lies.
                put_varint(&mut out, number << 3 | 2);
                put_varint(&mut out, [u64::MAX, 1 << 40, 1000][rng.random_range(0..3)]);
            }
            _ => {
                put_varint(&mut out, number << 3 | [1, 5, 3, 4, 6, 7][rng.random_range(0..6)]);
                out.extend((0..rng.random_range(0..9)).map(|_| rng.random::<u8>()));
            }
        }
    }
    out
}

#[test]
fn fuzz_onnx() {
    let mut corpus = fuzz_common::corpus(&["tests/fixtures/fuzz/onnx"], &[".onnx", ".bin"]);
    for graph in ["projector.onnx", "audio_projector.onnx"] {
        let path = fuzz_common::root().join("models/tiny").join(graph);
        corpus.push((format!("models/tiny/{graph}"), std::fs::read(path).unwrap()));
    }
    fuzz(
        "onnx",
        DEFAULT_CASES,
        &corpus,
        |rng, corpus| if rng.random_bool(0.75) { fuzz_common::mutated_seed(rng, corpus) } else { random_message(rng, 0) },
        |input| {
            if let Ok(io) = parse_graph_io(input) {
                assert!(io.inputs.len() + io.outputs.len() <= input.len(), "more values than bytes");
                let _ = serde_json::to_string(&io).unwrap();
                for v in io.inputs.iter().chain(&io.outputs) {
                    assert!(!v.to_string().is_empty());
                }
            }
            match parse_model(input) {
                Ok(info) => {
                    assert!(info.tensors <= input.len(), "more tensors than bytes");
                    let _ = serde_json::to_string(&info).unwrap();
                    true
                }
                Err(e) => {
                    assert!(!e.is_empty());
                    false
                }
            }
        },
    );
}
