"""Gemma 3 text decoder written directly as an ONNX graph (our own stage wrapper).

Why by hand rather than ``torch.onnx.export``: the same graph is built twice,
once with float32 ``MatMul`` weights (the parity reference) and once with the
GGUF blocks carried into ``MatMulNBits`` (+ the Q4_K offset term), and the
sliding-window layers need their own mask. Every number comes from the
transformers config of the loaded model.

Decoder graph (batch B, new tokens S, past P, total T = P + S):

* ``inputs_embeds`` float32 [B, S, d] (already multiplied by the embedding
  scale sqrt(d): the runtime applies the manifest's ``embedding.scale``),
  ``attention_mask`` int64 [B, T] (1 = attend), ``position_ids`` int64 [B, S],
  ``past_key_values.{i}.key|value`` float32 [B, kv_heads, P, head_dim]
* -> ``logits`` float32 [B, 1, vocab] (last position only; ``all_logits=True``
  builds an evaluation twin with [B, S, vocab]), ``present.{i}.key|value``
  [B, kv_heads, T, head_dim].

The attention mask is built in the graph from positions: key j is visible to a
query at position p when j <= p, ``attention_mask[j] == 1`` and, on sliding
layers, p - j < sliding_window (transformers' rule). Keys are cached at their
absolute positions, so the full cache is kept for every layer (sliding layers
just mask the old keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
MS_DOMAIN = "com.microsoft"
NEG = float(np.finfo(np.float32).min)


@dataclass
class GemmaSpec:
    """The numbers of a Gemma 3 text decoder, read from its transformers config."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    eps: float
    scaling: float  # query_pre_attn_scalar ** -0.5
    sliding_window: int
    layer_types: list[str]
    rope_theta: dict[str, float]

    @classmethod
    def from_config(cls, c) -> "GemmaSpec":
        if c.attn_logit_softcapping is not None or c.final_logit_softcapping is not None:
            raise ValueError("logit soft-capping is not built into this graph (Gemma 3 has none)")
        for t, p in c.rope_parameters.items():
            if p.get("rope_type", "default") != "default":
                raise ValueError(f"rope type {p['rope_type']} for {t} layers is not supported (only default)")
        return cls(
            hidden=c.hidden_size, heads=c.num_attention_heads, kv_heads=c.num_key_value_heads, head_dim=c.head_dim,
            intermediate=c.intermediate_size, vocab=c.vocab_size, eps=float(c.rms_norm_eps),
            scaling=float(c.query_pre_attn_scalar) ** -0.5, sliding_window=int(c.sliding_window),
            layer_types=list(c.layer_types), rope_theta={t: float(p["rope_theta"]) for t, p in c.rope_parameters.items()},
        )

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)


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


def rms_norm(b: Builder, x: str, weight_plus_one: str, eps: str) -> str:
    """Gemma RMSNorm: x / sqrt(mean(x^2) + eps) * (1 + w); ``weight_plus_one`` holds 1 + w."""
    sq = b.op("Mul", [x, x], "sq")
    mean = b.op("ReduceMean", [sq, b.ints([-1])], "ms", keepdims=1)
    denom = b.op("Sqrt", [b.op("Add", [mean, eps], "mse")], "rms")
    return b.op("Mul", [b.op("Div", [x, denom], "nrm"), weight_plus_one], "rmsn")


def rotate(b: Builder, x: str, cos: str, sin: str, half: int) -> str:
    """x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x2, x1) on the last axis."""
    x1, x2 = b.op("Split", [x, b.ints([half, half])], "half", n_out=2, axis=-1)
    rot = b.op("Concat", [b.op("Neg", [x2], "neg"), x1], "rot", axis=-1)
    return b.op("Add", [b.op("Mul", [x, cos], "xc"), b.op("Mul", [rot, sin], "rs")], "rope")


