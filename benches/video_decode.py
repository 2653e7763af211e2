"""Video decode + sampling, mmrt vs PyAV + numpy, side by side (issue 16's speed criterion):
bigbuckbunny.mp4 (1280x720 H.264, 132 frames) to 8 uniformly sampled frames at 224x224.

    .cache/venv-exporters/bin/python benches/video_decode.py [--rounds 15] [--clip PATH] [--mmrt BIN]

Variants, run as separate processes in interleaved rounds (round 0 warms the page cache and is dropped):

* mmrt: `mmrt frames CLIP --frames 8 --size 224x224 --json`; its in-process time is the report's `frames_ms`
  (open, decode, sample, resize to the requested size and lay the frames out as float [0, 1] channel-first, as a
  model's input, inside the process; mmrt-cli/src/cli/frames.rs).
* PyAV (default threads): what a careful Python user writes, as transformers' `read_video_pyav` does
  (transformers/video_utils.py): open the clip, take the same uniform indices (floor(i * total / n)), decode frames
  in order, keep the sampled ones, stop after the last, `frame.to_ndarray(width=224, height=224, format="rgb24")`
  (libswscale, bilinear) for kept frames only, `np.stack`, then float32 / 255 in CHW (the encoder's layout).
  Its in-process time runs from `av.open` to the float array (`ms`, the like-for-like figure); `u8 ms` stops at
  the stacked uint8 array (the peer doing less work than mmrt: a conservative ratio).
* PyAV (thread_type AUTO): the same with `stream.thread_type = "AUTO"` (frame + slice threads; FFmpeg's automatic
  count, cores + 1).
* PyAV (FRAME, one thread per core): `thread_type = "FRAME"`, `thread_count = os.cpu_count()`, mmrt's own decoder
  settings: the strongest Python peer (the same FFmpeg 8.1 decoder doing the same work).

Whole-process wall time (spawn to exit) and peak RSS (each child's own, from wait4) are reported too; they include
Python's start and `import av, numpy` for the peers, and ONNX-Runtime-free CLI start for mmrt. Ratios are peer / mmrt (above 1: mmrt is faster).
The load average is checked first: above 0.5 the figures are noisy and a warning is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / ".cache" / "video" / "clips" / "bigbuckbunny.mp4"


def peer(clip: str, frames: int, width: int, height: int, thread_type: str | None, thread_count: int = 0) -> dict:
    """The PyAV + numpy peer, timed inside this process."""
    t0 = time.perf_counter()
    import av
    import numpy as np

    t_import = time.perf_counter()
    container = av.open(clip)
    stream = container.streams.video[0]
    if thread_type:
        stream.thread_type = thread_type
    if thread_count:
        stream.codec_context.thread_count = thread_count
    total = stream.frames
    indices = [i * total // frames for i in range(frames)]
    keep, last = set(indices), indices[-1]
    kept = []
    for i, frame in enumerate(container.decode(stream)):
        if i > last:
            break
        if i in keep:
            kept.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
    u8 = np.stack(kept)
    t_u8 = time.perf_counter()
    x = np.ascontiguousarray((u8.astype(np.float32) / np.float32(255.0)).transpose(0, 3, 1, 2))
    t_end = time.perf_counter()
    container.close()
    assert x.shape == (frames, 3, height, width), x.shape
    return {"indices": indices, "decoded": i + 1 if kept else 0, "import_ms": (t_import - t0) * 1e3,
            "u8_ms": (t_u8 - t_import) * 1e3, "ms": (t_end - t_import) * 1e3}


def run_timed(cmd: list[str]) -> tuple[float, str, float]:
    """Wall ms, stdout and peak RSS (MiB, this child's own, from wait4) of one run."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        ms = (time.perf_counter() - t) * 1e3
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            sys.exit(f"error: {cmd} exited {child.returncode}:\n{err.read().decode(errors='replace')}")
    return ms, stdout, usage.ru_maxrss / 1024


def stats(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} [{min(xs):.1f}, {max(xs):.1f}]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", default="224x224")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--mmrt", default=str(REPO / "target" / "release" / "mmrt"))
    p.add_argument("--json", type=Path, help="also write the raw timings here")
    p.add_argument("--peer", choices=["default", "auto", "frame"], help=argparse.SUPPRESS)  # internal: one peer run
    a = p.parse_args()
    width, height = (int(v) for v in a.size.lower().split("x"))

    if a.peer:
        thread_type = {"default": None, "auto": "AUTO", "frame": "FRAME"}[a.peer]
        count = os.cpu_count() if a.peer == "frame" else 0
        print(json.dumps(peer(a.clip, a.frames, width, height, thread_type, count)))
        return 0

    if not Path(a.clip).is_file():
        sys.exit(f"error: {a.clip} is missing (python -m exporters.video.clips)")
    if not Path(a.mmrt).is_file():
        sys.exit(f"error: {a.mmrt} is missing (cargo build --release -p mmrt-cli, or --mmrt BIN)")
    load = os.getloadavg()[0]
    print(f"load average (1 min): {load:.2f}" + ("  WARNING: above 0.5, the timings are noisy" if load > 0.5 else ""))
    print(f"cpus: {os.cpu_count()}, clip: {a.clip}, {a.frames} frames at {width}x{height}, {a.rounds} rounds\n")

    me = [sys.executable, os.path.abspath(__file__), "--clip", a.clip, "--frames", str(a.frames), "--size", a.size]
    variants = {
        "mmrt frames": [a.mmrt, "frames", a.clip, "--frames", str(a.frames), "--size", a.size, "--json"],
        "PyAV + numpy (default threads)": me + ["--peer", "default"],
        "PyAV + numpy (thread_type AUTO)": me + ["--peer", "auto"],
        "PyAV + numpy (FRAME, a thread per core)": me + ["--peer", "frame"],
    }
    inproc = {k: [] for k in variants}
    inproc_u8 = {k: [] for k in variants}
    wall = {k: [] for k in variants}
    rss = {k: [] for k in variants}
    indices = {}
    for r in range(a.rounds + 1):
        names = list(variants)
        names = names[r % len(names):] + names[: r % len(names)]  # rotate the order each round
        for name in names:
            ms, out, peak = run_timed(variants[name])
            report = json.loads(out)
            indices[name] = report["indices"]
            if r == 0:
                continue
            wall[name].append(ms)
            rss[name].append(peak)
            if name == "mmrt frames":
                inproc[name].append(float(report["frames_ms"]))
                inproc_u8[name].append(float(report["frames_ms"]))
            else:
                inproc[name].append(report["ms"])
                inproc_u8[name].append(report["u8_ms"])
    if len({json.dumps(v) for v in indices.values()}) != 1:
        print(f"WARNING: the variants sampled different indices: {indices}")
    else:
        print(f"indices (all variants): {indices['mmrt frames']}\n")

    base_in = statistics.median(inproc["mmrt frames"])
    base_wall = statistics.median(wall["mmrt frames"])
    print("| variant | in-process ms (to float CHW) | in-process ms (PyAV: to uint8) | whole process ms | peak RSS MiB | "
          "ratio in-process | ratio in-process, PyAV to uint8 | ratio whole process |")
    print("|---|---|---|---|---|---|---|---|")
    for name in variants:
        if name == "mmrt frames":
            print(f"| {name} | {stats(inproc[name])} | — | {stats(wall[name])} | {stats(rss[name])} | 1.00 | 1.00 | 1.00 |")
            continue
        r_f = statistics.median(inproc[name]) / base_in
        r_u8 = statistics.median(inproc_u8[name]) / base_in
        r_w = statistics.median(wall[name]) / base_wall
        print(f"| {name} | {stats(inproc[name])} | {stats(inproc_u8[name])} | {stats(wall[name])} | {stats(rss[name])} | "
              f"{r_f:.2f}x | {r_u8:.2f}x | {r_w:.2f}x |")
    print("\nmedian [min, max] over rounds; ratio = peer median / mmrt median (in-process: mmrt's frames_ms vs the "
          "peer's open -> float CHW array, or -> stacked uint8)")
    if a.json:
        a.json.write_text(json.dumps({"load": load, "inproc": inproc, "inproc_u8": inproc_u8, "wall": wall, "peak_rss_mib": rss,
                                      "indices": indices}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
