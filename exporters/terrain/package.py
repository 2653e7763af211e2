"""The ``adaptive-terrain-diffusion`` wheel: fetched with ``pip download --no-deps`` into
``.cache/terrain-pkgs/``, checked against pinned sha256s, unpacked next to it, and imported from
there (not installed: on Linux x86_64 the package requires ``onnxruntime-gpu``, which would sit
beside the pinned ``onnxruntime`` of the exporters' venv; it needs only numpy and onnxruntime).
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

from ..common.files import sha256_file
from ..common.paths import CACHE as CACHE_ROOT
from ..common.wheels import cached_wheel

PACKAGE = "adaptive-terrain-diffusion"
VERSION = "0.4.2"
WHEEL_SHA256 = "dd803be2c98d764e4e64db18c631eef46c210282b398c4dd080f4cda3fa7c84d"
#: The consistency-model graph inside the wheel, and its sha256.
GRAPH = "terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx"
GRAPH_SHA256 = "95be54b4a39d58320e187a7ec533351c957f16a00be58773c86074828ee67887"
CACHE = CACHE_ROOT / "terrain-pkgs"


def unpacked() -> Path:
    """The unpacked wheel (a folder holding ``terrain_diffusion/``), fetched and unpacked on first use."""
    dest = CACHE / f"adaptive_terrain_diffusion-{VERSION}"
    marker = dest / ".unpacked"
    if marker.is_file():
        return dest
    wheel = cached_wheel(PACKAGE, VERSION, CACHE)
    found = sha256_file(wheel)
    if found != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: sha256 {found}, expected {WHEEL_SHA256} (the pinned {PACKAGE}=={VERSION})")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(partial)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    marker.write_text(WHEEL_SHA256 + "\n")
    return dest


def graph_path() -> Path:
    """The package's ONNX graph, its sha256 checked."""
    path = unpacked() / GRAPH
    found = sha256_file(path)
    if found != GRAPH_SHA256:
        raise RuntimeError(f"{path}: sha256 {found}, expected {GRAPH_SHA256}")
    return path


def terrain_generator():
    """The package's ``TerrainGenerator`` class, imported from the unpacked wheel."""
    root = str(unpacked())
    if root not in sys.path:
        sys.path.insert(0, root)
    from terrain_diffusion.generator import TerrainGenerator

    return TerrainGenerator
