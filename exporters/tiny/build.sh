#!/usr/bin/env bash
# Regenerate the tiny test bundle (models/tiny), its float16 twin (models/tiny-f16),
# its golden outputs (tests/golden/tiny.json, any_to_any.json, tiny_audio.json), fixture
# images (tests/fixtures/images) and the synthesized audio fixture (tests/fixtures/audio/sweep_16k.wav)
# deterministically, then verify the ONNX graphs against PyTorch with onnxruntime.
# Usage: exporters/tiny/build.sh [--verify-only]   (from anywhere)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
# Single-threaded, deterministic PyTorch / onnxruntime math.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES=""
exec "${repo_root}/.cache/venv-exporters/bin/python" -m exporters.tiny.llava "$@"
