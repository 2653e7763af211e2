"""Write mmrt bundles from a llama / qwen2 / gemma3 GGUF: an f32 reference and the GGUF-faithful quantized one.

Each bundle comes in two forms sharing one hard-linked ``weights.bin``:
``NAME`` takes ``inputs_embeds`` (multimodal-ready: ``embed.onnx`` returns
unscaled table rows; where the architecture scales embeddings, as Gemma does
by sqrt(hidden), the manifest's ``embedding.scale`` is applied by the runtime
to text rows only) and ``NAME-text`` takes token ids (embedding and scale in
the graph). Where the GGUF's embedding is Q8_0 and tied to the output layer, both forms
instead share one decoder graph (``inputs_embeds`` in, ``hidden_states`` out) and a
hard-linked ``token_table.bin`` that mmrt reads in place for the lookup and the logits
(``table.py``). Tokenizer (``tokenizer.json``, converted from the GGUF vocabulary
by transformers), chat template (``chat_template.jinja``, the GGUF's
``tokenizer.chat_template``) and stop tokens come from the GGUF.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..common.manifest import (ChatTemplate, DecoderInputs, DecoderOutputs, Embedding, Generation, KvCache, LlmDecoder,
                               Manifest, Prompt, TokenTable)
from ..common import compact_tokenizer
from ..common.files import link_or_copy
from ..common.onnx_shared import WEIGHTS, save_shared
from . import graph as gg
from . import table as gguf_table

TEXT_SUFFIX = "-text"
CHAT_FILE = "chat_template.jinja"
TABLE_FILE = "token_table.bin"
# Tokens that end a generation besides the GGUF's eos/eot ids, when the vocabulary has them as
# special tokens (the end-of-turn markers of the common chat formats; llama.cpp keeps a like list).
END_MARKERS = ("<|endoftext|>", "<|im_end|>", "<end_of_turn>", "<eos>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")


@dataclass
class GgufMeta:
    """What the bundle takes from the GGUF's key/value metadata."""

    architecture: str
    name: str
    bos_token_id: int | None
    add_bos: bool
    eos_ids: list[int]  # eos, eot, eom ids present in the metadata
    chat_template: str | None

    @classmethod
    def of(cls, reader, path: Path) -> "GgufMeta":
        """From a ``gguf.GGUFReader`` of ``path`` (as :func:`validate` returns it)."""
        fields = reader.fields
        value = lambda key, default=None: fields[key].contents() if key in fields else default
        ids = [int(value(k)) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                         "tokenizer.ggml.eom_token_id") if k in fields]
        bos = value("tokenizer.ggml.bos_token_id")
        return cls(architecture=str(value("general.architecture", "?")), name=str(value("general.name", path.stem)),
                   bos_token_id=None if bos is None else int(bos), add_bos=bool(value("tokenizer.ggml.add_bos_token", False)),
                   eos_ids=ids, chat_template=value("tokenizer.chat_template"))


def stop_ids(meta: GgufMeta, tok) -> list[int]:
    """The GGUF's end ids, then every :data:`END_MARKERS` token the tokenizer has as a special token."""
    out = list(dict.fromkeys(meta.eos_ids))
    special = set(tok.all_special_tokens) | {t.content for t in tok.added_tokens_decoder.values() if t.special}
    for marker in END_MARKERS:
        if marker in special:
            i = tok.convert_tokens_to_ids(marker)
            if i not in out:
                out.append(i)
    return out


def bos_of(meta: GgufMeta, tok) -> int | None:
    """The id prepended to every prompt: the GGUF's BOS where it says to add one (Gemma), else none."""
    return tok.bos_token_id if meta.add_bos and tok.bos_token_id is not None else None


# GGUF architectures the importer builds (general.architecture), and the tensor types it carries:
# float tensors (norms, biases) plus the block types of exporters.gguf.blocks.
GGUF_ARCHITECTURES = ("llama", "qwen2", "gemma3")
FLOAT_TYPES = ("F32", "F16", "BF16")


