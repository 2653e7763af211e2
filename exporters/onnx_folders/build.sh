#!/usr/bin/env bash
# Build ONNX model folders exactly as other tools write them, from the SmolLM2-135M-Instruct
# transformers checkpoint (python -m exporters.gguf smollm2), into .cache/onnx-folders/ (cached):
#   genai-int4/      onnxruntime-genai 0.18.0's model builder, int4 CPU (genai_config.json, model.onnx)
#   optimum/         optimum-onnx 0.1.0's `optimum-cli export onnx --task text-generation-with-past`
#                    laid out as transformers.js does (config.json, tokenizer.json, onnx/model.onnx),
#                    plus onnx/model_quantized.onnx (onnxruntime's dynamic int8 quantization)
# then (with --goldens) the greedy references of onnxruntime-genai's Generator and of an
# onnxruntime-in-Python loop into tests/golden/onnx_folders.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
py=".cache/venv-exporters/bin/python"
out=".cache/onnx-folders"
hf=".cache/models/SmolLM2-135M-Instruct.Q4_1-hf"
bash exporters/setup.sh
[[ -f "$hf/config.json" ]] || "$py" -m exporters.gguf smollm2 --goldens "$(mktemp)"
"$py" -c "import onnxruntime_genai" 2>/dev/null || "$py" -m pip install --disable-pip-version-check --no-cache-dir -q -r benches/peers/requirements.txt
mkdir -p "$out"
for precision in int4; do
  d="$out/genai-$precision"
  if [[ ! -f "$d/genai_config.json" ]]; then
    rm -rf "$d" "$d.build-cache"
    # genai_build.py: the builder with transformers 5.x configs (a null quantization_config)
    CUDA_VISIBLE_DEVICES="" "$py" benches/peers/genai_build.py "$hf" "$d" "$precision" >&2
    rm -rf "$d.build-cache"
  fi
done
if [[ ! -f "$out/optimum/onnx/model_quantized.onnx" ]]; then
  bash exporters/onnx_folders/setup_optimum.sh
  rm -rf "$out/optimum" "$out/optimum.export"
  CUDA_VISIBLE_DEVICES="" .cache/venv-optimum/bin/python -m exporters.onnx_folders.optimum_export "$hf" "$out/optimum" >&2
fi
if [[ "${1:-}" == "--goldens" ]]; then
  "$py" -m exporters.onnx_folders.goldens "$out" tests/golden/onnx_folders.json
fi
echo "$out"
