"""Write ``models/terrain``: the package's consistency-model graph, copied as it ships, with a
``consistency_generator`` manifest (``src/manifest/consistency.rs``).

    python -m exporters.terrain.bundle [--out models/terrain]

Every number of the manifest comes from the package's ``TerrainGenerator`` class attributes
(``sigma_min``, ``sigma_max``, ``native_size``, ``num_classes``, ``asinh_scale``,
``height_range``, ``sampling_steps``) except two the package has no use for: ``rho`` (it samples
one step only; 7 is Karras et al.'s and Song et al.'s) and the default difficulty (it draws a
random one by default; mmrt's default is a fixed 50 so a run without flags is reproducible).
The graph takes the difficulty as ``(d - 1) / (num_classes - 1)``, as ``_difficulty_labels`` computes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort

from ..common import manifest as mf
from ..common.files import link_or_copy
from ..common.paths import MODELS
from . import package

OUT = MODELS / "terrain"
GRAPH_FILE = "terrain_consistency_unet_difficulty100.onnx"
#: Karras schedule exponent for multistep sampling (not in the package: see the module docs).
RHO = 7.0
#: mmrt's default difficulty (the package's default is a random one).
DEFAULT_DIFFICULTY = 50
STAGE = "terrain"

DESCRIPTION = (
    "Terrain height fields (128x128) from the consistency-model UNet of PyPI adaptive-terrain-diffusion 0.4.2 "
    "(MIT), conditioned on a difficulty 1..100; one-step sampling as the package's TerrainGenerator, "
    "multistep consistency sampling (Song et al. 2023, Algorithm 1) over Karras noise levels."
)


def check_graph(path: Path, size: int) -> None:
    """The graph's declared I/O is what the manifest will name (onnxruntime reads the declaration)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.shape, i.type) for i in session.get_inputs()}
    outputs = {o.name: (o.shape, o.type) for o in session.get_outputs()}
    want_in = {"noisy": (["batch", 1, size, size], "tensor(float)"), "sigma": (["batch"], "tensor(float)"),
               "difficulty": (["batch"], "tensor(float)")}
    want_out = {"denoised": (["batch", 1, size, size], "tensor(float)")}
    if inputs != want_in or outputs != want_out:
        raise RuntimeError(f"{path}: declared inputs {inputs} / outputs {outputs}, expected {want_in} / {want_out}")


def stage(gen) -> mf.ConsistencyGenerator:
    """The manifest stage, its numbers read from the package's generator class ``gen``."""
    size = int(gen.native_size)
    return mf.ConsistencyGenerator(
        name=STAGE,
        graph=GRAPH_FILE,
        inputs=mf.ConsistencyInputs(sample="noisy", sigma="sigma", condition="difficulty"),
        output="denoised",
        sample_shape=[1, size, size],
        sigma_min=gen.sigma_min,
        sigma_max=gen.sigma_max,
        rho=RHO,
        steps=gen.sampling_steps,
        condition=mf.ScalarCondition(name="difficulty", default=DEFAULT_DIFFICULTY, min=1, max=gen.num_classes,
                                     offset=1.0, divisor=gen.num_classes - 1),
        output_transform=mf.HeightMapTransform(value_range=(-1.0, 1.0), asinh_scale=gen.asinh_scale,
                                               height_range=gen.height_range, zero_floor=True),
    )


def write(out: Path) -> Path:
    """Copy the graph into ``out`` and write its bundle.json."""
    gen = package.terrain_generator()
    src = package.graph_path()
    check_graph(src, int(gen.native_size))
    out.mkdir(parents=True, exist_ok=True)
    link_or_copy(src, out / GRAPH_FILE)
    # A standalone generator bundle has no tokenizer, prompt or generation block: None leaves a
    # key out (``Node.to_dict``), and the runtime's defaults apply.
    manifest = mf.Manifest(name="terrain", description=DESCRIPTION, tokenizer=None, stages=[stage(gen)],
                           prompt=None, generation=None)
    return manifest.write(out, [GRAPH_FILE])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    print(f"wrote {write(args.out)}")


if __name__ == "__main__":
    main()
