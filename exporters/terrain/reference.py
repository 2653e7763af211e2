"""Parity data for ``tests/terrain_generator.rs``, written to ``models/terrain/reference/``:

* one-step cases: the package's own output, ``TerrainGenerator.generate(1, seed=s, difficulty=d,
  zero_floor=True)``, with the exact noise it drew (``generate`` calls ``default_rng(seed)``;
  ``_difficulty_labels`` draws nothing when a difficulty is given; ``_sample_native`` then draws
  ``standard_normal((1, 1, 128, 128), dtype=float32)``). That the noise is the one it drew is
  checked here: one step of :func:`consistency_sample` from it must give ``generate``'s output bit for bit.
* multistep cases (3 and 4 steps): **mmrt's reference implementation** of multistep consistency
  sampling (Song et al. 2023, Algorithm 1, with the noise levels of ``src/diffusion/consistency.rs``)
  in numpy, calling the package's own onnxruntime session (``_denoise``) and its own transform
  (``_resize_output``, which at 128x128 is ``_from_model_space`` plus ``zero_floor``). The package
  has no multistep sampler (it refuses ``sampling_steps != 1``), so these are not the package's numbers.

Files are raw float32, little-endian, C order: ``<case>.noise.f32`` (``steps x 1 x 128 x 128``: step
after step) and ``<case>.heights.f32`` (``128 x 128``); ``index.json`` lists the cases.

    python -m exporters.terrain.reference [--out models/terrain/reference]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import bundle, package

OUT = bundle.OUT / "reference"
#: (seed, difficulty) of the package's one-step runs: both ends of the range and two inside it.
ONE_STEP = [(0, 1), (1, 50), (2, 100), (42, 73)]
#: (seed, difficulty, steps) of the multistep references.
MULTISTEP = [(5, 30, 3), (6, 90, 4)]


def karras_levels(steps: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """The first ``steps`` of ``steps + 1`` Karras points from ``sigma_max`` to ``sigma_min`` (f64):
    the last point, ``sigma_min``, is where sampling ends (f is the identity there), not a call."""
    ramp = np.arange(steps, dtype=np.float64) / steps
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    levels = (hi + ramp * (lo - hi)) ** rho
    levels[0] = sigma_max
    return levels


def consistency_sample(gen, noise: np.ndarray, levels: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Algorithm 1 over ``levels`` with ``noise`` ``[steps, 1, 1, H, W]``; returns the model-space sample.
    Scales are rounded to f32 once and the updates done in f32, as the package's one-step sampler does."""
    sigma_min = float(gen.sigma_min)
    x = noise[0] * np.float32(levels[0])
    x = gen._denoise(x, np.full(1, levels[0], dtype=np.float32), label)
    for i in range(1, len(levels)):
        scale = np.float32(np.sqrt(levels[i] * levels[i] - sigma_min * sigma_min))
        x = x + scale * noise[i]
        x = gen._denoise(x, np.full(1, levels[i], dtype=np.float32), label)
    return x


def label_of(gen, difficulty: int) -> np.ndarray:
    labels, _ = gen._difficulty_labels(difficulty, 1, np.random.default_rng(0))
    return labels


def one_step_case(gen, seed: int, difficulty: int) -> tuple[dict, np.ndarray, np.ndarray]:
    size = gen.native_size
    heights = gen.generate(1, seed=seed, difficulty=difficulty, zero_floor=True)
    noise = np.random.default_rng(seed).standard_normal((1, 1, 1, size, size), dtype=np.float32)
    levels = karras_levels(1, gen.sigma_min, gen.sigma_max, bundle.RHO)
    mine = gen._resize_output(consistency_sample(gen, noise, levels, label_of(gen, difficulty)), (size, size), zero_floor=True)
    if not np.array_equal(mine, heights):
        raise RuntimeError(f"seed {seed}: one step from the reproduced noise differs from generate() "
                           f"(max abs {np.abs(mine - heights).max()}): the noise is not the one the package drew")
    case = {"source": f"package: TerrainGenerator.generate(1, seed={seed}, difficulty={difficulty}, zero_floor=True)"}
    return case, noise, heights[0]


def multistep_case(gen, seed: int, difficulty: int, steps: int) -> tuple[dict, np.ndarray, np.ndarray]:
    size = gen.native_size
    noise = np.random.default_rng(seed).standard_normal((steps, 1, 1, size, size), dtype=np.float32)
    levels = karras_levels(steps, gen.sigma_min, gen.sigma_max, bundle.RHO)
    sample = consistency_sample(gen, noise, levels, label_of(gen, difficulty))
    heights = gen._resize_output(sample, (size, size), zero_floor=True)
    case = {"source": "mmrt reference implementation of Algorithm 1 (numpy over the package's onnxruntime session "
                      "and transform; the package has no multistep sampler)"}
    return case, noise, heights[0]


def write(out: Path) -> Path:
    gen = package.terrain_generator()(device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    runs = [(s, d, 1, one_step_case) for s, d in ONE_STEP] + [(s, d, n, multistep_case) for s, d, n in MULTISTEP]
    for seed, difficulty, steps, make in runs:
        name = f"steps{steps}-seed{seed}-difficulty{difficulty}"
        args = (gen, seed, difficulty) if steps == 1 else (gen, seed, difficulty, steps)
        case, noise, heights = make(*args)
        noise.astype("<f4").tofile(out / f"{name}.noise.f32")
        heights.astype("<f4").tofile(out / f"{name}.heights.f32")
        levels = karras_levels(steps, gen.sigma_min, gen.sigma_max, bundle.RHO)
        cases.append({"name": name, "seed": seed, "difficulty": difficulty, "steps": steps,
                      "sigmas": [float(v) for v in levels], **case,
                      "noise": f"{name}.noise.f32", "heights": f"{name}.heights.f32"})
        print(f"{name}: heights {heights.min():.4f}..{heights.max():.4f}")
    index = {
        "package": f"{package.PACKAGE}=={package.VERSION}",
        "format": "raw float32, little-endian, C order",
        "noise_shape": ["steps", 1, gen.native_size, gen.native_size],
        "heights_shape": [gen.native_size, gen.native_size],
        "cases": cases,
    }
    path = out / "index.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    print(f"wrote {write(args.out)}")


if __name__ == "__main__":
    main()
