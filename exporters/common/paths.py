"""Folders of the repository, independent of the working directory."""

from __future__ import annotations

from pathlib import Path

#: The repository root (``exporters/common/paths.py`` -> two levels up from ``exporters/``).
ROOT = Path(__file__).resolve().parents[2]
#: Built bundles (``models/<name>``).
MODELS = ROOT / "models"
#: Downloads, virtual environments and scratch files (ignored by git).
CACHE = ROOT / ".cache"
