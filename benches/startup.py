"""Process start -> exit of `mmrt run --max-tokens 1` (start to first token), page cache warm,
interleaved rounds; prints medians [min, max] per variant.

Usage: python3 benches/startup.py BUNDLE [ROUNDS] [OTHER_MMRT_BINARY]
Variants: target/release/mmrt (checksums remembered), the same with --verify (every file hashed),
and optionally another build (e.g. an older commit's binary) side by side.
"""
import os, statistics, subprocess, sys, time
release = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "mmrt")
variants = {"mmrt": [release], "mmrt --verify": [release, "--verify"]}
if len(sys.argv) > 3:
    variants = {"other": [sys.argv[3]], **variants}
bundle = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
times = {k: [] for k in variants}
for r in range(rounds + 1):
    for name, cmd in variants.items():
        args = [cmd[0], "run", "--bundle", bundle, "--prompt", "Hello", "--max-tokens", "1", "--threads", "2"] + cmd[1:]
        t = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        if r:  # round 0 warms the page cache
            times[name].append(time.perf_counter() - t)
for name, ts in times.items():
    print(f"{name:18s} {statistics.median(ts)*1000:7.0f} ms [{min(ts)*1000:.0f}, {max(ts)*1000:.0f}]")
