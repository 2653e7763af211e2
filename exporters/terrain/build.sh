#!/usr/bin/env bash
# Build models/terrain (one command): the consistency-model UNet of PyPI adaptive-terrain-diffusion
# 0.4.2 (MIT; fetched with pip download --no-deps into .cache/terrain-pkgs, sha256-pinned, never
# installed) as a consistency_generator bundle, plus its parity data in models/terrain/reference/
# (the package's one-step outputs with the noise it drew; mmrt's numpy reference of multistep
# sampling). A bundle whose build stamp matches the exporter sources is skipped.
# Usage: exporters/terrain/build.sh [--force]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
py="${repo_root}/.cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0

dir="models/terrain"
want="$(cat exporters/requirements.txt exporters/terrain/*.py exporters/common/manifest.py \
        exporters/common/files.py exporters/common/paths.py exporters/common/wheels.py | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -f "${dir}/bundle.json" && -f "${dir}/reference/index.json" \
      && "$(cat "${dir}/.build-stamp" 2>/dev/null)" == "${want}" ]]; then
    echo "terrain/build.sh: ${dir} is up to date"
    exit 0
fi
start=$(date +%s)
rm -f "${dir}/.build-stamp"
"${py}" -m exporters.terrain.bundle --out "${dir}"
"${py}" -m exporters.terrain.reference --out "${dir}/reference"
echo "${want}" > "${dir}/.build-stamp"
echo "terrain/build.sh: built ${dir} in $(( $(date +%s) - start ))s"
