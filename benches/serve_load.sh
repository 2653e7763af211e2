#!/usr/bin/env bash
# `mmrt serve` under load, release build: the phases of tests/server_load.rs
# (500 chat requests at concurrency 16 on models/tiny, 50 at 4 on SmolLM2 Q4_1,
# 100 clients hanging up mid-stream) through tests/server/load.py (the official
# openai client, AsyncOpenAI), one JSON line per phase: p50/p95/p99 latency,
# tokens/s, RSS after the checkpoint and at the end. Run on a quiet machine.
# Usage: benches/serve_load.sh [THREADS]   (needs .ci/run's bundles and exporters/setup.sh's venv)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${1:-1}"
bin=target/release/mmrt
cargo build --release -p mmrt-cli
python=.cache/venv-exporters/bin/python
log=$(mktemp)
"${bin}" serve --port 0 --api-key bench --queue-depth 64 --threads "${threads}" \
    --model tiny=models/tiny --model smol=models/smollm2-135m 2>"${log}" &
server=$!
trap 'kill ${server} 2>/dev/null; rm -f "${log}"' EXIT
for _ in $(seq 600); do grep -q "listening on" "${log}" && break; sleep 0.1; done
base=$(grep -o "http://[0-9.:]*" "${log}" | head -1)
common=(--base "${base}" --key bench --pid "${server}")
"${python}" tests/server/load.py load "${common[@]}" --model tiny --requests 500 --concurrency 16 --max-tokens 16
"${python}" tests/server/load.py load "${common[@]}" --model smol --requests 50 --concurrency 4 --max-tokens 32 --rss-checkpoint 10
"${python}" tests/server/load.py disconnect "${common[@]}" --model tiny --clients 100 --concurrency 16 --max-tokens 100
