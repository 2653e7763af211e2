//! Tiny ONNX protobufs written by hand for the bundle-confinement tests: one
//! float32 initializer `w` whose data lives in an external file, held by the
//! main graph or by the `then_branch` subgraph of an `If` node.

/// Append a length-delimited field (`number`, wire type 2) with a one-byte length.
fn field(out: &mut Vec<u8>, number: u8, body: &[u8]) {
    assert!(body.len() < 128, "one-byte lengths only");
    out.extend([number << 3 | 2, body.len() as u8]);
    out.extend_from_slice(body);
}

/// `TensorProto` `w`, dims [4], float32, data in the external file `location`
/// (dims = 1, data_type = 2, name = 8, external_data = 13 with key = 1, value = 2).
fn external_tensor(location: &str) -> Vec<u8> {
    let mut entry = Vec::new();
    field(&mut entry, 1, b"location");
    field(&mut entry, 2, location.as_bytes());
    let mut tensor = vec![1 << 3, 4, 2 << 3, 1]; // dims [4], float32
    field(&mut tensor, 13, &entry);
    field(&mut tensor, 8, b"w"); // name
    tensor
}

/// `ModelProto` (ir_version 10, graph = 7) around `graph`.
fn model(graph: &[u8]) -> Vec<u8> {
    let mut model = vec![1 << 3, 10]; // ir_version 10
    field(&mut model, 7, graph);
    model
}

/// A model whose one initializer (`GraphProto.initializer` = 5) keeps its data in `location`.
pub fn onnx_with_external_data(location: &str) -> Vec<u8> {
    let mut graph = Vec::new();
    field(&mut graph, 5, &external_tensor(location));
    model(&graph)
}

/// A model whose only initializer with external data sits in the
/// `then_branch` subgraph of an `If` node (`GraphProto.node` = 1,
/// `NodeProto.op_type` = 4, `.attribute` = 5, `AttributeProto.name` = 1,
/// `.g` = 6, `.type` = 20).
pub fn onnx_with_external_data_in_a_subgraph(location: &str) -> Vec<u8> {
    let mut subgraph = Vec::new();
    field(&mut subgraph, 5, &external_tensor(location));
    let mut attribute = Vec::new();
    field(&mut attribute, 1, b"then_branch");
    field(&mut attribute, 6, &subgraph);
    attribute.extend([0xA0, 0x01, 5]); // type = GRAPH (field 20: a two-byte varint tag)
    let mut node = Vec::new();
    field(&mut node, 4, b"If");
    field(&mut node, 5, &attribute);
    let mut graph = Vec::new();
    field(&mut graph, 1, &node);
    model(&graph)
}

/// Append a length-delimited field with a varint length (any size).
fn long_field(out: &mut Vec<u8>, number: u8, body: &[u8]) {
    out.push(number << 3 | 2);
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
}

/// `ValueInfoProto` `name` (= 1) with `type` (= 2) → `tensor_type` (= 1) →
/// `elem_type` (= 1, ONNX codes: 1 float32, 7 int64, 10 float16) and `shape`
/// (= 2) → `dim` (= 1) → `dim_value` (= 1) for numbers, `dim_param` (= 2) for names.
fn value_info(name: &str, elem: u8, dims: &[&str]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d.parse::<u8>() {
            Ok(n) if n < 128 => dim.extend([1 << 3, n]),
            _ => long_field(&mut dim, 2, d.as_bytes()),
        }
        long_field(&mut shape, 1, &dim);
    }
    let mut tensor = vec![1 << 3, elem];
    long_field(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    long_field(&mut ty, 1, &tensor);
    let mut v = Vec::new();
    long_field(&mut v, 1, name.as_bytes());
    long_field(&mut v, 2, &ty);
    v
}

/// A model with no nodes that declares `inputs` and `outputs` (`GraphProto.input` = 11,
/// `.output` = 12), each `(name, elem_type, dims)`: enough for manifest inference, which
/// reads declared I/O only (ONNX Runtime could not run it).
pub fn onnx_with_io(inputs: &[(String, u8, Vec<&str>)], outputs: &[(String, u8, Vec<&str>)]) -> Vec<u8> {
    let mut graph = Vec::new();
    for (name, elem, dims) in inputs {
        long_field(&mut graph, 11, &value_info(name, *elem, dims));
    }
    for (name, elem, dims) in outputs {
        long_field(&mut graph, 12, &value_info(name, *elem, dims));
    }
    let mut model = vec![1 << 3, 10]; // ir_version 10
    long_field(&mut model, 7, &graph);
    model
}

/// The declared I/O of a decoder-only LLM graph as transformers' exports name it: `input_ids`,
/// `attention_mask`, (`position_ids`), `past_key_values.{l}.key/value` `[batch, kv_heads, past,
/// head_dim]` (head_dim `kv_cache_dim` when 0, as onnxruntime-genai writes it), `extra` inputs,
/// and `logits [batch, seq, vocab]`, `present.{l}.key/value`.
pub fn decoder_io(layers: usize, kv_heads: u8, head_dim: u8, vocab: u8, position_ids: bool, extra: &[&str]) -> Vec<u8> {
    let head = if head_dim == 0 { "kv_cache_dim".to_string() } else { head_dim.to_string() };
    let heads = kv_heads.to_string();
    let vocab = vocab.to_string();
    let mut inputs = vec![("input_ids".to_string(), 7, vec!["batch", "seq"]), ("attention_mask".to_string(), 7, vec!["batch", "total"])];
    if position_ids {
        inputs.push(("position_ids".into(), 7, vec!["batch", "seq"]));
    }
    let mut outputs = vec![("logits".to_string(), 1, vec!["batch", "seq", vocab.as_str()])];
    for l in 0..layers {
        for kind in ["key", "value"] {
            inputs.push((format!("past_key_values.{l}.{kind}"), 1, vec!["batch", heads.as_str(), "past", head.as_str()]));
            outputs.push((format!("present.{l}.{kind}"), 1, vec!["batch", heads.as_str(), "total", head.as_str()]));
        }
    }
    for name in extra {
        inputs.push((name.to_string(), 7, vec![]));
    }
    onnx_with_io(&inputs, &outputs)
}
