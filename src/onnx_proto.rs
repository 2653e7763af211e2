//! What an ONNX file holds, read from its protobuf without ONNX Runtime: the
//! external data files it refers to (the bundle confines them to its folder),
//! the bytes of weights (the benchmark roofline's numerator: a decode step
//! reads every decoder weight once), and the graph's declared inputs and
//! outputs ([`graph_io`]: names, element types, shapes; what manifest
//! inference in [`crate::import`] checks a folder's configs against).
//!
//! The file is walked with a minimal protobuf reader (no generated code):
//! `ModelProto.graph` → `GraphProto.initializer` (and tensors held by
//! `Constant` nodes) → each `TensorProto`'s dims and data type. A tensor's
//! size is `element count × element size`, so weights stored as external data
//! (`.onnx.data`) count the same as embedded ones, without reading them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// How [`WeightInfo::bytes`] and [`WeightInfo::bytes_per_step`] are computed, for the JSON report.
pub const METHOD: &str = "sum over the decoder graph's initializers and Constant-node tensors of element count x element size, parsed from the ONNX protobuf (external-data tensors counted by their declared shape); per step, a table a step only looks rows up in (a Gather / GatherBlockQuantized data input, GroupQueryAttention's rotary caches) counts one row of it";

/// Weights of one graph.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WeightInfo {
    /// Total bytes of weight tensors.
    pub bytes: u64,
    /// Bytes a one-token step reads: `bytes`, less all but one row of every
    /// table the graph only looks rows up in.
    pub bytes_per_step: u64,
    /// Number of weight tensors.
    pub tensors: usize,
    /// Bytes per ONNX element type (`float32`, `uint8`, ...).
    pub bytes_by_type: BTreeMap<String, u64>,
    /// External data files the graph refers to.
    pub external_files: Vec<String>,
    /// Operator counts of the quantized-compute ops found in the graph.
    pub quantized_ops: BTreeMap<String, usize>,
    /// A one-word description: `int4 (MatMulNBits)`, `int8`, `float16`, ...
    pub quantization: String,
    /// Weight tensors by name: (bytes, rows = first dimension).
    #[serde(skip)]
    sizes: BTreeMap<String, (u64, u64)>,
    /// Names of the tensors used as lookup tables (see [`lookup_inputs`]).
    #[serde(skip)]
    lookups: std::collections::BTreeSet<String>,
    /// Names of the tensors some operator reads whole (a table also used as
    /// a tied output layer is read whole).
    #[serde(skip)]
    read_whole: std::collections::BTreeSet<String>,
}

/// Which inputs of an operator are tables it looks rows up in, not reads whole.
fn lookup_inputs(op_type: &str) -> &'static [usize] {
    match op_type {
        "Gather" | "GatherBlockQuantized" => &[0],
        "GroupQueryAttention" => &[7, 8], // cos_cache, sin_cache: one position's row per step
        _ => &[],
    }
}

/// Operators that mean the weights are quantized.
const QUANTIZED_OPS: [&str; 7] = [
    "MatMulNBits",
    "GatherBlockQuantized",
    "MatMulInteger",
    "QLinearMatMul",
    "DynamicQuantizeMatMul",
    "DequantizeLinear",
    "QGemm",
];

/// Read the weights of the ONNX graph at `path`.
pub fn read(path: &Path) -> Result<WeightInfo> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only map of a bundle file; a concurrent writer could only
    // make the parse fail, which is reported as an error.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    parse_model(&map).map_err(|message| Error::Manifest {
        path: path.to_path_buf(),
        message: format!("cannot read the ONNX graph's weights: {message}"),
    })
}

/// Parse a serialized `ModelProto`.
pub fn parse_model(bytes: &[u8]) -> std::result::Result<WeightInfo, String> {
    let mut info = WeightInfo::default();
    let mut graphs = 0;
    for field in Fields(bytes) {
        let (number, value) = field?;
        if number == 7 {
            graphs += 1;
            parse_graph(value.bytes()?, &mut info, 0)?;
        }
    }
    if graphs == 0 {
        return Err("no graph in the model (is this an ONNX file?)".into());
    }
    info.quantization = quantization_label(&info);
    let skipped: u64 = info.lookups.difference(&info.read_whole).filter_map(|n| info.sizes.get(n)).map(|&(bytes, rows)| bytes - bytes / rows.max(1)).sum();
    info.bytes_per_step = info.bytes - skipped;
    Ok(info)
}

