"""Piper TTS side by side: piper-tts 1.8.0 (Python, the voice's native runtime) and
`mmrt run` on the same voice and text, 2 threads, noise as the voice sets it.
Interleaved rounds; prints median [min, max] of synthesis time (model loaded,
text -> 16-bit samples) and peak RSS of each whole process.

Usage: .cache/venv-exporters/bin/python benches/peers/piper_peer.py [--rounds 5]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = ("The weather today will be sunny with a high of 75 degrees. Your next meeting starts in fifteen minutes. "
        "I have added milk and eggs to your shopping list.")

PEER = r"""
import json, resource, sys, time, onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig
b = sys.argv[1]
opts = onnxruntime.SessionOptions(); opts.intra_op_num_threads = 2
t0 = time.perf_counter()
cfg = json.load(open(b + '/voice.json'))
voice = PiperVoice(session=onnxruntime.InferenceSession(b + '/voice.onnx', opts, providers=['CPUExecutionProvider']),
                   config=PiperConfig.from_dict(cfg), espeak_data_dir=b + '/espeak-ng-data')
load = time.perf_counter() - t0
t0 = time.perf_counter()
n = sum(len(c.audio_int16_array) for c in voice.synthesize(sys.argv[2]))
synth = time.perf_counter() - t0
print(json.dumps({"load_ms": load * 1e3, "synth_ms": synth * 1e3, "samples": n,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_peer(bundle: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PEER, str(bundle), TEXT], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def run_mmrt(bundle: Path, out_dir: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([str(ROOT / "target/release/mmrt"), "run", "--bundle", str(bundle), "--prompt", TEXT,
                          "--out-dir", str(out_dir), "--threads", "2", "--json"], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    d = json.loads(out.stdout)
    return {"load_ms": d["load_ms"], "synth_ms": d["total_ms"], "samples": round(d["audio_seconds"] * d["sample_rate"]),
            "wall_ms": wall * 1e3, "peak_rss_mib": d["peak_rss_mib"]}


def summary(xs):
    return f"{statistics.median(xs):.1f} [{min(xs):.1f}, {max(xs):.1f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bundle", default=str(ROOT / "models/piper-joe"))
    args = ap.parse_args()
    bundle = Path(args.bundle)
    peer, mine = [], []
    for _ in range(args.rounds):
        peer.append(run_peer(bundle))
        mine.append(run_mmrt(bundle, Path("/tmp/mmrt-piper-peer")))
    for name, rows in (("piper-tts", peer), ("mmrt", mine)):
        print(f"{name:9s} synth ms {summary([r['synth_ms'] for r in rows])}  load ms {summary([r['load_ms'] for r in rows])}  "
              f"samples {rows[0]['samples']}")
    for name, rows in (("piper-tts", peer), ("mmrt", mine)):
        print(f"{name:9s} peak RSS MiB {summary([r['peak_rss_mib'] for r in rows])}")
    ratio = statistics.median(r["synth_ms"] for r in peer) / statistics.median(r["synth_ms"] for r in mine)
    print(f"mmrt synthesis {ratio:.2f}x piper-tts's speed")


if __name__ == "__main__":
    main()
