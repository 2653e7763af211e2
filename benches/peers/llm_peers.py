"""LLM decode speed side by side, interleaved rounds, same prompt (~100 tokens), N new tokens
(stop tokens ignored), greedy, same thread count, for each GGUF model mmrt imports:

* mmrt on models/<bundle>-text (GGUF-faithful)  vs  llama.cpp (llama-bench) on the very same GGUF
* mmrt on onnxruntime-genai's int4 model.onnx  vs  onnxruntime-genai on that same file (where built)

Reports prefill tok/s, time to first token, decode tok/s, peak RSS (medians, min, max) and the
ratios; checks that mmrt and onnxruntime-genai generate the same ids on genai's file.

    bash benches/peers/build_llama_cpp.sh                 # once (cached in .cache/bench)
    bash benches/peers/genai_gemma3.sh                    # gemma3's genai int4 build (optional)
    .cache/venv-exporters/bin/python benches/peers/llm_peers.py --model smollm2 --threads 2 --rounds 5 [--json out/peers.json]
    (--model gemma3 | smollm2 | qwen2.5-coder; --genai DIR: an onnxruntime-genai folder of the same model)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMPT = ("The history of the lighthouse is a story of engineering, commerce and human courage. Long before "
          "electric lamps, coastal communities lit fires on hills to guide ships home at night. The ancient "
          "Pharos of Alexandria, built around 280 BC, stood more than one hundred metres tall and was counted "
          "among the wonders of the world. Over the following centuries, towers of stone and brick rose along "
          "the busy shipping routes of Europe, and their keepers")


def rss_of(cmd: list[str], env: dict | None = None) -> tuple[str, float]:
    """stdout and peak RSS (MiB, from wait4's ru_maxrss) of `cmd` run as a child process."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.chdir(ROOT)
        os.execvpe(cmd[0], cmd, {**os.environ, **(env or {})})
    os.close(w)
    chunks = []
    while (b := os.read(r, 1 << 16)):
        chunks.append(b)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed with {os.waitstatus_to_exitcode(status)}")
    return b"".join(chunks).decode(), usage.ru_maxrss / 1024.0


def mmrt(bundle: str, threads: int, new_tokens: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        _, rss = rss_of([str(ROOT / "target/release/mmrt"), "bench", "--bundle", bundle, "--threads", str(threads),
                         "--prompt", PROMPT, "--new-tokens", str(new_tokens), "--runs", "1", "--warmup", "1",
                         "--json", f.name])
        report = json.load(open(f.name))
    m = report["providers"][0]["medians"]  # one measured run: the median is that run
    return {"prefill_tok_s": m["prefill_tokens_per_s"], "ttft_ms": m["time_to_first_token_ms"],
            "decode_tok_s": m["decode_tokens_per_s"], "peak_rss_mib": m["peak_rss_MiB"]}


def llama_cpp(bench: str, gguf: str, threads: int, prompt_tokens: int, new_tokens: int) -> dict:
    lib = str(Path(bench).parent)
    out, rss = rss_of([bench, "-m", gguf, "-p", str(prompt_tokens), "-n", str(new_tokens), "-t", str(threads), "-r", "1",
                       "-o", "json"], env={"LD_LIBRARY_PATH": lib})
    rows = json.loads(out)
    pp = next(r for r in rows if r["n_prompt"] > 0)["avg_ts"]
    tg = next(r for r in rows if r["n_gen"] > 0)["avg_ts"]
    return {"prefill_tok_s": pp, "ttft_ms": 1e3 * prompt_tokens / pp, "decode_tok_s": tg, "peak_rss_mib": rss}


def genai(folder: str, threads: int, new_tokens: int, ids: list[int]) -> dict:
    out, rss = rss_of([sys.executable, str(ROOT / "benches/peers/genai_run.py"), folder, str(threads), str(new_tokens),
                       ",".join(map(str, ids))])
    r = json.loads(out.strip().splitlines()[-1])
    n = len(ids)
    return {"prefill_tok_s": 1e3 * n / r["ttft_ms"], "ttft_ms": r["ttft_ms"], "decode_tok_s": r["decode_tokens_per_s"],
            "peak_rss_mib": rss, "ids": r["ids"]}


def summary(rows: list[dict], keys=("prefill_tok_s", "ttft_ms", "decode_tok_s", "peak_rss_mib")) -> dict:
    """Median, min and max of each of `keys` over `rows`."""
    return {k: {"median": statistics.median(r[k] for r in rows), "min": min(r[k] for r in rows),
                "max": max(r[k] for r in rows)} for k in keys}


# model -> (bundle of the GGUF-faithful text-only form, GGUF source in exporters.gguf.fetch, genai folder)
MODELS = {
    "gemma3": ("models/gemma3-270m-q4-text", "gemma3", ".cache/bench/genai-gemma3-int4"),
    "smollm2": ("models/smollm2-135m-text", "smollm2", None),
    "qwen2.5-coder": ("models/qwen2.5-coder-0.5b-text", "qwen2.5-coder", None),
}


def prompt_ids(bundle: Path) -> list[int]:
    """The prompt's ids as mmrt encodes them: the manifest's BOS (if any) + the tokenized prompt."""
    from tokenizers import Tokenizer

    manifest = json.loads((bundle / "bundle.json").read_text())
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    bos = manifest["prompt"].get("bos_token_id")
    return ([bos] if bos is not None else []) + tok.encode(PROMPT, add_special_tokens=False).ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--model", choices=sorted(MODELS), default="gemma3")
    ap.add_argument("--other-bundle", type=Path, help="another mmrt bundle of the model (e.g. exported before a layout change), run the same way")
    ap.add_argument("--genai", type=Path, help="onnxruntime-genai folder of the same model (default: the model's known one)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from exporters.gguf.fetch import fetch

    bundle, source, known_genai = MODELS[args.model]
    ids = prompt_ids(ROOT / bundle)
    bench = next(iter(glob.glob(str(ROOT / ".cache/bench/llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-bench"))), None)
    gguf = str(fetch(source))
    genai_dir = str(args.genai or (ROOT / known_genai if known_genai else ROOT / ".cache/none"))
    has_genai = Path(genai_dir, "genai_config.json").exists()
    peers = {
        "mmrt (GGUF-faithful)": lambda: mmrt(bundle, args.threads, args.new_tokens),
        "mmrt (other bundle)": (lambda: mmrt(str(args.other_bundle), args.threads, args.new_tokens)) if args.other_bundle else None,
        "llama.cpp (same GGUF)": (lambda: llama_cpp(bench, gguf, args.threads, len(ids), args.new_tokens)) if bench else None,
        "mmrt on genai int4": (lambda: mmrt(genai_dir, args.threads, args.new_tokens)) if has_genai else None,
        "onnxruntime-genai int4": (lambda: genai(genai_dir, args.threads, args.new_tokens, ids)) if has_genai else None,
    }
    for name, fn in peers.items():
        if fn is None and name != "mmrt (other bundle)":
            print(f"skipping {name}: not built (see this script's docstring)", file=sys.stderr)
    results: dict[str, list[dict]] = {n: [] for n, fn in peers.items() if fn}
    for r in range(args.rounds):
        for name in results:
            row = peers[name]()
            results[name].append(row)
            print(f"round {r + 1} {name:26s} prefill {row['prefill_tok_s']:8.1f} tok/s  ttft {row['ttft_ms']:7.1f} ms  "
                  f"decode {row['decode_tok_s']:6.1f} tok/s  rss {row['peak_rss_mib']:6.0f} MiB", file=sys.stderr)
    table = {n: summary(rows) for n, rows in results.items()}
    print(f"\n{len(ids)} prompt tokens, {args.new_tokens} new tokens, greedy, {args.threads} threads, {args.rounds} interleaved rounds; median [min, max]")
    print(f"{'':26s} {'prefill tok/s':>22s} {'TTFT ms':>22s} {'decode tok/s':>22s} {'peak RSS MiB':>20s}")
    for n, s in table.items():
        cell = lambda k: f"{s[k]['median']:7.1f} [{s[k]['min']:.1f}, {s[k]['max']:.1f}]"
        print(f"{n:26s} {cell('prefill_tok_s'):>22s} {cell('ttft_ms'):>22s} {cell('decode_tok_s'):>22s} {cell('peak_rss_mib'):>20s}")
    ratios = {}
    print(f"model: {args.model} ({bundle}, {Path(gguf).name})")
    for a, b in (("mmrt (GGUF-faithful)", "llama.cpp (same GGUF)"), ("mmrt (other bundle)", "llama.cpp (same GGUF)"),
                 ("mmrt (GGUF-faithful)", "mmrt (other bundle)"), ("mmrt on genai int4", "onnxruntime-genai int4"),
                 ("mmrt (GGUF-faithful)", "onnxruntime-genai int4")):
        if a in table and b in table:
            ratios[f"{a} / {b}"] = {k: table[a][k]["median"] / table[b][k]["median"] for k in ("prefill_tok_s", "decode_tok_s")}
            print(f"ratio {a} / {b}: decode {ratios[f'{a} / {b}']['decode_tok_s']:.3f}x, prefill {ratios[f'{a} / {b}']['prefill_tok_s']:.3f}x")
    if "onnxruntime-genai int4" in results:
        same = None
        try:
            out = subprocess.run([str(ROOT / "target/release/mmrt"), "run", "--bundle", genai_dir, "--prompt", PROMPT,
                                  "--max-tokens", str(args.new_tokens), "--threads", str(args.threads), "--json"],
                                 capture_output=True, text=True, cwd=ROOT, check=True)
            got = json.loads(out.stdout)["token_ids"]
            want = results["onnxruntime-genai int4"][0]["ids"][: len(got)]
            same = got == want
            print(f"mmrt and onnxruntime-genai ids on genai's file: {'identical' if same else 'DIFFER'} ({len(got)} tokens)")
        except Exception as e:  # report, do not hide the speed table
            print(f"could not compare ids: {e}", file=sys.stderr)
        ratios["genai_ids_identical"] = same
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "prompt_tokens": len(ids), "new_tokens": args.new_tokens, "threads": args.threads,
                                         "rounds": args.rounds, "summary": table, "ratios": ratios, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