/// One dimension of a declared input or output shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size (`dim_value`).
    Fixed(u64),
    /// A named symbolic size (`dim_param`, e.g. `past_sequence_length`).
    Symbolic(String),
    /// Neither given.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A declared graph input or output (`ValueInfoProto`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValueInfo {
    /// Tensor name.
    pub name: String,
    /// Element type name (`float32`, `float16`, `int64`, ...; `other` for non-tensors).
    pub elem_type: &'static str,
    /// Declared shape; `None` when the graph declares no shape (any rank).
    pub shape: Option<Vec<Dim>>,
}

impl std::fmt::Display for ValueInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shape {
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
                write!(f, "{} {} [{}]", self.name, self.elem_type, dims.join(", "))
            }
            None => write!(f, "{} {} [any]", self.name, self.elem_type),
        }
    }
}

/// The top-level graph's declared inputs and outputs, in graph order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraphIo {
    /// `GraphProto.input`, less those that are initializers (older IR versions list weights as inputs).
    pub inputs: Vec<ValueInfo>,
    /// `GraphProto.output`.
    pub outputs: Vec<ValueInfo>,
}

impl GraphIo {
    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&ValueInfo> {
        self.inputs.iter().find(|v| v.name == name)
    }

    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&ValueInfo> {
        self.outputs.iter().find(|v| v.name == name)
    }
}

/// Read the declared inputs and outputs of the ONNX graph at `path`
/// (memory-mapped; only the top-level graph's `input`/`output` fields are parsed).
pub fn graph_io(path: &Path) -> Result<GraphIo> {
    let file = crate::limits::open_regular(path, "an ONNX graph").map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only map of an input file; a concurrent writer could only
    // make the parse fail, which is reported as an error.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    parse_graph_io(&map).map_err(|message| Error::Import {
        path: path.to_path_buf(),
        message: format!("cannot read the ONNX graph's inputs and outputs: {message}"),
    })
}

