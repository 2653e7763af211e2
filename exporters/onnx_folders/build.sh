#!/usr/bin/env bash
# Build ONNX model folders exactly as other tools write them, from the SmolLM2-135M-Instruct
# transformers checkpoint (python -m exporters.gguf smollm2), into $MMRT_ONNX_FOLDERS
# (default .cache/onnx-folders/), cached: a folder whose .build-stamp matches the scripts is kept.
#   genai-int4/  onnxruntime-genai 0.18.0's model builder, int4 CPU (genai_config.json, model.onnx)
#   optimum/     optimum-onnx 0.1.0's export (task text-generation-with-past) laid out as
#                transformers.js repositories are (config.json, tokenizer.json, onnx/model.onnx),
#                plus onnx/model_quantized.onnx (onnxruntime's dynamic int8 quantization) and
#                onnx/model_fp16.onnx (float16 throughout, KV cache and logits included)
# With --goldens, then the greedy references of onnxruntime-genai's Generator and of an
# onnxruntime-in-Python loop into tests/golden/onnx_folders.json (never mmrt's output).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
py=".cache/venv-exporters/bin/python"
out="${MMRT_ONNX_FOLDERS:-.cache/onnx-folders}"
hf=".cache/models/SmolLM2-135M-Instruct.Q4_1-hf"
stamp="$(cat exporters/onnx_folders/build.sh exporters/onnx_folders/optimum_export.py \
  exporters/onnx_folders/requirements-optimum.txt benches/peers/genai_build.py benches/peers/requirements.txt | sha256sum | cut -d' ' -f1)"
fresh() { [[ "$(cat "$1/.build-stamp" 2>/dev/null)" == "$stamp" ]]; }
bash exporters/setup.sh
[[ -f "$hf/config.json" ]] || "$py" -m exporters.gguf smollm2 --goldens "$(mktemp)"
mkdir -p "$out"
if ! fresh "$out/genai-int4"; then
  "$py" -c "import onnxruntime_genai" 2>/dev/null || "$py" -m pip install --disable-pip-version-check --no-cache-dir -q -r benches/peers/requirements.txt
  rm -rf "$out/genai-int4" "$out/genai-int4.build-cache"
  # genai_build.py: the builder with transformers 5.x configs (a null quantization_config)
  CUDA_VISIBLE_DEVICES="" "$py" benches/peers/genai_build.py "$hf" "$out/genai-int4" int4 >&2
  rm -rf "$out/genai-int4.build-cache"
  echo "$stamp" > "$out/genai-int4/.build-stamp"
fi
if ! fresh "$out/optimum"; then
  bash exporters/onnx_folders/setup_optimum.sh
  rm -rf "$out/optimum" "$out/optimum.export" "$out/optimum.hf4"
  CUDA_VISIBLE_DEVICES="" .cache/venv-optimum/bin/python -m exporters.onnx_folders.optimum_export "$hf" "$out/optimum" >&2
  echo "$stamp" > "$out/optimum/.build-stamp"
fi
if [[ "${1:-}" == "--goldens" ]]; then
  "$py" -m exporters.onnx_folders.goldens "$out" tests/golden/onnx_folders.json
fi
echo "$out"
