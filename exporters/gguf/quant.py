"""GGUF-faithful quantized decoders: every block-quantized GGUF weight carried exactly into the graph.

By default every layer weight of a type in :data:`KERNEL_TYPES` (Q4_1, Q5_0, Q4_K, Q6_K, Q8_0: every
type the supported GGUFs use) becomes one ``mmrt.GgufMatMul`` node over the GGUF's own blocks, bytes
unchanged: mmrt's kernels (``src/quant/``) read them in place, float32 arithmetic on the exact
weights, no prepacked copy. That graph needs mmrt (it registers the operator); for other runtimes,
and with ``--kernels none``, the weights go into ``com.microsoft.MatMulNBits`` instead, with the
GGUF's own codes, block size, scales and *integer* zero points (the fast kernels), see
:mod:`exporters.gguf.blocks` for the exact mapping. The per-block offsets of Q4_K (``- dmin·m``) and
Q4_1 (``+ m``), which no integer zero point can express, are then applied as a separate small term
beside the MatMulNBits::

    y = MatMulNBits(x; q, scale, zp=0) - blocksum(x) @ offsets^T

where ``blocksum(x)`` [.., K/32] sums the activations of each 32-element block
and ``offsets`` [N, K/32] holds the offsets. The token embedding is a
``GatherBlockQuantized`` lookup for 8-bit tables (and a gather-then-dequantize
for 4-bit ones), or the runtime's token table (Q8_0, tied); the output layer is the embedding
table where tied, else the GGUF's ``output.weight`` (MatMulNBits). Norm weights and biases are
float32 in the GGUF and are taken from the transformers reference (same values).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import helper

from . import graph as gg
from .blocks import BlockQuant, check_exact, split4

# transformers parameter name (per layer) -> GGUF tensor name
HF_TO_GGUF = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
EMBED_HF, EMBED_GGUF = "model.embed_tokens.weight", "token_embd.weight"
HEAD_HF, HEAD_GGUF = "lm_head.weight", "output.weight"


def gguf_name(hf_name: str) -> str:
    if hf_name == EMBED_HF:
        return EMBED_GGUF
    if hf_name == HEAD_HF:
        return HEAD_GGUF
    parts = hf_name.split(".")  # model.layers.{i}.<rest>
    return f"blk.{parts[2]}." + HF_TO_GGUF[".".join(parts[3:])]


def llama_rows(n_rows: int, heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's q/k permutation: its converter interleaves the two rotary
    halves of each head (row (h, i, j) of the GGUF is row (h, j, i) of transformers, i < D/2, j < 2);
    transformers' GGUF loader undoes it, so the codes must move the same way. ``hf[r] = gguf[order[r]]``."""
    return np.arange(n_rows).reshape(heads, n_rows // heads // 2, 2).swapaxes(1, 2).reshape(-1)


def load_blocks(gguf_path, reference: dict[str, np.ndarray], spec: gg.DecoderSpec) -> tuple[dict[str, BlockQuant], dict[str, str]]:
    """Decode every quantized weight, checking it bit-exact against gguf's dequantize and against
    the transformers reference weight. Returns (blocks by HF name, GGUF type by HF name)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    by_name = {t.name: t for t in reader.tensors}
    names = [EMBED_HF] + [f"model.layers.{i}.{k}" for i in range(spec.num_layers) for k in HF_TO_GGUF]
    if HEAD_GGUF in by_name:
        names.append(HEAD_HF)
    blocks, types = {}, {}
    for hf in names:
        t = by_name.get(gguf_name(hf))
        if t is None:
            raise ValueError(f"{gguf_path}: no tensor {gguf_name(hf)} (for {hf})")
        bq = check_exact(t)
        if spec.model_type == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            bq = bq.rows(llama_rows(bq.codes.shape[0], spec.heads if "q_proj" in hf else spec.kv_heads))
        ref = reference.get(hf)
        if ref is None and hf == HEAD_HF:
            raise ValueError(f"{gguf_path}: has {HEAD_GGUF} but transformers tied the output layer to the embedding")
        if bq.codes.shape != ref.shape or not np.array_equal(bq.dequantize(), ref):
            raise AssertionError(f"{hf}: GGUF {t.name} dequantized differs from the transformers weight")
        blocks[hf], types[hf] = bq, t.tensor_type.name
    return blocks, types


def stack_rows(parts: list[BlockQuant]) -> BlockQuant:
    """Weights with the same K, block and code width as one weight with their rows stacked
    (exact: each output row keeps its own codes, scales, zero points and offsets)."""
    offsets = None
    if any(p.offsets is not None for p in parts):
        offsets = np.concatenate([p.offsets if p.offsets is not None else np.zeros_like(p.scales) for p in parts])
    same_type = len({p.gguf_type for p in parts}) == 1 and all(p.raw is not None for p in parts)
    raw = np.concatenate([p.raw for p in parts]) if same_type else None
    return BlockQuant(np.concatenate([p.codes for p in parts]), np.concatenate([p.scales for p in parts]),
                      np.concatenate([p.zero_points for p in parts]), offsets, parts[0].block, parts[0].bits,
                      raw, parts[0].gguf_type if same_type else None)


# GGUF block types mmrt's own operator reads in place (src/quant/): ``mmrt.GgufMatMul``, one node
# over the GGUF's bytes, float32 arithmetic on the exact weights (no prepacked copy, no offset term).
KERNEL_TYPES = ("Q4_1", "Q5_0", "Q4_K", "Q6_K", "Q8_0")


def nbits_linear(blocks: dict[str, BlockQuant], accuracy_level: int, head_accuracy_level: int | None = None,
                 fp32_kinds: tuple[str, ...] = (), fp32_8bit: bool = True, kernels: tuple[str, ...] = (),
                 emulate_kernels: bool = False):
    """MatMulNBits with integer zero points, plus the offset term where the block has offsets;
    weights whose GGUF type is in ``kernels`` (see :data:`KERNEL_TYPES`) become ``mmrt.GgufMatMul``
    over their raw blocks instead (a graph ONNX Runtime in Python cannot run: mmrt registers the op);
    ``emulate_kernels`` writes those as what the operator computes, a float32 MatMul over the exact
    dequantized weights (up to summation order), so Python can measure the shipped arithmetic.
    ``accuracy_level`` for the layers, ``head_accuracy_level`` (default: the same) for the output layer;
    weights whose name ends in one of ``fp32_kinds`` (e.g. ``mlp.down_proj.weight``) use accuracy_level 0
    (8-bit-code ones only when ``fp32_8bit``; otherwise they stay at ``accuracy_level``).

    The returned ``linear`` also has ``linear.many(b, x, keys, bias)``: projections of one input
    (q/k/v, gate/up) as ONE MatMulNBits over their stacked rows where they all have 4-bit codes
    of one layout and level, split afterwards, and the activations' block sums computed once per input. At batch 1 a
    decode step is dominated by per-node overhead for small models, so fewer, wider nodes are
    faster; the values are the same (rows are independent)."""
    head_level = accuracy_level if head_accuracy_level is None else head_accuracy_level
    block_sums: dict[tuple[str, int, int], str] = {}

    def sums_of(b: gg.Builder, x: str, nb: int, block: int) -> str:
        if (x, nb, block) not in block_sums:
            block_sums[(x, nb, block)] = b.op(
                "ReduceSum", [b.op("Reshape", [x, b.ints([0, 0, nb, block])], "xb"), b.ints([-1])], "bsum", keepdims=0)
        return block_sums[(x, nb, block)]

    def emit(b: gg.Builder, x: str, key: str, bq: BlockQuant, level: int) -> str:
        n, k = bq.codes.shape
        if bq.gguf_type in kernels and bq.raw is not None and emulate_kernels:
            return b.op("MatMul", [x, b.const(key + ".dequantized_t", np.ascontiguousarray(bq.dequantize().T))], "ggmm")
        if bq.gguf_type in kernels and bq.raw is not None:
            return b.op("GgufMatMul", [x, b.const(key + ".blocks", bq.raw)], "ggmm", domain=gg.MMRT_DOMAIN,
                        block_type=bq.gguf_type.lower(), K=k, N=n)
        nb = k // bq.block
        a = x
        if level == 0 and bq.bits == 8:
            # float32 compute: carry the 8-bit codes as two 4-bit halves over [x, x] (exact, fast kernel)
            bq = split4(bq)
            a = b.op("Concat", [x, x], "xx", axis=-1)
        bq = default_zero_point(bq)
        inputs = [
            a,
            b.const(key + ".qweight", bq.packed_codes()),
            b.const(key + ".scales", bq.scales.reshape(-1).astype(np.float32)),
        ]
        if not np.all(bq.zero_points == 1 << (bq.bits - 1)):
            inputs.append(b.const(key + ".zero_points", bq.packed_zero_points()))
        y = b.op("MatMulNBits", inputs, "mmnb", domain=gg.MS_DOMAIN, K=bq.codes.shape[1], N=n, bits=bq.bits,
                 block_size=bq.block, accuracy_level=level)
        if bq.offsets is None:
            return y
        bq_off = bq.offsets[:, :nb]
        off = b.op("MatMul", [sums_of(b, x, nb, bq.block), b.const(key + ".offsets_t", np.ascontiguousarray(bq_off.T))], "off")
        return b.op("Sub", [y, off], "q4k")

    def level_of(key: str) -> int:
        fp32 = bool(fp32_kinds) and key.endswith(fp32_kinds) and (fp32_8bit or blocks[key].bits == 4)
        return 0 if fp32 else accuracy_level

    def linear(b: gg.Builder, x: str, key: str) -> str:
        return emit(b, x, key, blocks[key], level_of(key))

    def stacked(b: gg.Builder, x: str, keys: list[str], level: int, bias: list[np.ndarray] | None) -> list[str]:
        """One node over the stacked rows of ``keys``, split back into one output per key."""
        parts = [blocks[k] for k in keys]
        name = keys[0] if len(keys) == 1 else keys[0].rsplit(".", 2)[0] + "." + "+".join(k.rsplit(".", 2)[1] for k in keys)
        y = emit(b, x, name, parts[0] if len(keys) == 1 else stack_rows(parts), level)
        if bias is not None:
            y = b.op("Add", [y, b.const(name + ".bias", np.concatenate(bias).astype(np.float32))], "bias")
        if len(keys) == 1:
            return [y]
        sizes = [p.codes.shape[0] for p in parts]
        return b.op("Split", [y, b.ints(sizes)], "part", n_out=len(keys), axis=-1)

    def many(b: gg.Builder, x: str, keys: list[str], bias: list[np.ndarray] | None = None) -> list[str]:
        parts = [blocks[k] for k in keys]
        if all(p.gguf_type in kernels and p.raw is not None for p in parts):
            # kernel weights: one node per run of keys sharing a GGUF type (Gemma's Q5_0 q/k with a Q8_0 v)
            outs, start = [], 0
            while start < len(keys):
                end = start + 1
                while end < len(keys) and parts[end].gguf_type == parts[start].gguf_type:
                    end += 1
                outs += stacked(b, x, keys[start:end], 0, None if bias is None else bias[start:end])
                start = end
            return outs
        levels = {level_of(k) for k in keys}
        layout = {(p.bits, p.block, p.codes.shape[1]) for p in parts}
        # 4-bit codes only: stacking 8-bit ones measured slower (Qwen2.5 Q5_0: 43.7 -> 38.4 tok/s decode)
        if len(levels) != 1 or len(layout) != 1 or parts[0].bits != 4:
            outs = [linear(b, x, k) for k in keys]
            if bias is not None:
                outs = [b.op("Add", [y, b.const(k + ".bias", v)], "bias") for y, k, v in zip(outs, keys, bias)]
            return outs
        return stacked(b, x, keys, levels.pop(), bias)

    def head(b: gg.Builder, x: str) -> str:
        table = dataclasses.replace(blocks.get(HEAD_HF, blocks[EMBED_HF]), raw=None)  # MatMulNBits, never the kernel
        return emit(b, x, "lm_head", table, head_level)

    linear.many = many
    return linear, head


def default_zero_point(bq: BlockQuant) -> BlockQuant:
    """8-bit codes with one zero point c for the whole tensor (Q5_0: 16, Q6_K: 32, Q8_0: 128) shifted
    by 128 - c, so the zero point is MatMulNBits' default (128) and its input can be left out: the
    same values (scale·(code − zero point) is unchanged) with 1 byte per block less to read a step."""
    if bq.bits != 8:
        return bq
    c = int(bq.zero_points.flat[0])
    if not np.all(bq.zero_points == c) or c == 128:
        return bq
    shift = 128 - c
    if int(bq.codes.max()) + shift > 255 or int(bq.codes.min()) + shift < 0:
        return bq
    return BlockQuant(codes=(bq.codes.astype(np.int16) + shift).astype(np.uint8), scales=bq.scales,
                      zero_points=np.full_like(bq.zero_points, 128), offsets=bq.offsets, block=bq.block, bits=8)


def build_q4_embed(bq: BlockQuant) -> onnx.ModelProto:
    """``input_ids`` -> unscaled rows of an 8-bit-code table via GatherBlockQuantized (exact)."""
    if bq.bits != 8:
        raise ValueError("the quantized embedding lookup handles 8-bit tables (Q8_0 / Q5_0 / Q6_K); "
                         "this GGUF's token_embd is 4-bit")
    b = gg.Builder()
    v, k = bq.codes.shape
    out = b.op(
        "GatherBlockQuantized",
        [b.const("embed.qweight", bq.codes), "input_ids", b.const("embed.scales", bq.scales.astype(np.float32)),
         b.const("embed.zero_points", bq.zero_points)],
        "rows", domain=gg.MS_DOMAIN, gather_axis=0, quantize_axis=1, block_size=bq.block, bits=8,
    )
    b.nodes.append(helper.make_node("Identity", [out], ["inputs_embeds"]))
    return gg._embed_model(b, k)


def build_q4_decoder(spec: gg.DecoderSpec, params, blocks, accuracy_level: int, all_logits: bool = False,
                     head_accuracy_level: int | None = None, fp32_kinds: tuple[str, ...] = (),
                     fp32_8bit: bool = True, max_positions: int = 2048, table_head: bool = False,
                     kernels: tuple[str, ...] = (), emulate_kernels: bool = False) -> onnx.ModelProto:
    """``table_head``: no output layer in the graph (it returns ``hidden_states``); the runtime's token
    table computes the logits (exporters/gguf/table.py). ``kernels``: GGUF types read in place by
    ``mmrt.GgufMatMul`` (the output layer never is)."""
    linear, head = nbits_linear(blocks, accuracy_level, head_accuracy_level, fp32_kinds, fp32_8bit, kernels,
                                emulate_kernels)
    return gg.build_decoder(spec, params, linear, None if table_head else head, all_logits=all_logits,
                            max_positions=max_positions)


def token_table(spec: gg.DecoderSpec, blocks) -> BlockQuant | None:
    """The embedding when it can be the runtime's token table: Q8_0 and also the (tied) output layer."""
    from . import table

    if HEAD_HF in blocks or not spec.tied_embeddings or table.q8_0_parts(blocks[EMBED_HF]) is None:
        return None
    return blocks[EMBED_HF]
