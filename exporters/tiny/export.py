"""Export the tiny LLaVA stage wrappers of :mod:`exporters.tiny.stages` to ONNX graphs
(with :func:`exporters.common.onnx_export.export_module`).

The decoder graph accepts ``past_seq = 0`` (prefill with empty past tensors)
as well as ``past_seq > 0`` (decode); :func:`check_decoder_shapes` proves it
in onnxruntime against PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.export import Dim

from ..common.onnx_export import export_module
from .stages import Decoder, Embed, Projector, VisionEncoder


def export_vision_encoder(encoder: VisionEncoder, path: Path, image_size: int) -> onnx.ModelProto:
    """``pixel_values`` [num_images, 3, S, S] -> ``image_features`` [num_images, T, d_vision]."""
    example = torch.randn(2, 3, image_size, image_size)
    return export_module(
        encoder,
        (example,),
        path,
        ["pixel_values"],
        ["image_features"],
        {"pixel_values": {0: Dim("num_images")}},
    )


def export_projector(projector: Projector, path: Path, tokens: int, width: int) -> onnx.ModelProto:
    """``image_features`` [num_images, T, d_vision] -> ``image_embeds`` [num_images, T, d_text]."""
    example = torch.randn(2, tokens, width)
    return export_module(
        projector,
        (example,),
        path,
        ["image_features"],
        ["image_embeds"],
        {"image_features": {0: Dim("num_images")}},
    )


def export_embed(embed: Embed, path: Path) -> onnx.ModelProto:
    """``input_ids`` int64 [batch, seq] -> ``inputs_embeds`` [batch, seq, d_text]."""
    example = torch.tensor([[1, 5, 9, 3], [1, 7, 2, 0]], dtype=torch.int64)
    return export_module(
        embed,
        (example,),
        path,
        ["input_ids"],
        ["inputs_embeds"],
        {"input_ids": {0: Dim("batch"), 1: Dim("seq")}},
    )


def _decoder_example(decoder: Decoder, batch: int, seq: int, past: int, kv_heads: int, head_dim: int):
    hidden = decoder.language_model.config.hidden_size
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(batch, seq, hidden, generator=g)
    mask = torch.ones(batch, past + seq, dtype=torch.int64)
    positions = torch.arange(past, past + seq, dtype=torch.int64)[None].repeat(batch, 1)
    kv = [torch.randn(batch, kv_heads, past, head_dim, generator=g) for _ in range(2 * decoder.num_layers)]
    return (embeds, mask, positions, *kv)


def export_decoder(decoder: Decoder, path: Path, kv_heads: int, head_dim: int) -> onnx.ModelProto:
    """The decoder graph with flattened past/present KV tensors (see :class:`Decoder`)."""
    batch, seq, past, total = Dim("batch"), Dim("seq"), Dim("past_seq", min=0), Dim("total_seq")
    # Example with past_seq > 0 and seq > 1 so no dimension is specialised to 0 or 1.
    args = _decoder_example(decoder, batch=2, seq=5, past=3, kv_heads=kv_heads, head_dim=head_dim)
    dynamic_shapes = {
        "inputs_embeds": {0: batch, 1: seq},
        "attention_mask": {0: batch, 1: total},
        "position_ids": {0: batch, 1: seq},
        "past": tuple({0: batch, 2: past} for _ in range(2 * decoder.num_layers)),
    }
    return export_module(decoder, args, path, decoder.input_names(), decoder.output_names(), dynamic_shapes)


def check_decoder_shapes(decoder: Decoder, path: Path, kv_heads: int, head_dim: int, atol: float = 1e-4) -> list[str]:
    """Run the decoder graph in onnxruntime for several (batch, seq, past_seq), past_seq = 0 included,
    and compare every output with PyTorch. Returns report lines; raises on mismatch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lines = []
    for batch, seq, past in [(1, 7, 0), (1, 1, 0), (1, 1, 9), (2, 4, 0), (2, 1, 6), (1, 3, 5)]:
        args = _decoder_example(decoder, batch, seq, past, kv_heads, head_dim)
        with torch.no_grad():
            expected = decoder(*args)
        feed = {name: t.numpy() for name, t in zip(decoder.input_names(), args)}
        got = session.run(decoder.output_names(), feed)
        worst = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        shapes_ok = all(tuple(g.shape) == tuple(e.shape) for g, e in zip(got, expected))
        if not shapes_ok or worst > atol:
            raise AssertionError(f"decoder (batch={batch}, seq={seq}, past_seq={past}): max abs diff {worst}")
        lines.append(f"batch={batch} seq={seq} past_seq={past}: max|ort-torch|={worst:.2e}")
    return lines
