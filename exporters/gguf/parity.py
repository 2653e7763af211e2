"""Parity of GGUF bundles with their transformers reference.

* :func:`reference_goldens` - transformers' greedy ``generate()`` ids for five prompts (raw
  completions, one chat turn rendered by the tokenizer's own chat template, one longer than 600
  tokens), written to ``tests/golden/<name>.json`` for the Rust tests;
* :func:`check_bundle` - the same prompts through a bundle in onnxruntime (Python twin of the Rust loop);
* :func:`measure_agreement` - teacher-forced next-token agreement and mean KL of the quantized
  decoder against the transformers float32 model, on text not written for this project.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .bundle import Source, bos_of, float_params, stop_ids
from . import table as gguf_table

SIMPLE_CHAT = "{content}"  # placeholder: models without a chat template use their manifest's simple one


class OrtDecoder:
    """Greedy decoding through an exported bundle in onnxruntime (Python twin of the Rust loop)."""

    def __init__(self, bundle: Path, threads: int = 2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        m = json.loads((bundle / "bundle.json").read_text())["stages"][0]
        self.embed = self.table = None
        if "token_table" in m:  # the runtime's table embeds and is the output layer (numpy twin in table.py)
            t = m["token_table"]
            self.table = gguf_table.read(bundle / t["file"], t["vocab"], t["width"])
            self.scale = np.float32(t.get("scale") or 1.0)
        elif "embedding" in m:  # multimodal-ready form; the text-only one embeds in the graph
            self.embed = ort.InferenceSession(str(bundle / "embed.onnx"), so, providers=["CPUExecutionProvider"])
            self.scale = np.float32(m["embedding"].get("scale") or 1.0)
        self.dec = ort.InferenceSession(str(bundle / "decoder.onnx"), so, providers=["CPUExecutionProvider"])
        self.layers = m["kv_cache"]["num_layers"]
        past = [i for i in self.dec.get_inputs() if i.name.startswith("past_key_values.")]
        self.kv_shape = (1, past[0].shape[1], 0, past[0].shape[3])

    def forward(self, ids: list[int], past: dict | None, start: int):
        if self.table is not None:
            first = {"inputs_embeds": gguf_table.embed(ids, *self.table, self.scale)[None]}
        elif self.embed is None:
            first = {"input_ids": np.asarray([ids], np.int64)}
        else:
            emb = self.embed.run(None, {"input_ids": np.asarray([ids], np.int64)})[0] * self.scale
            first = {"inputs_embeds": emb.astype(np.float32)}
        if past is None:
            past = {f"past_key_values.{i}.{k}": np.zeros(self.kv_shape, np.float32) for i in range(self.layers) for k in ("key", "value")}
        total = start + len(ids)
        feed = {**first, "attention_mask": np.ones((1, total), np.int64), **past}
        names = [o.name for o in self.dec.get_outputs()]
        outs = dict(zip(names, self.dec.run(names, feed)))
        nxt = {n.replace("present.", "past_key_values."): v for n, v in outs.items() if n.startswith("present.")}
        if self.table is not None:
            return gguf_table.logits(outs["hidden_states"][0, -1:], *self.table)[0], nxt
        return outs["logits"][0, -1], nxt

    def greedy(self, prompt_ids: list[int], new_tokens: int, stop: list[int]) -> list[int]:
        logits, past = self.forward(prompt_ids, None, 0)
        out = []
        pos = len(prompt_ids)
        while len(out) < new_tokens:
            t = int(np.argmax(logits))
            out.append(t)
            if t in stop:
                break
            logits, past = self.forward([t], past, pos)
            pos += 1
        return out


def render_chat(tok, user: str, simple_template: str | None) -> str:
    """One user turn with the generation prompt: the tokenizer's own chat template (transformers'
    ``apply_chat_template``) where it has one, else the manifest's ``{content}`` template."""
    if tok.chat_template:
        return tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    if simple_template is None:
        raise ValueError("the model has no chat template and none was given")
    return simple_template.replace("{content}", user)


