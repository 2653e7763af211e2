#!/usr/bin/env bash
# Build onnxruntime-genai's int4 CPU model of Gemma 3 270M (its own model builder, 0.18.0) from
# the transformers checkpoint that exporters/gemma3/build.sh converts from the GGUF, into
# .cache/bench/genai-gemma3-int4 (cached), plus an mmrt bundle manifest over the very same
# model.onnx (.cache/bench/genai-gemma3-int4/bundle.json), so both runtimes run one file.
# benches/peers/genai_build.py shows the builder Gemma 3's rope settings in the form it reads.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
py=".cache/venv-exporters/bin/python"
hf=".cache/models/gemma3-270m-hf"
out=".cache/bench/genai-gemma3-int4"
[[ -f "$hf/config.json" ]] || bash exporters/gemma3/build.sh
"$py" -c "import onnxruntime_genai" 2>/dev/null || "$py" -m pip install --no-cache-dir -q -r benches/peers/requirements.txt
if [[ ! -f "$out/model.onnx" ]]; then
  CUDA_VISIBLE_DEVICES="" "$py" benches/peers/genai_build.py "$hf" "$out" int4 >&2
fi
"$py" benches/peers/genai_manifest.py "$out"
echo "$out"