def validate(path: Path):
    """Check a GGUF before transformers sees it: readable header (not truncated), a supported
    architecture, tensor data inside the file, and only tensor types the importer carries.
    Returns its ``gguf.GGUFReader``; raises ValueError naming what was found."""
    from gguf import GGUFReader

    from .blocks import DECODERS

    size = path.stat().st_size
    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # gguf raises assorted errors on a short or corrupt header
        raise ValueError(f"cannot read the GGUF header ({type(e).__name__}: {e}); is the file truncated or corrupt?") from e
    arch_field = reader.fields.get("general.architecture")
    arch = str(arch_field.contents()) if arch_field is not None else None
    if arch not in GGUF_ARCHITECTURES:
        raise ValueError(f"architecture {arch!r} is not supported (supported: {', '.join(GGUF_ARCHITECTURES)})")
    supported = FLOAT_TYPES + tuple(DECODERS)
    for t in reader.tensors:
        kind = t.tensor_type.name
        if kind not in supported:
            raise ValueError(f"tensor {t.name}: GGUF block type {kind} is not supported (supported: {', '.join(supported)})")
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size:
            raise ValueError(f"tensor {t.name} ends at byte {end} but the file has {size} bytes: the GGUF is truncated")
    return reader


@dataclass
class Source:
    """A loaded GGUF: metadata, transformers reference, decoder spec."""

    gguf: Path
    meta: GgufMeta
    model: object
    tok: object
    spec: gg.DecoderSpec

    @classmethod
    def load(cls, gguf: Path, hf_cache: Path | None = None) -> "Source":
        from .reference import load

        meta = GgufMeta.of(validate(gguf), gguf)
        model, tok = load(gguf, hf_cache)
        return cls(gguf, meta, model, tok, gg.DecoderSpec.from_config(model.config))

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().float().numpy() for k, v in self.model.state_dict().items()}