def golden_prompts(src: Source, simple_chat: str | None = None, extra: bool = True) -> list[dict]:
    """Five prompts: raw completions, one chat turn, and one > 600 tokens (crosses a 512-token sliding
    window); with ``extra``, two more open-ended completions, so that at least five run the full
    32 tokens even where the chat answer and the long prompt's end early at a stop token."""
    tok = src.tok
    long_text = " ".join(
        f"Item {i}: the {['red', 'blue', 'green', 'amber'][i % 4]} box holds {i * 7 % 13} marbles." for i in range(60)
    ) + " Question: what does item 5 hold? Answer:"
    prompts = [
        {"name": "capital", "prompt": "Q: What is the capital of Japan?\nA:", "chat": False},
        {"name": "story", "prompt": "Once upon a time, in a small village by the sea,", "chat": False},
        {"name": "code", "prompt": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", "chat": False},
        {"name": "chat", "prompt": "Name three primary colors.", "chat": True},
        {"name": "long", "prompt": long_text, "chat": False},
    ]
    if extra:
        prompts += [
            {"name": "science", "prompt": "Photosynthesis is the process by which", "chat": False},
            {"name": "history", "prompt": "The printing press changed Europe because", "chat": False},
        ]
    bos = bos_of(src.meta, tok)
    for p in prompts:
        text = render_chat(tok, p["prompt"], simple_chat) if p["chat"] else p["prompt"]
        p["text"] = text
        # a Jinja chat template writes its own BOS; the plain path prepends the manifest's
        jinja = p["chat"] and bool(tok.chat_template)
        p["prompt_ids"] = ([] if bos is None or jinja else [bos]) + tok(text, add_special_tokens=False).input_ids
    assert len(prompts[4]["prompt_ids"]) > 600, len(prompts[4]["prompt_ids"])
    return prompts


def reference_goldens(src: Source, new_tokens: int = 32, simple_chat: str | None = None, extra: bool = True) -> dict:
    import torch
    import transformers

    stop = stop_ids(src.meta, src.tok)
    cases = []
    for p in golden_prompts(src, simple_chat, extra):
        ids = torch.tensor([p["prompt_ids"]])
        with torch.no_grad():
            gen = src.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                                     eos_token_id=stop, pad_token_id=src.tok.pad_token_id)
        p["expected_ids"] = gen[0, ids.shape[1]:].tolist()
        p["expected_text"] = src.tok.decode(p["expected_ids"], skip_special_tokens=True)
        cases.append(p)
    return {"model": f"{src.meta.name} (transformers {transformers.__version__} from {src.gguf.name}, float32, greedy generate)",
            "max_new_tokens": new_tokens, "stop_token_ids": stop, "cases": cases}


def uses_mmrt_ops(bundle: Path) -> bool:
    """Whether the bundle's decoder has mmrt's own operators (``mmrt.GgufMatMul``), which only mmrt runs."""
    import onnx

    from .graph import MMRT_DOMAIN

    model = onnx.load(str(bundle / "decoder.onnx"), load_external_data=False)
    return any(o.domain == MMRT_DOMAIN for o in model.opset_import)


def check_bundle(bundle: Path, goldens: dict) -> tuple[bool, list[str]]:
    if uses_mmrt_ops(bundle):
        return True, [f"{bundle.name}: reads GGUF blocks with mmrt's own operator; checked by cargo test (tests/gguf_real.rs)"]
    dec = OrtDecoder(bundle)
    lines, ok = [], True
    for c in goldens["cases"]:
        got = dec.greedy(c["prompt_ids"], goldens["max_new_tokens"], goldens["stop_token_ids"])
        same = got == c["expected_ids"]
        ok &= same
        first_diff = next((i for i, (a, b) in enumerate(zip(got, c["expected_ids"])) if a != b), None)
        lines.append(f"{bundle.name} {c['name']:8s} prompt={len(c['prompt_ids']):4d} tokens: "
                     f"{'identical' if same else f'DIFFER at {first_diff}'} ({len(got)} new)")
    return ok, lines


