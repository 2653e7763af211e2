"""Decode speed greedy and sampled, mmrt against llama.cpp on the same GGUF, interleaved rounds.

llama-bench has no sampler, so both sides run as whole generations: ``mmrt run --json`` on the
GGUF-faithful bundle and llama.cpp's ``llama-completion`` on the very GGUF, the same prompt
(llm_peers.PROMPT, 89 tokens for Gemma 3), 128 new tokens, the same threads, greedy
(temperature 0) and sampled (temperature 0.8, top-k 40, top-p 0.95, seed 7). Decode tok/s
includes sampling on both sides: mmrt's ``decode_tokens_per_s`` times its decode loop (forward +
sampling), llama.cpp's is its ``eval`` runs over ``eval time + sampling time``. Peak RSS from wait4.

    bash benches/peers/build_llama_cpp.sh   # once (llama-completion beside llama-bench)
    .cache/venv-exporters/bin/python benches/peers/sampled_peers.py --model gemma3 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from llm_peers import MODELS, PROMPT, ROOT, rss_of  # noqa: E402

MODES = {"greedy": {"temperature": 0.0}, "sampled": {"temperature": 0.8, "top_k": 40, "top_p": 0.95}}
SEED = 7


def mmrt(bundle: str, threads: int, new_tokens: int, mode: dict) -> dict:
    cmd = [str(ROOT / "target/release/mmrt"), "run", "--bundle", bundle, "--threads", str(threads), "--prompt", PROMPT,
           "--max-tokens", str(new_tokens), "--seed", str(SEED), "--json", "--temperature", str(mode["temperature"])]
    if "top_k" in mode:
        cmd += ["--top-k", str(mode["top_k"]), "--top-p", str(mode["top_p"])]
    out, rss = rss_of(cmd)
    r = json.loads(out)
    return {"decode_tok_s": r["decode_tokens_per_s"], "new_tokens": len(r["token_ids"]), "peak_rss_mib": rss}


def llama_cpp(binary: Path, gguf: str, threads: int, new_tokens: int, mode: dict) -> dict:
    cmd = [str(binary), "-m", gguf, "-t", str(threads), "-n", str(new_tokens), "-p", PROMPT, "--seed", str(SEED),
           "--ignore-eos", "-no-cnv", "--temp", str(mode["temperature"]), "--log-verbosity", "3"]
    if "top_k" in mode:
        cmd += ["--top-k", str(mode["top_k"]), "--top-p", str(mode["top_p"])]
    out, rss = rss_of(cmd + ["--log-file", "/dev/stdout"], env={"LD_LIBRARY_PATH": str(binary.parent)})
    eval_ms, runs = (float(x) for x in re.search(r"\beval time =\s+([\d.]+) ms /\s+(\d+) runs", out).groups())
    sampling_ms = float(re.search(r"sampling time =\s+([\d.]+) ms", out).group(1))
    return {"decode_tok_s": 1e3 * runs / (eval_ms + sampling_ms * runs / (runs + 1)), "new_tokens": runs + 1, "peak_rss_mib": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="gemma3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    bundle, source, _ = MODELS[args.model]
    sys.path.insert(0, str(ROOT))
    from exporters.gguf.fetch import fetch

    gguf = str(fetch(source))
    binary = next(ROOT.glob(".cache/bench/llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-completion"), None)
    if binary is None:
        raise SystemExit("llama-completion is not built: run `bash benches/peers/build_llama_cpp.sh`")
    rows: dict[str, list[dict]] = {}
    for r in range(1, args.rounds + 1):
        for mode_name, mode in MODES.items():
            for side, run in (("mmrt", lambda: mmrt(bundle, args.threads, args.new_tokens, mode)),
                              ("llama.cpp", lambda: llama_cpp(binary, gguf, args.threads, args.new_tokens, mode))):
                row = run()
                rows.setdefault(f"{side} {mode_name}", []).append(row)
                print(f"round {r} {side:9} {mode_name:7} decode {row['decode_tok_s']:6.1f} tok/s  "
                      f"{row['new_tokens']} tokens  rss {row['peak_rss_mib']:.0f} MiB", flush=True)
    print(f"\n{args.model}: {args.new_tokens} new tokens, {args.threads} threads, {args.rounds} interleaved rounds; median [min, max]")
    table = {}
    for name, rs in rows.items():
        d = [x["decode_tok_s"] for x in rs]
        m = [x["peak_rss_mib"] for x in rs]
        table[name] = {"decode_tok_s": {"median": statistics.median(d), "min": min(d), "max": max(d)},
                       "peak_rss_mib": {"median": statistics.median(m), "min": min(m), "max": max(m)}, "rows": rs}
        print(f"{name:18} decode {statistics.median(d):6.1f} [{min(d):.1f}, {max(d):.1f}]   peak RSS {statistics.median(m):.1f} MiB")
    for mode_name in MODES:
        ratio = table[f"mmrt {mode_name}"]["decode_tok_s"]["median"] / table[f"llama.cpp {mode_name}"]["decode_tok_s"]["median"]
        print(f"ratio mmrt / llama.cpp, {mode_name}: decode {ratio:.3f}x")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
