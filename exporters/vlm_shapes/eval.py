"""Evaluate the vlm-shapes bundle through mmrt (the release binary) on held-out images.

    python -m exporters.vlm_shapes.eval --images 200 [--bundle models/vlm-shapes] [--photos DIR]

Writes the first N validation images (split "val", never seen in training) to
.cache/vlm/eval/, captions them with the bundle's default prompt through mmrt's
pipeline in one process (``target/release/examples/caption_batch``: ``mmrt run``
reopens and checksums the bundle per image, ~10 s here, so 200 runs would take half
an hour), checks that ``target/release/mmrt run`` gives the same text on the first
``--cli-check`` images, and scores whether the caption's first shape word, colour word and
count word are the generator's truth. Chance levels (uniform draws): shape 1/5,
colour 1/6, count 1/4. ``--photos DIR`` also captions every image in DIR
(qualitative only). Results go to .cache/vlm/eval/results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

from ..common.paths import CACHE, MODELS, ROOT
from .data import COLOURS, COUNTS, PLURAL, SHAPES, write_split

OUT = CACHE / "vlm" / "eval"
COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def named(caption: str) -> dict:
    """First shape, colour and count word of a caption (None where absent)."""
    words = re.findall(r"[a-z]+", caption.lower())
    shape_of = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURAL.items()}}
    first = lambda table: next((table[w] for w in words if w in table), None)
    return {"shape": first(shape_of), "colour": first({c: c for c in COLOURS}), "count": first(COUNT_WORDS)}


def mmrt(bundle: Path, image: Path, prompt: str | None, threads: int) -> dict:
    cmd = [str(ROOT / "target" / "release" / "mmrt"), "run", "--bundle", str(bundle), "--image", str(image),
           "--json", "--threads", str(threads)]
    if prompt is not None:
        cmd += ["--prompt", prompt]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def batch(bundle: Path, images: list[Path], prompt: str | None) -> list[dict]:
    cmd = [str(ROOT / "target" / "release" / "examples" / "caption_batch"), str(bundle)]
    if prompt is not None:
        cmd += ["--prompt", prompt]
    done = subprocess.run(cmd + [str(p) for p in images], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"caption_batch failed: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--bundle", type=Path, default=MODELS / "vlm-shapes")
    ap.add_argument("--prompt", default=None, help="instruction (default: the bundle's default prompt)")
    ap.add_argument("--photos", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli-check", type=int, default=5, help="images also run through `mmrt run` (must agree)")
    args = ap.parse_args()
    rows = json.loads(write_split("val", args.images, OUT).read_text())
    t0 = time.time()
    hits = {"shape": 0, "colour": 0, "count": 0, "all": 0}
    results = []
    outs = batch(args.bundle, [OUT / r["file"] for r in rows], args.prompt)
    for r, out in zip(rows[:args.cli_check], outs):
        cli = mmrt(args.bundle, OUT / r["file"], args.prompt, args.threads)
        if cli["token_ids"] != out["token_ids"]:
            raise SystemExit(f"{r['file']}: mmrt run gave {cli['text']!r}, caption_batch {out['text']!r}")
    for r, out in zip(rows, outs):
        got = named(out["text"])
        ok = {"shape": got["shape"] == r["shape"], "colour": got["colour"] == r["colour"], "count": got["count"] == r["count"]}
        ok["all"] = all(ok.values())
        for k, v in ok.items():
            hits[k] += int(v)
        results.append({**r, "text": out["text"], "named": got, "ok": ok})
    n = len(rows)
    summary = {k: v / n for k, v in hits.items()}
    summary.update({"images": n, "bundle": args.bundle.name, "prompt": args.prompt,
                    "chance": {"shape": 1 / len(SHAPES), "colour": 1 / len(COLOURS), "count": 1 / len(COUNTS)},
                    "seconds": round(time.time() - t0)})
    photos = []
    if args.photos:
        files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for p, out in zip(files, batch(args.bundle, files, args.prompt)):
            photos.append({"image": p.name, "text": out["text"]})
            print(f"photo {p.name}: {out['text']!r}")
    (OUT / "results.json").write_text(json.dumps({"summary": summary, "photos": photos, "results": results}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
