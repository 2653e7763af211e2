"""The token table mmrt reads itself: a GGUF Q8_0 ``token_embd`` written planar, plus a numpy twin
of the runtime's arithmetic (``src/stages/q8_dot.rs``, ``src/stages/token_table.rs``).

Why: the table is most of a small model (Gemma 3 270M: 168M of 268M weights). As a MatMulNBits
initializer ONNX Runtime prepacks a private copy of it at session creation (~240 MiB resident,
~270 ms); mapped and read in place by the runtime it costs neither, and the output layer reads the
GGUF's bytes per token (8-bit codes + float16 scales).

Layout (``format: "q8_0"``): ``codes [vocab, width]`` uint8 (the int8 code + 128), then
``scales [vocab, width / 32]`` float16, little-endian. Value = scale * (code - 128), exactly the
GGUF's ``d * q``.

The output layer quantizes the hidden state per block of 32 (scale = max|x| / 127, codes rounded
half to even, as llama.cpp's Q8_0 activations and ONNX Runtime's int8 MatMulNBits path do); each
block's dot product is then an exact integer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .blocks import BlockQuant

BLOCK = 32
FORMAT = "q8_0"


def q8_0_parts(bq: BlockQuant) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes uint8 [V, D], scales float16 [V, D/32])`` when ``bq`` is exactly a Q8_0 table (8-bit
    codes, blocks of 32, zero point 128, float16 scales); ``None`` otherwise (the graph keeps its head)."""
    if bq.bits != 8 or bq.block != BLOCK or bq.offsets is not None or not np.all(bq.zero_points == 128):
        return None
    scales = bq.scales.astype(np.float16)
    if not np.array_equal(scales.astype(np.float32), bq.scales):
        return None
    return bq.codes.astype(np.uint8), scales


def write(path: Path, bq: BlockQuant) -> None:
    """Write ``bq`` (a Q8_0 table, see :func:`q8_0_parts`) and check the written file's values equal
    ``bq.dequantize()`` (gguf-py's dequantization, see blocks.check_exact) bit for bit."""
    codes, scales = q8_0_parts(bq)
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(codes, np.uint8).tobytes())
        f.write(np.ascontiguousarray(scales, "<f2").tobytes())
    c, s = read(path, *codes.shape)
    for r0 in range(0, c.shape[0], 32768):
        rows = np.arange(r0, min(r0 + 32768, c.shape[0]))
        if not np.array_equal(embed(rows, c, s, 1.0), bq.dequantize_rows(rows)):
            raise AssertionError(f"{path}: rows {r0}.. differ from the GGUF tensor's values")


def read(path: Path, vocab: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.memmap(path, np.uint8, "r")
    n = vocab * width
    if raw.size != n + vocab * (width // BLOCK) * 2:
        raise ValueError(f"{path}: {raw.size} bytes, not a q8_0 table of {vocab} x {width}")
    return raw[:n].reshape(vocab, width), raw[n:].view("<f2").reshape(vocab, width // BLOCK)


def embed(ids, codes: np.ndarray, scales: np.ndarray, scale: float) -> np.ndarray:
    """float32 [len(ids), D]: the rows, dequantized, times ``scale``."""
    c = codes[np.asarray(ids)].astype(np.float32) - 128
    s = np.repeat(scales[np.asarray(ids)].astype(np.float32), BLOCK, axis=-1)
    return (s * c) * np.float32(scale)


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block of 32 along the last axis: (int codes [..., D], scales float32 [..., D/32])."""
    xb = x.astype(np.float32).reshape(*x.shape[:-1], -1, BLOCK)
    d = np.abs(xb).max(-1) / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.clip(np.round(xb * inv[..., None]), -127, 127)
    return q.reshape(x.shape).astype(np.float32), d.astype(np.float32)


def logits(hidden: np.ndarray, codes: np.ndarray, scales: np.ndarray, rows: int = 32768) -> np.ndarray:
    """float32 [n, V] = the runtime's output layer over ``hidden`` [n, D]: per block an integer dot
    product (exact in float32: |sum| < 2^24), scaled by the row's and the activation's block scales."""
    q, d = quantize(hidden)
    n, width = hidden.shape
    nb = width // BLOCK
    out = np.empty((n, codes.shape[0]), np.float32)
    for r0 in range(0, codes.shape[0], rows):
        w = codes[r0:r0 + rows].astype(np.float32) - 128
        s = scales[r0:r0 + rows].astype(np.float32)
        acc = np.zeros((n, w.shape[0]), np.float64)
        for b in range(nb):
            dot = q[:, b * BLOCK:(b + 1) * BLOCK] @ w[:, b * BLOCK:(b + 1) * BLOCK].T  # exact integers
            acc += (d[:, b:b + 1] * s[None, :, b]).astype(np.float64) * dot
        out[:, r0:r0 + rows] = acc
    return out
