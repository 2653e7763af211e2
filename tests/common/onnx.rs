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
