"""The int8 decoder's token embedding and its tied output projection as one
8-bit block-quantized table.

``quantize_dynamic`` leaves both in float32: the lookup is a Gather, and the
projection multiplies by ``Transpose(embed)``, which is no initializer, so the
runtime holds the 106 MB table twice (the lookup's copy and the folded,
prepacked transpose) and reads 106 MB per token. Here the table is quantized
once, symmetrically in blocks of :data:`BLOCK` along the model dimension
(``scale = max|w| / 127``, codes ``round(w / scale) + 128``), and read by
``GatherBlockQuantized`` (lookup) and ``MatMulNBits`` (projection, 8 bits,
int8 activations): 26.5 MB of codes, the same bytes for both on disk.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

BLOCK = 32
MS_DOMAIN = "com.microsoft"
TABLE = "embed_tokens.weight"


def block_quantize(w: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """``w [rows, k]`` -> (uint8 codes ``[rows, k / block, block]``, float32 scales ``[rows, k / block]``)."""
    rows, k = w.shape
    if k % block:
        raise ValueError(f"{TABLE}: width {k} is not a multiple of the block size {block}")
    blocks = w.reshape(rows, k // block, block).astype(np.float32)
    scales = np.abs(blocks).max(axis=2) / 127.0
    scales[scales == 0] = 1.0
    codes = np.clip(np.rint(blocks / scales[..., None]), -127, 127) + 128
    return codes.astype(np.uint8), scales.astype(np.float32)


def tie_int8_embedding(model: onnx.ModelProto) -> tuple[float, float]:
    """Rewrite ``model`` in place; returns the largest absolute and mean absolute error of the quantized table."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    if TABLE not in inits:
        raise ValueError(f"decoder: no initializer {TABLE}")
    gather = _one(g, lambda n: n.op_type == "Gather" and n.input[0] == TABLE, "the embedding Gather")
    transpose = _one(g, lambda n: n.op_type == "Transpose" and n.input[0] == TABLE, "the output projection's Transpose")
    matmul = _one(g, lambda n: n.op_type == "MatMul" and n.input[1] == transpose.output[0], "the output projection MatMul")
    w = numpy_helper.to_array(inits[TABLE])
    rows, k = w.shape
    codes, scales = block_quantize(w)
    error = np.abs((codes.astype(np.float32) - 128) * scales[..., None] - w.reshape(codes.shape))
    tensors = [
        numpy_helper.from_array(codes.reshape(rows, k), "embed.codes"),
        numpy_helper.from_array(scales, "embed.scales"),
        numpy_helper.from_array(np.full(scales.shape, 128, np.uint8), "embed.zero_points"),
        numpy_helper.from_array(codes, "embed.codes_nbits"),  # same bytes as embed.codes
        numpy_helper.from_array(scales.reshape(-1), "embed.scales_nbits"),  # same bytes as embed.scales
    ]
    lookup = helper.make_node("GatherBlockQuantized", ["embed.codes", gather.input[1], "embed.scales", "embed.zero_points"],
                              list(gather.output), name="embed_lookup", domain=MS_DOMAIN,
                              gather_axis=0, quantize_axis=1, block_size=BLOCK, bits=8)
    project = helper.make_node("MatMulNBits", [matmul.input[0], "embed.codes_nbits", "embed.scales_nbits"], list(matmul.output),
                               name="output_projection", domain=MS_DOMAIN, K=k, N=rows, bits=8, block_size=BLOCK, accuracy_level=4)
    nodes = list(g.node)
    nodes[nodes.index(gather)] = lookup
    nodes[nodes.index(matmul)] = project
    nodes.remove(transpose)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.remove(inits[TABLE])
    g.initializer.extend(tensors)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return float(error.max()), float(error.mean())


def _one(g: onnx.GraphProto, match, what: str) -> onnx.NodeProto:
    found = [n for n in g.node if match(n)]
    if len(found) != 1:
        raise ValueError(f"decoder: expected one node for {what}, found {len(found)}")
    return found[0]
