"""Write ``bundle.json`` (manifest v1) with sha256 checksums of the bundle files.

The Rust side parses the manifest with ``deny_unknown_fields``: keys here must
match its serde structs exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT = "mmrt.bundle"
VERSION = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(bundle_dir: Path, manifest: dict, checksum_files: list[str]) -> Path:
    """Add ``format``/``version`` and ``checksums`` to ``manifest``, write bundle.json."""
    full = {"format": FORMAT, "version": VERSION, **manifest}
    full["checksums"] = {name: sha256_file(bundle_dir / name) for name in checksum_files}
    path = bundle_dir / "bundle.json"
    path.write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n")
    return path