def build_decoder(
    spec: GemmaSpec,
    norms: dict[str, np.ndarray],
    linear: Linear,
    lm_head: Callable[[Builder, str], str],
    all_logits: bool = False,
) -> onnx.ModelProto:
    """The decoder graph. ``norms`` maps transformers names of RMSNorm weights to arrays;
    ``linear`` emits the projections (float or block-quantized); ``lm_head`` the output layer."""
    b = Builder()
    d, H, KV, D = spec.hidden, spec.heads, spec.kv_heads, spec.head_dim
    G = H // KV
    inputs = [
        helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "seq", d]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq" if all_logits else 1, spec.vocab])]
    for i in range(spec.num_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "past_seq", D]))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "total_seq", D]))

    eps = b.scalar(spec.eps)
    one = lambda key: b.const(key + ".plus_one", (norms[key].astype(np.float32) + np.float32(1.0)))

    # Positions, rotary tables per rope base: cos/sin [B, S, 1, D].
    pos_f = b.op("Unsqueeze", [b.op("Cast", ["position_ids"], "posf", to=TensorProto.FLOAT), b.ints([-1])], "pos3")
    rope = {}
    for layer_type, theta in spec.rope_theta.items():
        # transformers: 1 / (base ** (arange(0, D, 2) / D)) in float32
        exponent = np.arange(0, D, 2, dtype=np.float32) / np.float32(D)
        inv_freq = (np.float32(1.0) / (np.float32(theta) ** exponent)).astype(np.float32)
        freqs = b.op("Mul", [pos_f, b.const(f"rope.{layer_type}.inv_freq", inv_freq)], "freqs")
        emb = b.op("Concat", [freqs, freqs], "emb", axis=-1)
        axes = b.ints([2])
        rope[layer_type] = (b.op("Unsqueeze", [b.op("Cos", [emb], "cos"), axes], "cos4"),
                            b.op("Unsqueeze", [b.op("Sin", [emb], "sin"), axes], "sin4"))

    # Masks: [B, 1, 1, S, T] additive biases (broadcast over kv heads and groups).
    total = b.op("Gather", [b.op("Shape", ["attention_mask"], "ms"), b.ints(1)], "T", axis=0)
    kpos = b.op("Range", [b.ints(0), total, b.ints(1)], "kpos")
    qpos = b.op("Unsqueeze", ["position_ids", b.ints([1, 2, 4])], "qpos")  # [B,1,1,S,1]
    diff = b.op("Sub", [qpos, kpos], "diff")  # [B,1,1,S,T]
    visible = b.op("Cast", [b.op("Unsqueeze", ["attention_mask", b.ints([1, 2, 3])], "am5")], "amb", to=TensorProto.BOOL)
    causal = b.op("And", [b.op("GreaterOrEqual", [diff, b.ints(0)], "causal"), visible], "full_ok")
    window = b.op("And", [causal, b.op("Less", [diff, b.ints(spec.sliding_window)], "win")], "slide_ok")
    zero, neg = b.scalar(0.0), b.scalar(NEG)
    bias = {
        "full_attention": b.op("Where", [causal, zero, neg], "bias_full"),
        "sliding_attention": b.op("Where", [window, zero, neg], "bias_slide"),
    }
    scaling = b.scalar(spec.scaling)
    shape_bshd = lambda heads: b.ints([0, 0, heads, D])

    x = "inputs_embeds"
    for i, layer_type in enumerate(spec.layer_types):
        p = f"model.layers.{i}."
        h = rms_norm(b, x, one(p + "input_layernorm.weight"), eps)
        q = b.op("Reshape", [linear(b, h, p + "self_attn.q_proj.weight"), shape_bshd(H)], "q")  # [B,S,H,D]
        k = b.op("Reshape", [linear(b, h, p + "self_attn.k_proj.weight"), shape_bshd(KV)], "k")
        v = b.op("Reshape", [linear(b, h, p + "self_attn.v_proj.weight"), shape_bshd(KV)], "v")
        q = rms_norm(b, q, one(p + "self_attn.q_norm.weight"), eps)
        k = rms_norm(b, k, one(p + "self_attn.k_norm.weight"), eps)
        cos, sin = rope[layer_type]
        q = rotate(b, q, cos, sin, D // 2)
        k = rotate(b, k, cos, sin, D // 2)
        k = b.op("Transpose", [k], "kt", perm=[0, 2, 1, 3])  # [B,KV,S,D]
        v = b.op("Transpose", [v], "vt", perm=[0, 2, 1, 3])
        k_all = b.op("Concat", [f"past_key_values.{i}.key", k], "kall", axis=2)
        v_all = b.op("Concat", [f"past_key_values.{i}.value", v], "vall", axis=2)
        b.nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
        b.nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
        # Query head h uses kv head h // G: q [B,S,H,D] -> [B,KV,G,S,D].
        q5 = b.op("Reshape", [b.op("Transpose", [q], "qt", perm=[0, 2, 1, 3]), b.ints([0, KV, G, -1, D])], "q5")
        k5 = b.op("Unsqueeze", [k_all, b.ints([2])], "k5")  # [B,KV,1,T,D]
        v5 = b.op("Unsqueeze", [v_all, b.ints([2])], "v5")
        scores = b.op("MatMul", [q5, b.op("Transpose", [k5], "k5t", perm=[0, 1, 2, 4, 3])], "scores")
        scores = b.op("Add", [b.op("Mul", [scores, scaling], "scaled"), bias[layer_type]], "masked")
        probs = b.op("Softmax", [scores], "probs", axis=-1)
        ctx = b.op("MatMul", [probs, v5], "ctx")  # [B,KV,G,S,D]
        ctx = b.op("Reshape", [ctx, b.ints([0, H, -1, D])], "ctx4")
        ctx = b.op("Reshape", [b.op("Transpose", [ctx], "ctxt", perm=[0, 2, 1, 3]), b.ints([0, 0, H * D])], "ctx3")
        attn = linear(b, ctx, p + "self_attn.o_proj.weight")
        x = b.op("Add", [x, rms_norm(b, attn, one(p + "post_attention_layernorm.weight"), eps)], "res1")
        h = rms_norm(b, x, one(p + "pre_feedforward_layernorm.weight"), eps)
        gate = b.op("Gelu", [linear(b, h, p + "mlp.gate_proj.weight")], "gelu", approximate="tanh")
        up = linear(b, h, p + "mlp.up_proj.weight")
        mlp = linear(b, b.op("Mul", [gate, up], "gu"), p + "mlp.down_proj.weight")
        x = b.op("Add", [x, rms_norm(b, mlp, one(p + "post_feedforward_layernorm.weight"), eps)], "res2")

    x = rms_norm(b, x, one("model.norm.weight"), eps)
    if not all_logits:
        x = b.op("Slice", [x, b.ints([-1]), b.ints([np.iinfo(np.int64).max]), b.ints([1])], "last")
    b.nodes.append(helper.make_node("Identity", [lm_head(b, x)], ["logits"]))

    graph = helper.make_graph(b.nodes, "gemma3_decoder", inputs, outputs, b.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="mmrt-exporters")
    model.ir_version = 10
    return model


def f32_lm_head(table: np.ndarray) -> Callable[[Builder, str], str]:
    """Tied output layer: logits = x @ E^T with E float32 [vocab, d]."""

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
        b.nodes, "gemma3_embed",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "seq", d])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
                              producer_name="mmrt-exporters")
    model.ir_version = 10
    return model
