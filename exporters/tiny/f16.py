"""Derive the float16 twin of a float32 bundle (``models/tiny`` -> ``models/tiny-f16``).

Every graph is converted by :func:`exporters.common.fp16.convert_graph`:
weights, computation *and* the float inputs/outputs become float16
(``pixel_values``, ``image_features``, ``image_embeds``, ``inputs_embeds``,
``logits``, ``past_key_values.*``, ``present.*``); integer inputs
(``input_ids``, ``attention_mask``, ``position_ids``) stay int64. The bundle
exercises the runtime's "feed each graph the element type it declares" path.

The manifest is the float32 one with ``name`` = ``<name>-f16`` and the image
``preprocess.dtype`` = ``float16``, without the audio branch (its encoder, projector
and prompt entries) and the output side (``output_projector``
and ``modality_generator`` stages: the f16 twin exercises the text and image path; the
decoder still returns its last hidden state, in float16); ``tokenizer.json`` is copied byte for byte
and checksums are recomputed. The conversion is a pure function of the float32
graphs, so the output is deterministic.

:func:`verify` runs the float16 bundle with :class:`~exporters.tiny.ort_pipeline.OrtPipeline`
and checks it against the PyTorch goldens and the float32 bundle within the
tolerances below (float16 has an 11-bit significand: relative rounding 2^-11 ≈ 4.9e-4
per operation, accumulated over the vision tower, projector and decoder layers).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from ..common.fp16 import check_io_types, convert_graph
from ..common.manifest import ImagePreprocess, Manifest, ModalityEncoder, ModalityGenerator, OutputProjector
from .ort_pipeline import OrtPipeline

# Tolerances, from the errors measured on the tiny bundle (onnxruntime 1.31.1 CPU)
# with a ~3x margin. Projected image embeddings vs PyTorch: max abs 4.8e-3 / 7.8e-3
# (a_32 / b_32), i.e. 9.4e-4 / 6.7e-4 of the embeddings' max magnitude (5.1 / 11.5,
# where one float16 ulp is 2^-8 / 2^-7 = 3.9e-3 / 7.8e-3).
EMBED_ATOL = 2.5e-2
EMBED_RTOL = 3e-3  # max|f16 - torch| / max|torch|
# Prefill logits (last prompt position), float16 vs float32 bundle: max abs
# 4.4e-3 / 5.5e-3 / 6.8e-3 (text_only / one_image / two_images; logits up to ~6.6),
# 1 - cosine ~1e-6. The smallest top-1/top-2 margin is 0.025 (two_images), so
# the argmax (first greedy token) is robust.
LOGITS_ATOL = 2e-2
LOGITS_MIN_COSINE = 0.9999


#: Stage kinds left out of the float16 twin.
OUTPUT_SIDE = (OutputProjector, ModalityGenerator)


def f16_manifest(manifest: Manifest) -> Manifest:
    """The float16 bundle's manifest."""
    stages = []
    for stage in manifest.stages:
        if isinstance(stage, OUTPUT_SIDE) or getattr(stage, "modality", None) == "audio":
            continue
        if isinstance(stage, ModalityEncoder) and isinstance(stage.preprocess, ImagePreprocess):
            stage = dataclasses.replace(stage, preprocess=dataclasses.replace(stage.preprocess, dtype="float16"))
        stages.append(stage)
    without_audio = lambda table: {k: v for k, v in table.items() if k != "audio"}
    prompt = dataclasses.replace(manifest.prompt, placeholders=without_audio(manifest.prompt.placeholders),
                                 media_token_ids=without_audio(manifest.prompt.media_token_ids))
    return dataclasses.replace(manifest, name=f"{manifest.name}-f16", stages=stages, prompt=prompt)


def export_f16(src_dir: Path, dst_dir: Path) -> list[str]:
    """Write the float16 twin of the bundle in ``src_dir`` into ``dst_dir``; returns the files written."""
    manifest = Manifest.read(src_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_dir / manifest.tokenizer, dst_dir / manifest.tokenizer)
    body = f16_manifest(manifest)
    graphs = body.graphs()
    for graph in graphs:
        convert_graph(src_dir / graph, dst_dir / graph)
    files = [manifest.tokenizer, *graphs]
    body.write(dst_dir, files)
    return ["bundle.json", *files]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def verify(f16_dir: Path, f32_dir: Path, golden: dict) -> list[str]:
    """Check the float16 bundle against the PyTorch goldens and the float32 bundle; returns report lines.

    Asserted: every float input/output of every graph is float16; image embeddings
    within :data:`EMBED_ATOL` / :data:`EMBED_RTOL` of PyTorch; prefill logits within
    :data:`LOGITS_ATOL` and cosine >= :data:`LOGITS_MIN_COSINE` of the float32 bundle,
    same argmax (hence the same first greedy token). Reported only: how many of the
    greedy ids equal the float32 goldens (random weights give near-tied logits, so
    float16 rounding may flip a later argmax and the continuation diverges).
    """
    lines = [check_io_types(f16_dir)]
    f16, f32 = OrtPipeline(f16_dir), OrtPipeline(f32_dir)
    for entry in golden["embeddings"]:
        got = f16.image_embeds([entry["image"]])[0]
        assert got.dtype == np.float16, f"{entry['image']}: image embeddings are {got.dtype}"
        want = np.asarray(entry["values"], dtype=np.float32).reshape(entry["shape"])
        diff = float(np.abs(got.astype(np.float32) - want).max())
        rel = diff / float(np.abs(want).max())
        assert diff <= EMBED_ATOL and rel <= EMBED_RTOL, f"{entry['image']}: f16 embeddings differ by {diff} (rel {rel})"
        lines.append(
            f"embeddings {Path(entry['image']).name}: max|f16-torch|={diff:.2e} (tol {EMBED_ATOL}), "
            f"/max|torch|={rel:.2e} (tol {EMBED_RTOL})"
        )
    for entry in golden["generate"]:
        name, n = entry["name"], entry["max_new_tokens"]
        a = f16.generate(entry["prompt"], entry["images"], n)
        b = f32.generate(entry["prompt"], entry["images"], n)
        assert a.input_ids == entry["input_ids"], f"{name}: prompt ids differ"
        diff = float(np.abs(a.prefill_logits - b.prefill_logits).max())
        cos = _cosine(a.prefill_logits, b.prefill_logits)
        assert diff <= LOGITS_ATOL and cos >= LOGITS_MIN_COSINE, f"{name}: f16 prefill logits differ by {diff}, cosine {cos}"
        assert int(a.prefill_logits.argmax()) == int(b.prefill_logits.argmax()), f"{name}: f16 prefill argmax differs"
        same = sum(x == y for x, y in zip(a.output_ids, entry["output_ids"]))
        prefix = next((i for i, (x, y) in enumerate(zip(a.output_ids, entry["output_ids"])) if x != y), len(a.output_ids))
        lines.append(
            f"generate {name}: prefill logits max|f16-f32|={diff:.2e} (tol {LOGITS_ATOL}), 1-cosine={1 - cos:.1e}; "
            f"greedy ids equal to torch: {same}/{len(entry['output_ids'])} (common prefix {prefix})"
        )
    return lines


def print_report(bundle_dir: Path, lines: list[str]) -> None:
    """Sizes of the bundle's files, then the verification lines."""
    print(f"bundle {bundle_dir}:")
    for path in sorted(bundle_dir.iterdir()):
        print(f"  {path.name:22s} {path.stat().st_size:>9,d} bytes")
    print("float16 bundle (onnxruntime) vs PyTorch goldens and the float32 bundle:")
    for line in lines:
        print(f"  {line}")
