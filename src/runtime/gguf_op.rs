//! The `mmrt.GgufMatMul` operator: a linear layer whose weight is GGUF
//! blocks, read in place by [`crate::quant`]'s kernels inside ONNX
//! Runtime's graph.
//!
//! ```text
//! Y [.., N] = GgufMatMul(X float [.., K], W uint8 [N, row_bytes])
//!     attributes: block_type (string, e.g. "q4_1"), K, N (ints)
//! ```
//!
//! `W` is an initializer holding the GGUF tensor's bytes unchanged (rows
//! along N, blocks along K), so ONNX Runtime maps it from the weight file
//! and nothing is prepacked: the weights cost their file size once. One
//! node replaces MatMulNBits plus the four-node offset term Q4_1 needs
//! there (see `exporters/gguf/quant.py`), and the arithmetic is float32
//! over the exact weight values. Rows are split over ONNX Runtime's
//! intra-op threads.
//!
//! Every session registers the operator (it runs on the CPU provider;
//! an accelerator stage places these nodes on the CPU, which
//! `mmrt inspect` shows).

use ort::operator::{ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput, ShapeInferenceContext};
use ort::value::{TensorElementType, ValueType};

use crate::quant::{self, BlockMatrix, BlockType, Scratch};

/// The custom operators' domain in mmrt's graphs.
pub const DOMAIN: &str = "mmrt";
/// Widest K or N accepted from a graph's attributes.
const MAX_DIM: i64 = 1 << 20;

/// The operator domain every session registers.
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(GgufMatMul)
}

struct GgufMatMul;

impl Operator for GgufMatMul {
    type Kernel<'attr> = GgufKernel;

    fn name(&self) -> &str {
        "GgufMatMul"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [OperatorInput::required(TensorElementType::Float32), OperatorInput::required(TensorElementType::Uint8)]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, ctx: &KernelContext<'attr>) -> ort::Result<GgufKernel> {
        let node = ctx.node_name().unwrap_or_default();
        let fail = |what: String| ort::Error::new(format!("GgufMatMul node {node:?}: {what}"));
        let kind: String = ctx.get("block_type").ok_or_else(|| fail("no block_type attribute".into()))?;
        let kind: BlockType = kind.parse().map_err(fail)?;
        let dim = |name: &str| -> ort::Result<usize> {
            let v: i64 = ctx.get(name).ok_or_else(|| fail(format!("no {name} attribute")))?;
            if !(1..=MAX_DIM).contains(&v) {
                return Err(fail(format!("{name} = {v} is outside 1..={MAX_DIM}")));
            }
            Ok(v as usize)
        };
        let (k, n) = (dim("K")?, dim("N")?);
        kind.row_bytes(k).ok_or_else(|| fail(format!("K = {k} is not a multiple of the {kind} block ({})", kind.block_len())))?;
        Ok(GgufKernel { node, kind, k, n, scratch: Scratch::default() })
    }

    fn infer_shape(&self, ctx: &mut ShapeInferenceContext) -> ort::Result<()> {
        let n: i64 = ctx.attr("N")?;
        if let Some(ValueType::Tensor { ty, shape, dimension_symbols }) = ctx.inputs().into_iter().next() {
            let mut shape = shape;
            let Some(last) = shape.last_mut() else { return Ok(()) };
            *last = n;
            // the last dimension is N now, not the input's symbol
            let rank = dimension_symbols.len().max(1);
            let symbols = ort::value::SymbolicDimensions::new(dimension_symbols.iter().take(rank - 1).cloned().chain([String::new()]));
            ctx.set_output(0, &ValueType::Tensor { ty, shape, dimension_symbols: symbols })?;
        }
        Ok(())
    }
}

struct GgufKernel {
    node: String,
    kind: BlockType,
    k: usize,
    n: usize,
    scratch: Scratch,
}

impl Kernel for GgufKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let fail = |what: String| ort::Error::new(format!("GgufMatMul node {:?}: {what}", self.node));
        let x = ctx.input(0)?.ok_or_else(|| fail("no input X".into()))?;
        let w = ctx.input(1)?.ok_or_else(|| fail("no input W".into()))?;
        let (x_shape, x) = x.try_extract_tensor::<f32>()?;
        let (_, w) = w.try_extract_tensor::<u8>()?;
        if x_shape.last() != Some(&(self.k as i64)) {
            return Err(fail(format!("X's last dimension is not K = {} (shape {x_shape:?})", self.k)));
        }
        let w = BlockMatrix::new(self.kind, w, self.n, self.k).map_err(fail)?;
        let mut y_shape = x_shape.to_vec();
        *y_shape.last_mut().expect("X has a last dimension") = self.n as i64;
        let mut y = ctx.output(0, y_shape)?.ok_or_else(|| fail("no output Y".into()))?;
        let (_, y) = y.try_extract_tensor_mut::<f32>()?;
        quant::matmul(&w, x, y, &mut self.scratch, |tasks, task| ctx.par_for(tasks, 0, task))
    }
}
