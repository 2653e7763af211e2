"""Process start -> exit of `mmrt run --max-tokens 1` (start to first token), page cache warm (or
cold with --cold), interleaved rounds; prints medians [min, max] of wall time, CPU time and peak RSS
per variant.

Usage: python3 benches/startup.py BUNDLE [--rounds N] [--mmrt BINARY] [--other OTHER_MMRT_BINARY]
       [--other-bundle DIR] [--llama GGUF] [--cold]
--cold: before every run the page cache is dropped (`/proc/sys/vm/drop_caches`, where this user may
write it), otherwise the files that run reads are evicted one by one (`posix_fadvise(DONTNEED)`: the
binary, the ONNX Runtime library, every bundle file; llama-bench, its libraries and the GGUF).
Variants: target/release/mmrt (checksums remembered), the same with --verify (every file hashed),
optionally another build (e.g. an older commit's binary) or another bundle of the same model (e.g. one
exported before a layout change) side by side, and optionally llama.cpp on
a GGUF (`llama-bench -p 8 -n 1 -r 1 --no-warmup`, built by benches/peers/build_llama_cpp.sh): its
model load, an 8-token prompt and one generated token.
"""
import argparse, os, statistics, subprocess, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one child run to the end."""
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {child.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def evict(paths: list[Path]) -> str:
    """Drop the page cache (whole, where permitted; else these files' pages); returns how."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        pass
    for path in paths:
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return "posix_fadvise(DONTNEED) per file"


def ort_library() -> Path:
    """The ONNX Runtime library mmrt loads here ($MMRT_ORT_LIB, else the setup folder's)."""
    if os.environ.get("MMRT_ORT_LIB"):
        return Path(os.environ["MMRT_ORT_LIB"])
    return next(iter(sorted((ROOT / ".cache/onnxruntime").glob("libonnxruntime.so*"))), ROOT / ".cache/onnxruntime")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--other", help="another mmrt binary, run the same way")
    ap.add_argument("--other-bundle", help="another bundle, run by the measured binary the same way")
    ap.add_argument("--llama", help="a GGUF for llama.cpp's llama-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mmrt", default=str(ROOT / "target/release/mmrt"), help="the mmrt binary measured")
    ap.add_argument("--cold", action="store_true", help="evict the page cache before every run")
    args = ap.parse_args()

    release = args.mmrt
    run_on = lambda bundle: ["run", "--bundle", bundle, "--prompt", "Hello", "--max-tokens", "1", "--threads", str(args.threads)]
    run = run_on(args.bundle)
    # name -> (command, environment, files it reads)
    variants: dict[str, tuple[list[str], dict, list[Path]]] = {}
    reads = lambda binary: [Path(binary), ort_library(), Path(args.bundle)]
    if args.other:
        variants["other"] = ([args.other] + run, {}, reads(args.other))
    if args.other_bundle:
        variants["other bundle"] = ([release] + run_on(args.other_bundle), {}, [Path(release), ort_library(), Path(args.other_bundle)])
    variants["mmrt"] = ([release] + run, {}, reads(release))
    variants["mmrt --verify"] = ([release] + run + ["--verify"], {}, reads(release))
    if args.llama:
        bench = subprocess.run(["bash", str(ROOT / "benches/peers/build_llama_cpp.sh")], check=True, capture_output=True, text=True).stdout.strip()
        variants["llama.cpp"] = ([bench, "-m", args.llama, "-p", "8", "-n", "1", "-r", "1", "--no-warmup", "-t", str(args.threads)],
                                 {"LD_LIBRARY_PATH": str(Path(bench).parent)}, [Path(bench).parent, Path(args.llama)])
    samples = {k: [] for k in variants}
    how = None
    for r in range(args.rounds + 1):
        for name, (cmd, env, files) in variants.items():
            if args.cold:
                how = evict(files)
            sample = timed(cmd, env)
            if r:  # round 0 warms the page cache
                samples[name].append(sample)
    fmt = lambda xs, scale, unit: f"{statistics.median(xs) * scale:7.0f} {unit} [{min(xs) * scale:.0f}, {max(xs) * scale:.0f}]"
    print(f"page cache: {'cold, ' + how if args.cold else 'warm'}")
    print(f"{'variant':16s} {'wall':>22s} {'cpu':>22s} {'peak rss':>24s}")
    for name, rows in samples.items():
        wall, cpu, rss = zip(*rows)
        print(f"{name:16s} {fmt(wall, 1000, 'ms'):>22s} {fmt(cpu, 1000, 'ms'):>22s} {fmt(rss, 1, 'MiB'):>24s}")


if __name__ == "__main__":
    main()