def eval_segments(tok, bos: int | None, segments: int = 5, length: int = 512) -> list[list[int]]:
    """Teacher-forcing text: English prose from the Python reference manual shipped with the
    interpreter (``pydoc_data.topics``), deterministic for a given Python; ``length`` tokens each
    (BOS first where the model adds one)."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    ids = tok(text, add_special_tokens=False).input_ids
    step = length - (bos is not None)
    if len(ids) < segments * step:
        raise ValueError(f"evaluation text has {len(ids)} tokens, need {segments * step}")
    return [([bos] if bos is not None else []) + ids[i * step:(i + 1) * step] for i in range(segments)]


def llama_chunks(tok, bos: int | None, chunks: int, n_ctx: int = 512) -> list[tuple[list[int], int]]:
    """The chunks and scored positions of ``llama-perplexity -c n_ctx --kl-divergence`` on the same
    text: the whole text tokenized (BOS first where the model adds one), cut into ``n_ctx``-token
    chunks whose first token is replaced by BOS (where added), the logits at positions
    ``n_ctx/2 .. n_ctx-2`` scored (each predicts the next token of the chunk). Returns
    (chunk ids, first scored position) per chunk."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    ids = ([bos] if bos is not None else []) + tok(text, add_special_tokens=False).input_ids
    if len(ids) < chunks * n_ctx:
        raise ValueError(f"evaluation text has {len(ids)} tokens, need {chunks * n_ctx}")
    out = []
    for i in range(chunks):
        chunk = ids[i * n_ctx:(i + 1) * n_ctx]
        if bos is not None:
            chunk[0] = bos
        out.append((chunk, n_ctx // 2))
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def agreement(ref_logits: np.ndarray, q_logits: np.ndarray) -> tuple[int, int, float]:
    """(argmax agreements, positions, sum of KL(ref || q)) over [positions, vocab] logits."""
    kl = 0.0
    for i in range(0, ref_logits.shape[0], 64):  # chunks keep the float64 temporaries small
        lp, lq = log_softmax(ref_logits[i:i + 64]), log_softmax(q_logits[i:i + 64])
        kl += float((np.exp(lp) * (lp - lq)).sum())
    return int((ref_logits.argmax(-1) == q_logits.argmax(-1)).sum()), ref_logits.shape[0], kl


def measure_agreement(src: Source, accuracy_level: int, segments: int, fp32_kinds: tuple[str, ...] = (),
                      fp32_8bit: bool = False, threads: int = 2, llama_positions: bool = False,
                      head_accuracy_level: int | None = None, token_table: bool = True,
                      kernels: tuple[str, ...] | None = None) -> dict:
    """Teacher-forced next-token agreement and mean KL of the quantized decoder vs the transformers
    float32 model (its output layer the runtime's token table where the bundle has one): on every position of ``segments`` 512-token segments, or with ``llama_positions``
    on exactly the positions ``llama-perplexity -c 512 --chunks segments --kl-divergence`` scores.
    Weights of the ``kernels`` types (default: :data:`quant.KERNEL_TYPES`, as the bundle is written)
    are computed as ``mmrt.GgufMatMul`` computes them, float32 over the exact weights (emulated by a
    MatMul, which Python's ONNX Runtime can run)."""
    import onnxruntime as ort
    import torch

    from . import quant

    spec = src.spec
    w = src.weights()
    blocks, _ = quant.load_blocks(src.gguf, w, spec)
    table = quant.token_table(spec, blocks) if token_table else None  # as write_quantized decides
    table = None if table is None else gguf_table.q8_0_parts(table)
    graph = quant.build_q4_decoder(spec, float_params(w), blocks, accuracy_level, all_logits=True,
                                   head_accuracy_level=head_accuracy_level, fp32_kinds=fp32_kinds,
                                   fp32_8bit=fp32_8bit, table_head=table is not None,
                                   kernels=quant.KERNEL_TYPES if kernels is None else kernels,
                                   emulate_kernels=True).SerializeToString()
    embed = quant.build_q4_embed(blocks[quant.EMBED_HF]).SerializeToString()
    del blocks, w
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    dec = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(embed, so, providers=["CPUExecutionProvider"])
    scale = np.float32(spec.embedding_scale or 1.0)
    kv = (1, spec.kv_heads, 0, spec.head_dim)
    agree = total = 0
    kl_sum = 0.0
    bos = bos_of(src.meta, src.tok)
    if llama_positions:
        pieces = llama_chunks(src.tok, bos, segments)
    else:
        pieces = [(seg, 0) for seg in eval_segments(src.tok, bos, segments)]
    for seg, first in pieces:
        with torch.no_grad():
            ref = src.model(torch.tensor([seg])).logits[0].float().numpy()
        feed = {"inputs_embeds": emb.run(None, {"input_ids": np.asarray([seg], np.int64)})[0] * scale,
                "attention_mask": np.ones((1, len(seg)), np.int64)}
        feed.update({f"past_key_values.{i}.{k}": np.zeros(kv, np.float32) for i in range(spec.num_layers) for k in ("key", "value")})
        if table is None:
            got = dec.run(["logits"], feed)[0][0]
        else:  # the runtime's output layer, in its numpy twin
            got = gguf_table.logits(dec.run(["hidden_states"], feed)[0][0], *table)
        a, n, kl = agreement(ref[first:-1], got[first:-1])  # positions that predict a next token of the text
        agree, total, kl_sum = agree + a, total + n, kl_sum + kl
    return {"accuracy_level": accuracy_level, "head_accuracy_level": head_accuracy_level, "token_table": table is not None, "fp32_kinds": list(fp32_kinds), "fp32_8bit": fp32_8bit,
            "positions": total, "scored": "llama-perplexity's" if llama_positions else "all", "agreement": agree / total, "mean_kl": kl_sum / total}