/// [`graph_io`] over a serialized `ModelProto`: `ModelProto.graph` = 7 →
/// `GraphProto.input` = 11, `.output` = 12, `.initializer` = 5 (`TensorProto.name` = 8).
pub fn parse_graph_io(bytes: &[u8]) -> std::result::Result<GraphIo, String> {
    let mut io = GraphIo::default();
    let mut initializers = std::collections::BTreeSet::new();
    let mut graphs = 0;
    for field in Fields(bytes) {
        let (number, value) = field?;
        if number != 7 {
            continue;
        }
        graphs += 1;
        for field in Fields(value.bytes()?) {
            match field? {
                (11, v) => io.inputs.push(parse_value_info(v.bytes()?)?),
                (12, v) => io.outputs.push(parse_value_info(v.bytes()?)?),
                (5, v) => {
                    for f in Fields(v.bytes()?) {
                        if let (8, name) = f? {
                            initializers.insert(String::from_utf8_lossy(name.bytes()?).into_owned());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if graphs == 0 {
        return Err("no graph in the model (is this an ONNX file?)".into());
    }
    io.inputs.retain(|v| !initializers.contains(&v.name));
    Ok(io)
}

/// `ValueInfoProto`: name = 1, type = 2 → `TypeProto.tensor_type` = 1 →
/// `elem_type` = 1, `shape` = 2 → `TensorShapeProto.dim` = 1 → `dim_value` = 1, `dim_param` = 2.
fn parse_value_info(bytes: &[u8]) -> std::result::Result<ValueInfo, String> {
    let mut info = ValueInfo { name: String::new(), elem_type: "other", shape: None };
    for field in Fields(bytes) {
        match field? {
            (1, v) => info.name = String::from_utf8_lossy(v.bytes()?).into_owned(),
            (2, v) => {
                for t in Fields(v.bytes()?) {
                    let (1, tensor) = t? else { continue };
                    for f in Fields(tensor.bytes()?) {
                        match f? {
                            (1, code) => info.elem_type = element_type(code.varint()?).0,
                            (2, shape) => {
                                let mut dims = Vec::new();
                                for d in Fields(shape.bytes()?) {
                                    let (1, dim) = d? else { continue };
                                    let mut value = Dim::Unknown;
                                    for f in Fields(dim.bytes()?) {
                                        match f? {
                                            (1, n) => value = Dim::Fixed(n.varint()?),
                                            (2, p) => value = Dim::Symbolic(String::from_utf8_lossy(p.bytes()?).into_owned()),
                                            _ => {}
                                        }
                                    }
                                    dims.push(value);
                                }
                                info.shape = Some(dims);
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if info.name.is_empty() {
        return Err("a graph input or output has no name".into());
    }
    Ok(info)
}

/// Subgraphs nested deeper than this are refused (a hostile file could nest
/// them until the stack overflows; real models nest a few levels).
const MAX_SUBGRAPH_DEPTH: usize = 32;

/// `GraphProto`: node = 1, initializer = 5. `depth` counts enclosing subgraphs.
fn parse_graph(bytes: &[u8], info: &mut WeightInfo, depth: usize) -> std::result::Result<(), String> {
    if depth > MAX_SUBGRAPH_DEPTH {
        return Err(format!("subgraphs nested more than {MAX_SUBGRAPH_DEPTH} deep"));
    }
    for field in Fields(bytes) {
        match field? {
            (1, value) => parse_node(value.bytes()?, info, depth)?,
            (5, value) => add_tensor(value.bytes()?, info)?,
            _ => {}
        }
    }
    Ok(())
}

/// `NodeProto`: op_type = 4, attribute = 5. `AttributeProto`: t = 5 (a
/// Constant's tensor), g = 6 and graphs = 11 (the bodies of If / Loop / Scan,
/// whose initializers may hold external data too, so they are walked).
fn parse_node(bytes: &[u8], info: &mut WeightInfo, depth: usize) -> std::result::Result<(), String> {
    let mut op_type = "";
    let mut tensors = Vec::new();
    let mut inputs = Vec::new();
    for field in Fields(bytes) {
        match field? {
            (1, value) => inputs.push(String::from_utf8_lossy(value.bytes()?).into_owned()),
            (4, value) => op_type = std::str::from_utf8(value.bytes()?).map_err(|e| e.to_string())?,
            (5, value) => {
                for attr in Fields(value.bytes()?) {
                    match attr? {
                        (5, t) => tensors.push(t.bytes()?),
                        (6 | 11, g) => parse_graph(g.bytes()?, info, depth + 1)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let lookups = lookup_inputs(op_type);
    for (i, name) in inputs.into_iter().enumerate() {
        if lookups.contains(&i) {
            info.lookups.insert(name);
        } else {
            info.read_whole.insert(name);
        }
    }
    if QUANTIZED_OPS.contains(&op_type) {
        *info.quantized_ops.entry(op_type.to_string()).or_default() += 1;
    }
    if op_type == "Constant" {
        for t in tensors {
            add_tensor(t, info)?;
        }
    }
    Ok(())
}

/// `TensorProto`: dims = 1, data_type = 2, name = 8, external_data = 13 (`key` = 1, `value` = 2).
fn add_tensor(bytes: &[u8], info: &mut WeightInfo) -> std::result::Result<(), String> {
    let mut elements: u64 = 1;
    let mut rows = None;
    let mut data_type = 0;
    let mut tensor_name = String::new();
    for field in Fields(bytes) {
        match field? {
            (1, Value::Varint(d)) => {
                elements = elements.saturating_mul(d);
                rows.get_or_insert(d);
            }
            (1, Value::Bytes(packed)) => {
                let mut rest = packed;
                while !rest.is_empty() {
                    let d = varint(&mut rest)?;
                    elements = elements.saturating_mul(d);
                    rows.get_or_insert(d);
                }
            }
            (2, value) => data_type = value.varint()?,
            (8, value) => tensor_name = String::from_utf8_lossy(value.bytes()?).into_owned(),
            (13, value) => {
                let mut entry = (None, None);
                for kv in Fields(value.bytes()?) {
                    match kv? {
                        (1, k) => entry.0 = Some(k.bytes()?),
                        (2, v) => entry.1 = Some(v.bytes()?),
                        _ => {}
                    }
                }
                if let (Some(b"location"), Some(v)) = entry {
                    let file = String::from_utf8_lossy(v).into_owned();
                    if !info.external_files.contains(&file) {
                        info.external_files.push(file);
                    }
                }
            }
            _ => {}
        }
    }
    let (name, bits) = element_type(data_type);
    let size = (elements.saturating_mul(bits)).div_ceil(8);
    info.bytes += size;
    info.tensors += 1;
    if !tensor_name.is_empty() {
        info.sizes.insert(tensor_name, (size, rows.unwrap_or(1)));
    }
    *info.bytes_by_type.entry(name.to_string()).or_default() += size;
    Ok(())
}

/// ONNX `TensorProto.DataType` → (name, bits per element). Strings count 0.
fn element_type(code: u64) -> (&'static str, u64) {
    match code {
        1 => ("float32", 32),
        2 => ("uint8", 8),
        3 => ("int8", 8),
        4 => ("uint16", 16),
        5 => ("int16", 16),
        6 => ("int32", 32),
        7 => ("int64", 64),
        9 => ("bool", 8),
        10 => ("float16", 16),
        11 => ("float64", 64),
        12 => ("uint32", 32),
        13 => ("uint64", 64),
        14 => ("complex64", 64),
        15 => ("complex128", 128),
        16 => ("bfloat16", 16),
        17..=20 => ("float8", 8),
        21 => ("uint4", 4),
        22 => ("int4", 4),
        23 => ("float4", 4),
        _ => ("other", 0),
    }
}

/// Quantized ops name the scheme; otherwise the element type holding most bytes.
fn quantization_label(info: &WeightInfo) -> String {
    let has = |op: &str| info.quantized_ops.contains_key(op);
    if has("MatMulNBits") {
        return "int4 (MatMulNBits)".into();
    }
    if has("MatMulInteger") || has("QLinearMatMul") || has("DynamicQuantizeMatMul") || has("QGemm") {
        return "int8".into();
    }
    let dominant = info.bytes_by_type.iter().max_by_key(|(_, b)| **b).map(|(t, _)| t.clone());
    match (dominant, has("DequantizeLinear")) {
        (Some(t), true) => format!("{t} (QDQ)"),
        (Some(t), false) => t,
        (None, _) => "none".into(),
    }
}

/// One protobuf field value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Value<'a> {
    fn bytes(self) -> std::result::Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err("expected a length-delimited field".into()),
        }
    }

    fn varint(self) -> std::result::Result<u64, String> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err("expected a varint field".into()),
        }
    }
}

/// Iterator over `(field number, value)` of a protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = std::result::Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = (|| {
            let key = varint(&mut self.0)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut self.0)?),
                1 => Value::Fixed.skip(&mut self.0, 8)?,
                2 => {
                    let len = usize::try_from(varint(&mut self.0)?).map_err(|e| e.to_string())?;
                    if len > self.0.len() {
                        return Err(format!("field {} claims {len} bytes, {} left", key >> 3, self.0.len()));
                    }
                    let (value, rest) = self.0.split_at(len);
                    self.0 = rest;
                    Value::Bytes(value)
                }
                5 => Value::Fixed.skip(&mut self.0, 4)?,
                wire => return Err(format!("unsupported protobuf wire type {wire}")),
            };
            Ok((key >> 3, value))
        })();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

impl Value<'_> {
    fn skip(self, buf: &mut &[u8], n: usize) -> std::result::Result<Self, String> {
        if buf.len() < n {
            return Err("truncated fixed-width field".into());
        }
        *buf = &buf[n..];
        Ok(self)
    }
}

fn varint(buf: &mut &[u8]) -> std::result::Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
        put_varint(out, number << 3 | 2);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    fn tensor(dims: &[u64], data_type: u64, external: Option<&str>) -> Vec<u8> {
        named_tensor("", dims, data_type, external)
    }

    fn named_tensor(name: &str, dims: &[u64], data_type: u64, external: Option<&str>) -> Vec<u8> {
        let mut t = Vec::new();
        if !name.is_empty() {
            field(&mut t, 8, name.as_bytes());
        }
        for &d in dims {
            put_varint(&mut t, 1 << 3);
            put_varint(&mut t, d);
        }
        put_varint(&mut t, 2 << 3);
        put_varint(&mut t, data_type);
        if let Some(file) = external {
            let mut kv = Vec::new();
            field(&mut kv, 1, b"location");
            field(&mut kv, 2, file.as_bytes());
            field(&mut t, 13, &kv);
        }
        t
    }

    #[test]
    fn counts_initializers_constants_and_external_data() {
        let mut graph = Vec::new();
        field(&mut graph, 5, &tensor(&[64, 32], 1, None)); // 8192 B float32
        field(&mut graph, 5, &tensor(&[1000, 16], 2, Some("decoder.onnx.data"))); // 16000 B uint8
        let mut node = Vec::new();
        field(&mut node, 4, b"MatMulNBits");
        field(&mut graph, 1, &node);
        let mut constant = Vec::new();
        field(&mut constant, 4, b"Constant");
        let mut attr = Vec::new();
        field(&mut attr, 1, b"value");
        field(&mut attr, 5, &tensor(&[3], 7, None)); // 24 B int64
        field(&mut constant, 5, &attr);
        field(&mut graph, 1, &constant);
        let mut model = Vec::new();
        put_varint(&mut model, 1 << 3); // ir_version
        put_varint(&mut model, 10);
        field(&mut model, 7, &graph);

        let info = parse_model(&model).unwrap();
        assert_eq!(info.bytes, 8192 + 16000 + 24);
        assert_eq!(info.tensors, 3);
        assert_eq!(info.bytes_by_type["uint8"], 16000);
        assert_eq!(info.external_files, vec!["decoder.onnx.data".to_string()]);
        assert_eq!(info.quantization, "int4 (MatMulNBits)");
        assert_eq!(info.bytes_per_step, info.bytes);
    }

    /// A table only gathered from counts one row per step; one that is also read whole (a tied
    /// output layer) counts whole.
    #[test]
    fn tables_looked_up_count_one_row_per_step() {
        let mut graph = Vec::new();
        field(&mut graph, 5, &named_tensor("table", &[1000, 16], 1, None)); // 64000 B, rows of 64 B
        field(&mut graph, 5, &named_tensor("w", &[64, 32], 1, None)); // 8192 B
        let mut gather = Vec::new();
        field(&mut gather, 1, b"table");
        field(&mut gather, 1, b"ids");
        field(&mut gather, 4, b"Gather");
        field(&mut graph, 1, &gather);
        let mut model = Vec::new();
        field(&mut model, 7, &graph);
        let info = parse_model(&model).unwrap();
        assert_eq!(info.bytes, 64000 + 8192);
        assert_eq!(info.bytes_per_step, 64 + 8192);

        let mut head = Vec::new();
        field(&mut head, 1, b"hidden");
        field(&mut head, 1, b"table");
        field(&mut head, 4, b"MatMul");
        field(&mut graph, 1, &head);
        let mut model = Vec::new();
        field(&mut model, 7, &graph);
        assert_eq!(parse_model(&model).unwrap().bytes_per_step, 64000 + 8192);
    }

    #[test]
    fn int4_counts_half_bytes() {
        let mut graph = Vec::new();
        field(&mut graph, 5, &tensor(&[3, 3], 22, None)); // 9 int4 -> 5 bytes
        let mut model = Vec::new();
        field(&mut model, 7, &graph);
        assert_eq!(parse_model(&model).unwrap().bytes, 5);
    }

    /// `ValueInfoProto` `name`, tensor of `elem` with `dims` (numbers fixed, text symbolic).
    fn value_info(name: &str, elem: u64, dims: &[&str]) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            match d.parse::<u64>() {
                Ok(n) => {
                    put_varint(&mut dim, 1 << 3);
                    put_varint(&mut dim, n);
                }
                Err(_) => field(&mut dim, 2, d.as_bytes()),
            }
            field(&mut shape, 1, &dim);
        }
        let mut tensor = Vec::new();
        put_varint(&mut tensor, 1 << 3);
        put_varint(&mut tensor, elem);
        field(&mut tensor, 2, &shape);
        let mut ty = Vec::new();
        field(&mut ty, 1, &tensor);
        let mut v = Vec::new();
        field(&mut v, 1, name.as_bytes());
        field(&mut v, 2, &ty);
        v
    }

    #[test]
    fn reads_declared_inputs_and_outputs_without_initializers() {
        let mut graph = Vec::new();
        field(&mut graph, 11, &value_info("input_ids", 7, &["batch", "seq"]));
        field(&mut graph, 11, &value_info("past.0.key", 10, &["batch", "3", "past", "64"]));
        field(&mut graph, 11, &value_info("w", 1, &["4"]));
        let mut w = tensor(&[4], 1, None);
        field(&mut w, 8, b"w");
        field(&mut graph, 5, &w);
        field(&mut graph, 12, &value_info("logits", 1, &["batch", "seq", "49152"]));
        let mut model = Vec::new();
        field(&mut model, 7, &graph);
        let io = parse_graph_io(&model).unwrap();
        assert_eq!(io.inputs.len(), 2, "the initializer listed as an input is dropped");
        let past = io.input("past.0.key").unwrap();
        assert_eq!(past.elem_type, "float16");
        assert_eq!(past.shape.as_deref().unwrap()[1], Dim::Fixed(3));
        assert_eq!(past.to_string(), "past.0.key float16 [batch, 3, past, 64]");
        assert_eq!(io.output("logits").unwrap().shape.as_deref().unwrap()[2], Dim::Fixed(49152));
        assert!(parse_graph_io(b"garbage").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_model(b"not an onnx file at all").is_err());
        assert!(parse_model(&[0x3a, 0xff, 0xff, 0x03]).is_err());
        assert!(parse_model(&[]).is_err());
    }
}
