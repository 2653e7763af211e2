"""Precompute the frozen encoder's features of generated images once (onnxruntime),
cached in ``.cache/vlm/features/{split}-{chunk}.npz`` (chunks of 200 images) so
projector training never runs the ViT.

    python -m exporters.vlm_shapes.features train 1600
    python -m exporters.vlm_shapes.features val 256
"""

from __future__ import annotations

import sys

import numpy as np

from ..common.paths import CACHE
from .data import example, pixels
from .encoder import INPUT, OUTPUT

VLM = CACHE / "vlm"
FEATURES = VLM / "features"
CHUNK = 200


def encoder_session(threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(VLM / "vision_encoder.onnx"), so, providers=["CPUExecutionProvider"])


def encode(session, images) -> np.ndarray:
    x = np.stack([pixels(im) for im in images])
    return session.run([OUTPUT], {INPUT: x})[0]


def compute(split: str, n: int) -> None:
    FEATURES.mkdir(parents=True, exist_ok=True)
    session = encoder_session()
    for start in range(0, n, CHUNK):
        path = FEATURES / f"{split}-{start // CHUNK:04d}.npz"
        if path.exists():
            continue
        idx = list(range(start, min(start + CHUNK, n)))
        feats = [encode(session, [example(split, i)[0] for i in idx[b:b + 20]]) for b in range(0, len(idx), 20)]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, index=np.asarray(idx), features=np.concatenate(feats).astype(np.float32))
        tmp.rename(path)
        print(f"{path.name}: {len(idx)} images", flush=True)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices, features [n,17,384]) of every cached chunk of ``split``."""
    parts = [np.load(p) for p in sorted(FEATURES.glob(f"{split}-[0-9][0-9][0-9][0-9].npz"))]
    if not parts:
        raise FileNotFoundError(f"no cached features for {split} in {FEATURES}; run python -m exporters.vlm_shapes.features")
    return np.concatenate([p["index"] for p in parts]), np.concatenate([p["features"] for p in parts])


if __name__ == "__main__":
    compute(sys.argv[1], int(sys.argv[2]))
