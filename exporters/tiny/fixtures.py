"""Synthesize the deterministic fixture images used by the goldens and Rust tests.

Only numpy (seeded) and PIL are used; no external images. The images mix smooth
gradients, hard-edged shapes and seeded noise so resizing and normalisation are
exercised. ``a_32`` / ``b_32`` are already 32x32 RGB, so preprocessing does
not resample them and a Rust implementation must match PIL bit-exactly there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FIXTURE_DIR = Path("tests/fixtures/images")


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates in [0, 1]: (x [H, W], y [H, W])."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return x / max(width - 1, 1), y / max(height - 1, 1)


def _to_u8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def image_a(size: int = 32) -> Image.Image:
    """RGB: diagonal colour gradient with a bright disc in the middle."""
    x, y = _grid(size, size)
    r, g, b = 255 * x, 255 * y, 255 * (1 - x) * (1 - y)
    disc = (x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.07
    rgb = np.stack([np.where(disc, 250, r), np.where(disc, 230, g), np.where(disc, 40, b)], axis=-1)
    return Image.fromarray(_to_u8(rgb), "RGB")


def image_b(size: int = 32, seed: int = 7) -> Image.Image:
    """RGB: vertical stripes with seeded noise and a dark square."""
    rng = np.random.default_rng(seed)
    x, y = _grid(size, size)
    stripes = 127.5 + 100 * np.sin(2 * np.pi * 4 * x)
    noise = rng.normal(0, 25, (size, size, 3))
    rgb = np.stack([stripes, 200 - 0.5 * stripes, 60 + 150 * y], axis=-1) + noise
    rgb[8:20, 18:28] = (20, 30, 160)
    return Image.fromarray(_to_u8(rgb), "RGB")


def image_photo(width: int = 97, height: int = 61, seed: int = 11) -> Image.Image:
    """RGB, non-square: sky gradient, a 'sun', a ground band and seeded texture."""
    rng = np.random.default_rng(seed)
    x, y = _grid(width, height)
    sky = np.stack([90 + 80 * y, 140 + 60 * y, 230 - 40 * y], axis=-1)
    ground = np.stack([60 + 40 * x, 130 + 50 * np.sin(6 * x), 50 + 0 * x], axis=-1)
    rgb = np.where((y > 0.65)[..., None], ground, sky)
    sun = (x - 0.75) ** 2 + ((y - 0.25) * height / width) ** 2 < 0.006
    rgb[sun] = (255, 220, 90)
    rgb += rng.normal(0, 8, rgb.shape)
    return Image.fromarray(_to_u8(rgb), "RGB")


def image_gray(size: int = 40) -> Image.Image:
    """Grayscale (mode L): radial gradient with a checkerboard corner."""
    x, y = _grid(size, size)
    value = 255 * np.sqrt(((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2)
    checker = ((np.arange(size)[:, None] // 5 + np.arange(size)[None, :] // 5) % 2) * 255
    value[: size // 2, : size // 2] = checker[: size // 2, : size // 2]
    return Image.fromarray(_to_u8(value), "L")


def image_rgba(width: int = 48, height: int = 32) -> Image.Image:
    """RGBA: colour bands with a horizontal alpha ramp (alpha is dropped by preprocessing)."""
    x, y = _grid(width, height)
    rgba = np.stack(
        [255 * (x < 0.33), 255 * ((x >= 0.33) & (x < 0.66)), 255 * (x >= 0.66) * (1 - y), 255 * x],
        axis=-1,
    )
    return Image.fromarray(_to_u8(rgba), "RGBA")


#: File name -> generator, in the order the goldens list them.
FIXTURES = {
    "a_32.png": image_a,
    "b_32.png": image_b,
    "photo_97x61.png": image_photo,
    "gray_40x40.png": image_gray,
    "rgba_48x32.png": image_rgba,
}


def write_fixtures(directory: Path = FIXTURE_DIR) -> list[Path]:
    """Write every fixture PNG into ``directory``; returns their paths (relative as given)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in FIXTURES.items():
        path = directory / name
        make().save(path, format="PNG", optimize=False)
        paths.append(path)
    return paths
