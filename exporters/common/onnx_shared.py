"""Save several ONNX graphs whose weights live in one external data file.

The text-only and multimodal-ready forms of a decoder hold the same weights;
written this way, the two bundles hard-link one ``weights.bin`` instead of
keeping two copies (and the f32 reference costs 1.3 GB once, not twice).
Tensors are stored once per distinct content (sha256 of their bytes), so the
Q8_0 embedding table and the tied output layer, which hold the same codes,
scales and zero points in the same order, share their bytes on disk too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import numpy_helper

from .files import link_or_copy

WEIGHTS = "weights.bin"
ALIGN = 4096  # page-aligned offsets, so a runtime may map tensors in place
MIN_BYTES = 1024  # smaller tensors stay inside the graph file


def _raw(t: onnx.TensorProto) -> bytes:
    return t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()


def _externalize(t: onnx.TensorProto, offset: int, length: int) -> None:
    for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        t.ClearField(f)
    del t.external_data[:]
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", WEIGHTS), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v


def save_shared(models: dict[Path, onnx.ModelProto]) -> list[Path]:
    """Write each model to its path with its large initializers in ``weights.bin`` beside it
    (one file for all, hard-linked into every directory). Returns the weights files."""
    dirs = sorted({p.parent for p in models})
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        (d / WEIGHTS).unlink(missing_ok=True)
    table: dict[str, tuple[int, int]] = {}  # sha256 -> (offset, length)
    first = dirs[0] / WEIGHTS
    with open(first, "wb") as out:
        for model in models.values():
            for t in model.graph.initializer:
                raw = _raw(t)
                if len(raw) < MIN_BYTES:
                    continue
                digest = hashlib.sha256(raw).hexdigest()
                if digest not in table:
                    out.seek((out.tell() + ALIGN - 1) // ALIGN * ALIGN)
                    table[digest] = (out.tell(), len(raw))
                    out.write(raw)
                _externalize(t, *table[digest])
    for path, model in models.items():
        onnx.save_model(model, str(path))
    for d in dirs[1:]:
        link_or_copy(first, d / WEIGHTS)
    return [d / WEIGHTS for d in dirs]
