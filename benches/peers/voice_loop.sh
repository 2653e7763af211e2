#!/usr/bin/env bash
# The voice loop on real models, measured: three questions spoken by espeak-ng,
# `mmrt assist` (Whisper base -> SmolLM2-135M f32 with its chat template -> Piper joe),
# 2 threads, release build. Prints one JSON line per question (question, answer,
# recognition, first token, time to first audio, total, TTS real-time factor, peak RSS)
# and TTS alone on a 3-sentence text.
# Usage: benches/peers/voice_loop.sh [OUT_DIR]   (needs the bundles built by .ci/run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${1:-/tmp/mmrt-voice-loop}"
mkdir -p "${out}"
bin=target/release/mmrt
[[ -x "${bin}" ]] || cargo build --release -p mmrt-cli
questions=("What is the capital of France?" "Name three colors of the rainbow." "Why is the sky blue?")
for i in "${!questions[@]}"; do
    espeak-ng -w "${out}/q${i}.wav" "${questions[$i]}"
    "${bin}" assist --audio "${out}/q${i}.wav" --out "${out}/a${i}.wav" --threads 2 --max-tokens 64 --json
done
text="The weather today will be sunny with a high of 75 degrees. Your next meeting starts in fifteen minutes. I have added milk and eggs to your shopping list."
"${bin}" run --bundle models/piper-joe --prompt "${text}" --out-dir "${out}/tts" --threads 2 --json
