"""Derive the float16 twin of a float32 bundle (``models/tiny`` -> ``models/tiny-f16``).

Every graph is converted with onnxruntime's
``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=False)``:
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

:func:`verify` runs the float16 bundle with :class:`~exporters.ort_pipeline.OrtPipeline`
and checks it against the PyTorch goldens and the float32 bundle within the
tolerances below (float16 has an 11-bit significand: relative rounding 2^-11 ≈ 4.9e-4
per operation, accumulated over the vision tower, projector and decoder layers).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from . import bundle
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
OUTPUT_SIDE = ("output_projector", "modality_generator")


def convert_graph(src: Path, dst: Path) -> onnx.ModelProto:
    """Convert one float32 graph to float16, float inputs/outputs included."""
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False)
    onnx.checker.check_model(model, full_check=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=False)
    return model


def f16_manifest(manifest: dict) -> dict:
    """The float16 bundle's manifest body (without format, version and checksums)."""
    body = {k: v for k, v in json.loads(json.dumps(manifest)).items() if k not in ("format", "version", "checksums")}
    body["name"] = f"{manifest['name']}-f16"
    body["stages"] = [s for s in body["stages"] if s["kind"] not in OUTPUT_SIDE and s.get("modality") != "audio"]
    for table in ("placeholders", "media_token_ids"):
        body["prompt"][table].pop("audio", None)
    for stage in body["stages"]:
        if stage["kind"] == "modality_encoder" and stage["preprocess"].get("type") == "image":
            stage["preprocess"]["dtype"] = "float16"
    return body


def graph_files(manifest: dict) -> list[str]:
    """Every ONNX graph path a manifest names, in stage order."""
    graphs = []
    for stage in manifest["stages"]:
        if "embedding" in stage:
            graphs.append(stage["embedding"]["graph"])
        graphs.append(stage["graph"])
    return graphs


def export_f16(src_dir: Path, dst_dir: Path) -> list[str]:
    """Write the float16 twin of the bundle in ``src_dir`` into ``dst_dir``; returns the files written."""
    manifest = json.loads((src_dir / "bundle.json").read_text())
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_dir / manifest["tokenizer"], dst_dir / manifest["tokenizer"])
    body = f16_manifest(manifest)
    graphs = graph_files(body)
    for graph in graphs:
        convert_graph(src_dir / graph, dst_dir / graph)
    files = [manifest["tokenizer"], *graphs]
    bundle.write_manifest(dst_dir, body, files)
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


def check_io_types(bundle_dir: Path) -> str:
    """Assert every float graph input/output of the bundle is float16; returns a report line."""
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    count = 0
    for graph in graph_files(manifest):
        model = onnx.load(str(bundle_dir / graph), load_external_data=False)
        for value in [*model.graph.input, *model.graph.output]:
            elem = value.type.tensor_type.elem_type
            assert elem != onnx.TensorProto.FLOAT, f"{graph}: {value.name} is still float32"
            count += elem == onnx.TensorProto.FLOAT16
    return f"float16 inputs/outputs: {count} (no float32 left)"


def print_report(bundle_dir: Path, lines: list[str]) -> None:
    """Sizes of the bundle's files, then the verification lines."""
    print(f"bundle {bundle_dir}:")
    for path in sorted(bundle_dir.iterdir()):
        print(f"  {path.name:22s} {path.stat().st_size:>9,d} bytes")
    print("float16 bundle (onnxruntime) vs PyTorch goldens and the float32 bundle:")
    for line in lines:
        print(f"  {line}")