def float_params(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float tensors the graph reads directly: RMSNorm weights and biases."""
    return {k: v for k, v in weights.items() if k.endswith(("norm.weight", ".bias"))}


def manifest(src: Source, name: str, description: str, context: int, text_only: bool,
             chat_template: str | None, table_vocab: int | None = None) -> Manifest:
    """``table_vocab``: the bundle has a token table of that many rows (``TABLE_FILE``), which embeds
    and computes the logits; the decoder graph then takes inputs_embeds and returns hidden_states."""
    tok, spec = src.tok, src.spec
    decoder = LlmDecoder(
        name="decoder",
        graph="decoder.onnx",
        inputs=DecoderInputs(input_ids="input_ids", attention_mask="attention_mask"),
        outputs=DecoderOutputs(logits="logits"),
        # GroupQueryAttention updates one preallocated buffer in place: no KV copies per step
        kv_cache=KvCache(num_layers=spec.num_layers, shared_buffer=True),
        context_length=context,
        embedding_last=True,
    )
    if table_vocab is not None:
        decoder.inputs = DecoderInputs(inputs_embeds="inputs_embeds", attention_mask="attention_mask")
        decoder.outputs = DecoderOutputs(hidden_states="hidden_states")
        decoder.token_table = TokenTable(file=TABLE_FILE, vocab=table_vocab, width=spec.hidden,
                                         scale=spec.embedding_scale)
    elif not text_only:
        # the embedding graph returns raw rows; the runtime applies `scale` (Gemma: sqrt(hidden)) to
        # text rows only (media rows from a projector are not scaled)
        decoder.embedding = Embedding(graph="embed.onnx", input="input_ids", output="inputs_embeds",
                                      scale=spec.embedding_scale)
        decoder.inputs = DecoderInputs(inputs_embeds="inputs_embeds", attention_mask="attention_mask")
    chat = None
    if src.meta.chat_template:
        chat = ChatTemplate(file=CHAT_FILE, bos_token=tok.bos_token, eos_token=tok.eos_token)
    return Manifest(
        name=name,
        description=description,
        tokenizer="tokenizer.json",
        stages=[decoder],
        prompt=Prompt(
            template="{content}",
            chat_template=None if chat else chat_template,
            chat=chat,
            bos_token_id=bos_of(src.meta, tok),
            eos_token_ids=stop_ids(src.meta, tok),
            pad_token_id=tok.pad_token_id,
        ),
        generation=Generation.greedy(max_new_tokens=64),
    )


def write_both_forms(src: Source, out: Path, embed: onnx.ModelProto | None, decoder: onnx.ModelProto, description: str,
                     context: int, chat_template: str | None = None, table=None) -> None:
    """``out`` (multimodal-ready: inputs_embeds + embedding graph) and ``out``-text (text-only:
    token ids in, embedding and scale inside the graph), sharing one hard-linked weights.bin.
    With ``table`` (the Q8_0 embedding as a BlockQuant, written planar by table.py) both forms are the same decoder
    graph (inputs_embeds in, hidden_states out) beside one hard-linked token table."""
    text = out.with_name(out.name + TEXT_SUFFIX)
    if table is not None:
        twin = onnx.ModelProto()
        twin.CopyFrom(decoder)
        save_shared({out / "decoder.onnx": decoder, text / "decoder.onnx": twin})
        gguf_table.write(out / TABLE_FILE, table)
        link_or_copy(out / TABLE_FILE, text / TABLE_FILE)
        write_table_forms(src, out, text, description, context, chat_template, table.codes.shape[0])
        return
    ids_form = gg.with_token_ids(decoder, embed, src.spec.embedding_scale)
    save_shared({out / "embed.onnx": embed, out / "decoder.onnx": decoder, text / "decoder.onnx": ids_form})
    scaled = src.spec.embedding_scale is not None
    for d, text_only in ((out, False), (text, True)):
        files = copy_tokenizer_files(src, d)
        form = ("Text-only form: token ids in, the embedding lookup" + (" and scale" if scaled else "") + " inside the decoder graph."
                if text_only else "Multimodal-ready form: inputs_embeds in; embed.onnx returns unscaled rows"
                + (", the runtime applies embedding.scale = sqrt(hidden) to text rows only." if scaled else "."))
        files += [WEIGHTS] + ([] if text_only else ["embed.onnx"]) + ["decoder.onnx"]
        with_compact_tokenizer(manifest(src, d.name, f"{description} {form}", context, text_only, chat_template), files).write(d, files)


def copy_tokenizer_files(src: Source, d: Path) -> list[str]:
    """tokenizer.json, its compact form where the format holds it, and the GGUF's chat template
    into ``d``; returns their names."""
    shutil.copy(Path(src.tok.name_or_path) / "tokenizer.json", d / "tokenizer.json")
    files = ["tokenizer.json"]
    if compact_tokenizer.write(d / "tokenizer.json", d / compact_tokenizer.FILE_NAME):
        files.append(compact_tokenizer.FILE_NAME)
    if src.meta.chat_template:
        (d / CHAT_FILE).write_text(src.meta.chat_template)
        files.append(CHAT_FILE)
    return files


def with_compact_tokenizer(m: Manifest, files: list[str]) -> Manifest:
    """``m`` naming the compact tokenizer when ``files`` has one."""
    m.compact_tokenizer = compact_tokenizer.FILE_NAME if compact_tokenizer.FILE_NAME in files else None
    return m


def write_table_forms(src: Source, out: Path, text: Path, description: str, context: int,
                      chat_template: str | None, vocab: int) -> None:
    """Both forms' manifests for a token-table bundle: one graph, text rows from the table."""
    scaled = src.spec.embedding_scale is not None
    form = (f" The token table ({TABLE_FILE}: the GGUF's Q8_0 token_embd, read in place by mmrt) embeds"
            + (" (times embedding scale sqrt(hidden), text rows only)" if scaled else "")
            + " and is the tied output layer over the graph's hidden_states; the decoder takes inputs_embeds.")
    for d, text_only in ((out, False), (text, True)):
        files = copy_tokenizer_files(src, d) + [WEIGHTS, TABLE_FILE, "decoder.onnx"]
        with_compact_tokenizer(manifest(src, d.name, description + form, context, text_only, chat_template, vocab), files).write(d, files)


def write_f32(src: Source, out: Path, context: int, description: str | None = None,
              chat_template: str | None = None) -> None:
    w = src.weights()
    table = w["model.embed_tokens.weight"]
    head = w.get("lm_head.weight", table) if not src.spec.tied_embeddings else table
    decoder = gg.build_decoder(src.spec, float_params(w), gg.f32_linear(w), gg.f32_lm_head(head), max_positions=context)
    description = description or (f"{src.meta.name} ({src.meta.architecture}), float32 weights dequantized from "
                                  f"{src.gguf.name}; the parity reference for the quantized bundle.")
    write_both_forms(src, out, gg.build_f32_embed(table), decoder, description, context, chat_template)


# Weights computed in float32 (accuracy_level 0) in the quantized bundles: every projection whose
# codes are 4-bit (Q4_K, Q4_1), which the fast 4-bit float32 kernel computes at about the int8
# path's cost; 8-bit codes (Q5_0, Q8_0, Q6_K) and the output layer stay at accuracy_level 4 (int8
# activations), since level 0 for 8-bit codes costs two 4-bit halves over a doubled K. Measured
# (teacher-forced agreement / mean KL vs transformers fp32, llama-perplexity's 2,550 positions):
# SmolLM2 Q4_1 94.08% / 0.0102 with only o/down at level 0, 97.96% / 0.0010 with every 4-bit
# projection (llama.cpp on the same GGUF: 96.90% / 0.0031); Gemma 3 and Qwen2.5's 4-bit weights
# are only o/down projections, so their graphs are unchanged by the broader rule.
FP32_KINDS = (".weight",)


def quantized_description(src: Source, types: dict[str, str], accuracy_level: int, fp32_kinds: tuple[str, ...],
                          table: bool = False, kernels: tuple[str, ...] = ()) -> str:
    from . import quant

    def listing(kinds: list[str]) -> str:
        return ", ".join(f"{kinds.count(t)} {t}" for t in sorted(set(kinds)))

    tables = (quant.EMBED_HF, quant.HEAD_HF)
    in_place = [t for k, t in types.items() if t in kernels and k not in tables]
    nbits = [t for k, t in types.items() if not (t in kernels and k not in tables) and not (table and k == quant.EMBED_HF)]
    parts = []
    if in_place:
        parts.append(f"{listing(in_place)} read in place by mmrt.GgufMatMul (the GGUF's own blocks, float32 "
                     "arithmetic on the exact weights)")
    if nbits:
        parts.append(f"{listing(nbits)} carried exactly into MatMulNBits (integer zero points; accuracy_level "
                     f"{accuracy_level}, 0 for {'every projection' if fp32_kinds == ('.weight',) else ', '.join(fp32_kinds) or 'none'} "
                     "where 4-bit; per-block min offsets as a separate block-sum term)")
    tied = "which is also the tied output layer" if src.spec.tied_embeddings else "and the output layer (MatMulNBits)"
    return (f"{src.meta.name} ({src.meta.architecture}) from {src.gguf.name}, GGUF-faithful: " + "; ".join(parts) + (
        ". The Q8_0 embedding, also the tied output layer, is the token table." if table else
        "; GatherBlockQuantized for the embedding, " + tied + "."))


def write_quantized(src: Source, out: Path, context: int, accuracy_level: int = 4,
                    fp32_kinds: tuple[str, ...] = FP32_KINDS, description: str | None = None,
                    chat_template: str | None = None, head_accuracy_level: int | None = None,
                    token_table: bool = True, kernels: tuple[str, ...] | None = None) -> dict[str, str]:
    """The GGUF-faithful bundle; returns the GGUF type of every quantized weight. ``token_table``:
    a Q8_0 tied embedding becomes the runtime's token table (table.py) instead of graph nodes.
    ``kernels``: GGUF types read in place by ``mmrt.GgufMatMul`` (default :data:`quant.KERNEL_TYPES`)."""
    from . import quant

    kernels = quant.KERNEL_TYPES if kernels is None else kernels
    w = src.weights()
    blocks, types = quant.load_blocks(src.gguf, w, src.spec)
    table = quant.token_table(src.spec, blocks) if token_table else None
    decoder = quant.build_q4_decoder(src.spec, float_params(w), blocks, accuracy_level, fp32_kinds=fp32_kinds,
                                     fp32_8bit=False, max_positions=context, head_accuracy_level=head_accuracy_level,
                                     table_head=table is not None, kernels=kernels)
    embed = None if table is not None else quant.build_q4_embed(blocks[quant.EMBED_HF])
    description = description or quantized_description(src, types, accuracy_level, fp32_kinds, table is not None, kernels)
    write_both_forms(src, out, embed, decoder, description, context, chat_template, table)
    return types


def default_context(spec: gg.DecoderSpec, limit: int = 4096) -> int:
    """The manifest's context_length unless asked: the trained context, at most ``limit`` (KV
    buffers are preallocated for the whole context, so a larger one costs memory up front)."""
    return min(spec.max_context or limit, limit)


def clear(out: Path) -> None:
    """Remove an earlier build of both forms (stale files would otherwise linger)."""
    for d in (out, out.with_name(out.name + TEXT_SUFFIX)):
        if d.exists():
            shutil.rmtree(d)
