#!/usr/bin/env bash
# Build llama.cpp's llama-bench, llama-perplexity (--kl-divergence), llama-quantize and
# llama-completion (whole generations with a sampler, for sampled_peers.py) from the
# source vendored in the PyPI sdist of llama-cpp-python (the only way to get llama.cpp here: no
# binary downloads), into .cache/bench (cached). Prints the llama-bench path; the others are beside it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root/.cache" 2>/dev/null || { mkdir -p "$root/.cache" && cd "$root/.cache"; }
mkdir -p bench && cd bench
version=0.3.36
bin=llama_cpp_python-${version}/vendor/llama.cpp/build/bin
if ls ${bin}/llama-bench ${bin}/llama-perplexity ${bin}/llama-quantize ${bin}/llama-completion >/dev/null 2>&1; then
  echo "$(pwd)/llama_cpp_python-${version}/vendor/llama.cpp/build/bin/llama-bench"; exit 0
fi
[[ -x venv/bin/cmake ]] || { python3 -m venv venv && venv/bin/pip install --no-cache-dir -q cmake ninja; }
[[ -f llama_cpp_python-${version}.tar.gz ]] || venv/bin/pip download --no-deps --no-binary=llama-cpp-python "llama-cpp-python==${version}" -d .
[[ -d llama_cpp_python-${version} ]] || tar xzf llama_cpp_python-${version}.tar.gz
cd llama_cpp_python-${version}/vendor/llama.cpp
# AMX off: CPUs that list amx_* flags in a VM may still fault on tile instructions (SIGILL in
# ggml's AMX matmul, seen here); mmrt uses no AMX either, so the comparison stays like for like.
PATH="$root/.cache/bench/venv/bin:$PATH" cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
PATH="$root/.cache/bench/venv/bin:$PATH" cmake --build build --target llama-bench llama-perplexity llama-quantize llama-completion >&2
echo "$(pwd)/build/bin/llama-bench"
