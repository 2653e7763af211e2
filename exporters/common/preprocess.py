"""Reference image preprocessing, as described by the manifest's ``preprocess`` block
(:class:`~exporters.common.manifest.ImagePreprocess`).

This is the Python twin of the Rust ``preprocess/image.rs``; both must agree.
Steps, for one image:

1. Convert to RGB with PIL (``L`` is replicated to 3 channels; ``RGBA`` drops
   alpha without compositing, like ``Image.convert("RGB")``).
2. Resize so the shortest edge equals ``shortest_edge`` with PIL ``BICUBIC``.
   The other edge is ``round(edge * shortest_edge / shortest)`` rounded half up
   (computed exactly with integers; equal to Python's ``int(round())`` except at
   exact .5 ties, where it matches Rust's ``f64::round``). An image already at
   the target size is not resampled.
3. Center crop to ``crop.width x crop.height``: ``left = (w - cw) // 2``,
   ``top = (h - ch) // 2``.
4. ``x = (u8 * rescale_factor - mean[c]) / std[c]``, every operand float32.
5. Layout NCHW, dtype float32: result shape ``[1, 3, ch, cw]``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .manifest import CLIP_MEAN, CLIP_STD, ImagePreprocess

__all__ = ["CLIP_MEAN", "CLIP_STD", "ImagePreprocess", "preprocess_image", "preprocess_paths", "resized_size"]


def resized_size(width: int, height: int, shortest_edge: int) -> tuple[int, int]:
    """(width, height) after scaling the shortest edge to ``shortest_edge``.

    The longer edge is ``edge * shortest_edge / shortest`` rounded half up, in
    exact integer arithmetic: ``(2 * edge * shortest_edge + shortest) // (2 * shortest)``.
    """
    short = min(width, height)

    def scale(edge: int) -> int:
        return (2 * edge * shortest_edge + short) // (2 * short)

    if width <= height:
        return shortest_edge, scale(height)
    return scale(width), shortest_edge


def preprocess_image(image: Image.Image, params: ImagePreprocess) -> np.ndarray:
    """Preprocess one PIL image into float32 ``pixel_values`` of shape [1, 3, H, W]."""
    rgb = image.convert("RGB")
    size = resized_size(rgb.width, rgb.height, params.shortest_edge)
    if size != rgb.size:
        rgb = rgb.resize(size, resample=Image.Resampling.BICUBIC)
    w, h = rgb.size
    cw, ch = params.crop_width, params.crop_height
    if w < cw or h < ch:
        raise ValueError(f"image {w}x{h} is smaller than the {cw}x{ch} crop after resizing")
    left, top = (w - cw) // 2, (h - ch) // 2
    rgb = rgb.crop((left, top, left + cw, top + ch))

    u8 = np.asarray(rgb, dtype=np.uint8)  # [H, W, 3]
    x = u8.astype(np.float32) * np.float32(params.rescale_factor)
    x = (x - np.asarray(params.mean, dtype=np.float32)) / np.asarray(params.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)  # [1, 3, H, W]


def preprocess_paths(paths: list[str], params: ImagePreprocess) -> np.ndarray:
    """Preprocess image files and stack them: float32 [num_images, 3, H, W]."""
    if not paths:
        return np.zeros((0, 3, params.crop_height, params.crop_width), dtype=np.float32)
    arrays = []
    for path in paths:
        with Image.open(path) as image:
            arrays.append(preprocess_image(image, params))
    return np.concatenate(arrays, axis=0)
