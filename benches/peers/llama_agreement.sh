#!/usr/bin/env bash
# llama.cpp's own quantization quality on a GGUF, the bar for mmrt's GGUF-faithful bundles:
# llama-perplexity --kl-divergence of the quantized GGUF against an F32 GGUF of the very same
# weights (llama-quantize --allow-requantize ... F32), on the text `python -m exporters.gguf SOURCE
# --agree` uses (the Python reference manual, pydoc_data.topics), 512-token chunks, 2 threads.
# llama-perplexity scores the second half of each chunk; mmrt's --agree scores every position.
#   bash benches/peers/llama_agreement.sh SOURCE [CHUNKS]    (SOURCE: smollm2, qwen2.5-coder, gemma3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
source_name="${1:?usage: llama_agreement.sh SOURCE [CHUNKS]}"
chunks="${2:-10}"
py=".cache/venv-exporters/bin/python"
bin="$(dirname "$(bash benches/peers/build_llama_cpp.sh)")"
gguf="$("$py" -m exporters.gguf.fetch "$source_name")"
work=".cache/bench/agreement"
mkdir -p "$work"
text="$work/pydoc_topics.txt"
[[ -f "$text" ]] || "$py" -c 'import sys; from pydoc_data.topics import topics; open(sys.argv[1], "w").write("\n\n".join(topics[k] for k in sorted(topics)))' "$text"
f32="$work/$(basename "${gguf%.gguf}").F32.gguf"
[[ -f "$f32" ]] || "$bin/llama-quantize" --allow-requantize "$gguf" "$f32" F32 >&2
base="$work/$(basename "${gguf%.gguf}").c512x${chunks}.kld"
common=(-f "$text" -c 512 --chunks "$chunks" -t 2 -b 512)
[[ -f "$base" ]] || "$bin/llama-perplexity" -m "$f32" "${common[@]}" --kl-divergence-base "$base" >&2 2>"$work/base.log"
"$bin/llama-perplexity" -m "$gguf" "${common[@]}" --kl-divergence-base "$base" --kl-divergence 2>&1 \
  | tee "$work/$(basename "${gguf%.gguf}").kld.log" | grep -E "Same top p|Mean +KLD|Mean +PPL|KL divergence statistics" || true
