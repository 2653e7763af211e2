#!/usr/bin/env bash
# Regenerate the tiny test bundle (models/tiny), its float16 twin (models/tiny-f16),
# its golden outputs (tests/golden/tiny.json, any_to_any.json, tiny_audio.json), fixture
# images (tests/fixtures/images) and the synthesized audio fixture (tests/fixtures/audio/sweep_16k.wav)
# deterministically, then verify the ONNX graphs against PyTorch with onnxruntime.
# Then the video twin models/tiny-video (built, not committed) and tests/golden/tiny_video.json
# (exporters/tiny/video.py; skipped when its stamp matches models/tiny and the sources).
# Usage: exporters/tiny/build.sh [--verify-only]   (from anywhere)
#        exporters/tiny/build.sh --video [--force]  (models/tiny-video only, from the committed models/tiny: cheap, for CI)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
# Single-threaded, deterministic PyTorch / onnxruntime math.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES=""
py="${repo_root}/.cache/venv-exporters/bin/python"
if [[ "${1:-}" == "--video" ]]; then
    shift
    exec "${py}" -m exporters.tiny.video "$@"
fi
"${py}" -m exporters.tiny.llava "$@"
if [[ " $* " == *" --verify-only "* ]]; then
    exec "${py}" -m exporters.tiny.video --verify-only
fi
exec "${py}" -m exporters.tiny.video
