#!/usr/bin/env bash
# Decode speed side by side at N threads (default 2): mmrt on models/gemma3-270m-q4 vs llama.cpp's
# llama-bench on the same GGUF, interleaved R times (default 5); prints each run and the medians.
# llama.cpp is built from the llama-cpp-python 0.3.36 sdist's vendored source:
#   python3 -m venv .cache/bench/venv && .cache/bench/venv/bin/pip install cmake ninja
#   .cache/bench/venv/bin/pip download --no-deps --no-binary=llama-cpp-python llama-cpp-python==0.3.36 -d .cache/bench
#   tar xzf .cache/bench/llama_cpp_python-0.3.36.tar.gz -C .cache/bench && cd .cache/bench/llama_cpp_python-0.3.36/vendor/llama.cpp
#   PATH=../../../venv/bin:$PATH cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
#       -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF && cmake --build build --target llama-bench
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads="${1:-2}"; runs="${2:-5}"; tokens=64
gguf=".cache/gguf-pkgs/gemma-3-270m-q4_k_m.gguf"
llama_bench="$(ls .cache/bench/llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-bench 2>/dev/null | head -1 || true)"
mmrt=(./target/release/mmrt run --bundle models/gemma3-270m-q4 --prompt "Once upon a time, in a small village by the sea," \
      --max-tokens "$tokens" --threads "$threads" --json)
cargo build --release --quiet
py=".cache/venv-exporters/bin/python"
m=(); l=()
for i in $(seq "$runs"); do
  v=$("${mmrt[@]}" 2>/dev/null | "$py" -c "import json,sys; print(round(json.load(sys.stdin)['decode_tokens_per_s'], 2))")
  m+=("$v"); echo "run $i mmrt q4: $v tok/s"
  if [[ -n "$llama_bench" ]]; then
    v=$("$llama_bench" -m "$gguf" -p 0 -n "$tokens" -t "$threads" -r 1 -o json 2>/dev/null \
        | "$py" -c "import json,sys; print(round(json.load(sys.stdin)[0]['avg_ts'], 2))")
    l+=("$v"); echo "run $i llama.cpp: $v tok/s"
  fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median decode tok/s at $threads threads over $runs runs: mmrt q4 $(median "${m[@]}")"
[[ ${#l[@]} -gt 0 ]] && echo "median decode tok/s at $threads threads over $runs runs: llama.cpp $(median "${l[@]}")" || echo "llama.cpp: llama-bench not built (see the header of this script)"
