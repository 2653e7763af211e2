"""Decoder-only LLMs (llama, qwen2, gemma3) written directly as ONNX graphs on ONNX Runtime's fused operators.

Why by hand rather than ``torch.onnx.export``: the same graph is built twice,
once with float32 ``MatMul`` weights (the parity reference) and once with the
GGUF blocks carried into ``MatMulNBits`` (+ the offset term of Q4_K / Q4_1),
and the sliding-window layers need their own window. Every number comes from
the transformers config of the loaded model (:class:`DecoderSpec`).

Decoder graph (batch B, new tokens S, past P, total T = P + S):

* ``inputs_embeds`` float32 [B, S, d] (already multiplied by the embedding
  scale where the architecture has one: the runtime applies the manifest's
  ``embedding.scale``), ``attention_mask`` int64 [B, T] (all ones: positions
  are P .. T-1, which GroupQueryAttention derives from it),
  ``past_key_values.{i}.key|value`` float32 [B, kv_heads, P, head_dim]
* -> ``logits`` float32 [B, 1, vocab] (last position only; ``all_logits=True``
  builds an evaluation twin with [B, S, vocab]), ``present.{i}.key|value``
  [B, kv_heads, T, head_dim].

The architectures differ only in the knobs of :class:`DecoderSpec`:

| knob                   | llama / qwen2                    | gemma3                                   |
| ---------------------- | -------------------------------- | ---------------------------------------- |
| RMSNorm weight         | ``w``                            | ``1 + w``                                |
| norms around attention | input                            | input, output (post_attention_layernorm) |
| norms around the MLP   | input (post_attention_layernorm) | input (pre_ff), output (post_ff)         |
| q/k per-head norms     | no                               | yes                                      |
| MLP activation         | SiLU                             | GELU (tanh)                              |
| q/k/v biases           | qwen2                            | no                                       |
| attention scale        | head_dim^-0.5                    | query_pre_attn_scalar^-0.5               |
| sliding layers         | no                               | every layer_types "sliding_attention"    |
| embedding scale        | 1                                | sqrt(hidden)                             |

Key j is visible to a query at position p when j <= p and, on sliding layers,
p - j < sliding_window (transformers' rule). Keys are cached at their absolute
positions, so the full cache is kept for every layer (sliding layers just
skip the old keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
MS_DOMAIN = "com.microsoft"
MMRT_DOMAIN = "mmrt"  # mmrt's own operators (src/runtime/gguf_op.rs)
ARCHITECTURES = ("llama", "qwen2", "gemma3_text")


@dataclass
class DecoderSpec:
    """The numbers and architectural knobs of a decoder, read from its transformers config."""

    model_type: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    eps: float
    scaling: float
    layer_types: list[str]
    rope_theta: dict[str, float]  # layer type -> rope base
    sliding_window: int | None = None
    tied_embeddings: bool = True
    max_context: int | None = None  # the model's trained context (max_position_embeddings)

    @classmethod
    def from_config(cls, c) -> "DecoderSpec":
        kind = c.model_type
        if kind not in ARCHITECTURES:
            raise ValueError(f"architecture {kind!r} is not supported (supported: {', '.join(ARCHITECTURES)})")
        if getattr(c, "attn_logit_softcapping", None) is not None or getattr(c, "final_logit_softcapping", None) is not None:
            raise ValueError("logit soft-capping is not built into this graph")
        layers = int(c.num_hidden_layers)
        layer_types = list(getattr(c, "layer_types", None) or ["full_attention"] * layers)
        rope = dict(c.rope_parameters)
        per_type = rope if all(isinstance(v, dict) for v in rope.values()) else {t: rope for t in set(layer_types)}
        for t, p in per_type.items():
            if p.get("rope_type", "default") != "default":
                raise ValueError(f"rope type {p['rope_type']} for {t} layers is not supported (only default)")
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
        gemma = kind == "gemma3_text"
        sliding = "sliding_attention" in layer_types
        if kind == "qwen2" and getattr(c, "use_sliding_window", False):
            raise ValueError("qwen2 with use_sliding_window is not supported")
        return cls(
            model_type=kind, hidden=c.hidden_size, heads=c.num_attention_heads, kv_heads=c.num_key_value_heads,
            head_dim=head_dim, intermediate=c.intermediate_size, vocab=c.vocab_size, eps=float(c.rms_norm_eps),
            scaling=float(c.query_pre_attn_scalar if gemma else head_dim) ** -0.5,
            layer_types=layer_types, rope_theta={t: float(p["rope_theta"]) for t, p in per_type.items()},
            sliding_window=int(c.sliding_window) if sliding else None,
            tied_embeddings=bool(getattr(c, "tie_word_embeddings", True)),
            max_context=int(getattr(c, "max_position_embeddings", 0)) or None,
        )

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def gemma(self) -> bool:
        return self.model_type == "gemma3_text"

    @property
    def norm_offset(self) -> float:
        """Added to every RMSNorm weight (Gemma scales by 1 + w)."""
        return 1.0 if self.gemma else 0.0

    @property
    def embedding_scale(self) -> float | None:
        """Multiplies token embeddings (Gemma: sqrt(hidden)); None where there is none."""
        return float(np.float32(math.sqrt(self.hidden))) if self.gemma else None

    @property
    def qkv_bias(self) -> bool:
        return self.model_type == "qwen2"


@dataclass
class Builder:
    """Accumulates nodes and initializers; ``op`` returns the output name."""

    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    count: int = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values) -> str:
        return self.const(self.fresh("c"), np.asarray(values, dtype=np.int64))

    def scalar(self, value: float) -> str:
        return self.const(self.fresh("s"), np.asarray(value, dtype=np.float32))

    def op(self, op_type: str, inputs: list[str], hint: str = "t", n_out: int = 1, domain: str = "", **attrs):
        outs = [self.fresh(hint) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs


# A linear layer: (builder, x [.., K], weight key, N) -> y [.., N]
Linear = Callable[[Builder, str, str], str]


def f32_linear(weights: dict[str, np.ndarray]) -> Linear:
    """``y = x @ W^T`` with W float32 [N, K] stored transposed as a MatMul initializer."""

    def linear(b: Builder, x: str, key: str) -> str:
        w = b.const(key, np.ascontiguousarray(weights[key].T))
        return b.op("MatMul", [x, w], "mm")

    return linear


def rms_norm(b: Builder, x: str, weight: str, eps: float) -> str:
    """RMSNorm x / sqrt(mean(x^2) + eps) * weight as one fused op (``weight`` already holds Gemma's 1 + w)."""
    return b.op("SimplifiedLayerNormalization", [x, weight], "rmsn", axis=-1, epsilon=eps, stash_type=1)


def add_rms_norm(b: Builder, x: str, residual: str, weight: str, eps: float) -> tuple[str, str]:
    """(rms_norm(residual + x), residual + x) in one fused op (the residual add of a block and the
    next norm)."""
    normed, total = b.fresh("rmsn"), b.fresh("res")
    b.nodes.append(helper.make_node("SkipSimplifiedLayerNormalization", [x, residual, weight],
                                    [normed, "", "", total], domain=MS_DOMAIN, epsilon=eps))
    return normed, total


def rope_caches(b: Builder, spec: DecoderSpec, layer_type: str, max_positions: int) -> tuple[str, str]:
    """cos/sin tables [max_positions, head_dim / 2] of one rope base, as transformers computes the
    angles: position * 1 / (base ** (arange(0, D, 2) / D)), in float32."""
    D = spec.head_dim
    exponent = np.arange(0, D, 2, dtype=np.float32) / np.float32(D)
    inv_freq = (np.float32(1.0) / (np.float32(spec.rope_theta[layer_type]) ** exponent)).astype(np.float32)
    angles = np.arange(max_positions, dtype=np.float32)[:, None] * inv_freq[None, :]
    return (b.const(f"rope.{layer_type}.cos", np.cos(angles).astype(np.float32)),
            b.const(f"rope.{layer_type}.sin", np.sin(angles).astype(np.float32)))


def build_decoder(
    spec: DecoderSpec,
    params: dict[str, np.ndarray],
    linear: Linear,
    lm_head: Callable[[Builder, str], str] | None,
    all_logits: bool = False,
    max_positions: int = 2048,
) -> onnx.ModelProto:
    """The decoder graph. ``params`` maps transformers names of the float tensors the graph reads
    directly (RMSNorm weights, biases) to arrays; ``linear`` emits the projections (float or
    block-quantized); ``lm_head`` the output layer (``None``: the graph returns the final normed
    ``hidden_states`` instead of ``logits``, for a runtime-side token table).

    Attention is ONNX Runtime's fused GroupQueryAttention (rotary inside, one kv head shared by
    the query heads of its group, KV concatenation, causal mask, and on sliding layers the window
    of transformers' rule p - j < sliding_window, i.e. local_window_size = window - 1); norms
    and residual adds are (Skip)SimplifiedLayerNormalization. About 20 nodes a layer instead of
    ~80 elementwise ones: at batch 1 the per-node overhead is a large share of a decode step."""
    b = Builder()
    d, H, KV, D = spec.hidden, spec.heads, spec.kv_heads, spec.head_dim
    inputs = [
        helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "seq", d]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
    ]
    rows = "seq" if all_logits else 1
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", rows, spec.vocab]) if lm_head else
               helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, ["batch", rows, d])]
    for i in range(spec.num_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "past_seq", D]))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "total_seq", D]))

    eps = spec.eps
    if spec.norm_offset:
        norm = lambda key: b.const(key + ".plus_one", params[key].astype(np.float32) + np.float32(spec.norm_offset))
    else:
        norm = lambda key: b.const(key, params[key].astype(np.float32))
    rope = {t: rope_caches(b, spec, t, max_positions) for t in spec.rope_theta}

    def projections(h: str, keys: list[str], bias: bool = False) -> list[str]:
        """Several projections of one input: ``linear.many`` (one wide node, split) where the
        linear offers it, else one node each; ``bias`` adds the ``<key>.bias`` params."""
        many = getattr(linear, "many", None)
        biases = [params[k + ".bias"] for k in keys] if bias else None
        if many is not None:
            return many(b, h, [k + ".weight" for k in keys], biases)
        outs = [linear(b, h, k + ".weight") for k in keys]
        if biases is not None:
            outs = [b.op("Add", [y, b.const(k + ".bias", v)], "bias") for y, k, v in zip(outs, keys, biases)]
        return outs

    # GroupQueryAttention's lengths: seqlens_k = attended positions - 1 per row, total = T.
    seqlens_k = b.op("Cast", [b.op("Sub", [b.op("ReduceSum", ["attention_mask", b.ints([1])], "len", keepdims=0),
                                           b.ints(1)], "len1")], "seqlens_k", to=TensorProto.INT32)
    total = b.op("Cast", [b.op("Gather", [b.op("Shape", ["attention_mask"], "ms"), b.ints(1)], "T", axis=0)],
                 "total", to=TensorProto.INT32)
    heads_shape = lambda heads: b.ints([0, 0, heads, D])
    flat_shape = lambda heads: b.ints([0, 0, heads * D])
    # llama / qwen2 call the pre-MLP norm post_attention_layernorm; Gemma normalizes the attention
    # output with that name and has pre/post feed-forward norms around its MLP.
    mlp_in = "pre_feedforward_layernorm.weight" if spec.gemma else "post_attention_layernorm.weight"

    x = "inputs_embeds"
    carry = None  # the previous block's (normed) MLP output, still to be added to x
    for i, layer_type in enumerate(spec.layer_types):
        p = f"model.layers.{i}."
        if carry is None:
            h = rms_norm(b, x, norm(p + "input_layernorm.weight"), eps)
        else:
            h, x = add_rms_norm(b, carry, x, norm(p + "input_layernorm.weight"), eps)
        q, k, v = projections(h, [p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"], spec.qkv_bias)
        if spec.gemma:  # per-head q/k norms over head_dim, before rotary (which GroupQueryAttention applies)
            q = b.op("Reshape", [rms_norm(b, b.op("Reshape", [q, heads_shape(H)], "q4"), norm(p + "self_attn.q_norm.weight"), eps),
                                 flat_shape(H)], "qn")
            k = b.op("Reshape", [rms_norm(b, b.op("Reshape", [k, heads_shape(KV)], "k4"), norm(p + "self_attn.k_norm.weight"), eps),
                                 flat_shape(KV)], "kn")
        cos, sin = rope[layer_type]
        window = spec.sliding_window - 1 if layer_type == "sliding_attention" else -1
        ctx = b.fresh("ctx")
        b.nodes.append(helper.make_node(
            "GroupQueryAttention",
            [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total, cos, sin],
            [ctx, f"present.{i}.key", f"present.{i}.value"], domain=MS_DOMAIN,
            num_heads=H, kv_num_heads=KV, scale=spec.scaling, local_window_size=window, do_rotary=1, rotary_interleaved=0,
        ))
        attn = linear(b, ctx, p + "self_attn.o_proj.weight")
        if spec.gemma:
            attn = rms_norm(b, attn, norm(p + "post_attention_layernorm.weight"), eps)
        h, x = add_rms_norm(b, attn, x, norm(p + mlp_in), eps)
        gate, up = projections(h, [p + "mlp.gate_proj", p + "mlp.up_proj"])
        if spec.gemma:
            gate = b.op("Gelu", [gate], "gelu", approximate="tanh")
        else:
            gate = b.op("Mul", [gate, b.op("Sigmoid", [gate], "sig")], "silu")
        carry = linear(b, b.op("Mul", [gate, up], "gu"), p + "mlp.down_proj.weight")
        if spec.gemma:
            carry = rms_norm(b, carry, norm(p + "post_feedforward_layernorm.weight"), eps)

    if not all_logits:
        # only the last position reaches the final norm and the vocabulary-sized output layer
        last = lambda t: b.op("Slice", [t, b.ints([-1]), b.ints([np.iinfo(np.int64).max]), b.ints([1])], "last")
        carry, x = last(carry), last(x)
    x, _ = add_rms_norm(b, carry, x, norm("model.norm.weight"), eps)
    if lm_head is None:  # the runtime's token table is the output layer (see exporters/gguf/table.py)
        b.nodes.append(helper.make_node("Identity", [x], ["hidden_states"]))
    else:
        b.nodes.append(helper.make_node("Identity", [lm_head(b, x)], ["logits"]))

    graph = helper.make_graph(b.nodes, f"{spec.model_type}_decoder", inputs, outputs, b.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
    if any(n.domain == MMRT_DOMAIN for n in b.nodes):
        opsets.append(helper.make_opsetid(MMRT_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="mmrt-exporters")
    model.ir_version = 10
    return model


def f32_lm_head(table: np.ndarray) -> Callable[[Builder, str], str]:
    """Output layer: logits = x @ E^T with E float32 [vocab, d] (the embedding table where tied)."""

    def head(b: Builder, x: str) -> str:
        return b.op("MatMul", [x, b.const("lm_head.weight_t", np.ascontiguousarray(table.T))], "logits_")

    return head


def build_f32_embed(table: np.ndarray) -> onnx.ModelProto:
    """``input_ids`` int64 [B, S] -> ``inputs_embeds`` float32 [B, S, d]: unscaled rows of E."""
    b = Builder()
    out = b.op("Gather", [b.const("embed_tokens.weight", table.astype(np.float32)), "input_ids"], "rows", axis=0)
    b.nodes.append(helper.make_node("Identity", [out], ["inputs_embeds"]))
    return _embed_model(b, table.shape[1])


def _embed_model(b: Builder, d: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        b.nodes, "token_embedding",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "seq", d])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
                              producer_name="mmrt-exporters")
    model.ir_version = 10
    return model


def with_token_ids(decoder: onnx.ModelProto, embed: onnx.ModelProto, scale: float | None) -> onnx.ModelProto:
    """The text-only form: ``input_ids`` int64 [B, S] in, the embedding graph and the
    embedding scale (``None``: none) folded in front of the decoder (one session call per step, no host copy
    of embeddings). Everything else, weights included, is the decoder's."""
    rename = {"inputs_embeds": "embed/rows"}
    nodes = []
    for n in embed.graph.node:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.output[:] = [rename.setdefault(o, f"embed/{o}") for o in n.output]
        m.input[:] = [rename.get(i, i) for i in n.input]
        nodes.append(m)
    b = Builder()
    if scale is None:
        nodes.append(helper.make_node("Identity", ["embed/rows"], ["inputs_embeds"]))
    else:
        nodes.append(helper.make_node("Mul", ["embed/rows", b.const("embed/scale", np.asarray(scale, np.float32))], ["inputs_embeds"]))
    model = onnx.ModelProto()
    model.CopyFrom(decoder)
    g = model.graph
    kept = [i for i in g.input if i.name != "inputs_embeds"]
    del g.input[:]
    g.input.extend([next(i for i in embed.graph.input if i.name == "input_ids")] + kept)
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    g.initializer.extend(list(embed.graph.initializer) + b.inits)
    return model
