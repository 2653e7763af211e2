"""mmrt side by side with the peers a user would otherwise reach for.

On the same bundle's ONNX files, the same photo, the same prompt and the same
thread count, rounds alternate A B A B ...:

* A: ``mmrt bench`` (a fresh process per round; its per-stage samples are read
  from its JSON);
* B: a plain Python onnxruntime loop, the baseline a user would write: Pillow +
  numpy preprocessing, one InferenceSession per graph, numpy merge, greedy
  ``argmax`` and each step's ``present.*`` fed back as ``past_key_values.*``.
* C: onnxruntime-genai, when the decoder is in its format (a
  ``genai_config.json`` in ``--genai-dir``, default the bundle); otherwise
  reported "not available" with the reason. It is given the same prompt ids
  (image rows as their placeholder id, so the same prompt length) and compared
  on prefill and decode only: it runs no image stages. ``benches/peers/genai_tiny.py``
  builds such a model from the tiny bundle's weights.

Per figure it prints mmrt's median (min-max), the peer's, the ratio
mmrt / peer of the medians, and how much faster mmrt is by medians and by best
runs (the quietest moments of a shared machine), as a Markdown table ready for
the README. Nothing here asserts a
speed; it measures.

    .cache/venv-exporters/bin/python benches/peers/peers.py --bundle models/tiny --threads 1

Requirements: benches/peers/requirements.txt (numpy, pillow, onnxruntime, tokenizers,
onnxruntime-genai).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
PHOTO_SIZE = (1920, 1080)  # the same full-HD frame mmrt bench synthesizes


# ---------------------------------------------------------------- the photo


def write_photo(path: Path) -> None:
    """A deterministic photo-like 1920x1080 JPEG: lighting gradients, soft blobs, sensor noise."""
    w, h = PHOTO_SIZE
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 120 * y / h, 110 + 60 * x / w, 160 - 80 * y / h], axis=-1)
    for _ in range(12):
        bx, by, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.25) * w
        weight = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (r * r))[..., None]
        img = img * (1 - weight) + rng.uniform(0, 255, 3) * weight
    img += rng.uniform(-8, 8, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)


# ---------------------------------------------------------------- peer B: the plain Python loop


class PlainLoop:
    """What a user writes with onnxruntime + numpy + Pillow, driven by bundle.json."""

    def __init__(self, bundle: Path, threads: int | None):
        self.bundle = bundle
        self.threads = threads
        self.manifest = json.loads((bundle / "bundle.json").read_text())
        self.load()

    def session(self, graph: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(self.bundle / graph), options, providers=["CPUExecutionProvider"])

    def load(self) -> float:
        start = time.perf_counter()
        stages = self.manifest["stages"]
        self.encoder = next((s for s in stages if s["kind"] == "modality_encoder" and s["modality"] == "image"), None)
        self.projector = next((s for s in stages if s["kind"] == "input_projector" and s["modality"] == "image"), None)
        self.decoder = next(s for s in stages if s["kind"] == "llm_decoder")
        self.tokenizer = Tokenizer.from_file(str(self.bundle / self.manifest["tokenizer"]))
        self.enc_sess = self.session(self.encoder["graph"]) if self.encoder else None
        self.proj_sess = self.session(self.projector["graph"]) if self.projector else None
        self.embed_sess = self.session(self.decoder["embedding"]["graph"])
        self.dec_sess = self.session(self.decoder["graph"])
        self.inputs = {i.name: i for i in self.dec_sess.get_inputs()}
        kv = self.decoder["kv_cache"]
        layers = range(kv["num_layers"])
        self.past = [kv[k].format(layer=i) for i in layers for k in ("past_key", "past_value")]
        self.present = [kv[k].format(layer=i) for i in layers for k in ("present_key", "present_value")]
        return (time.perf_counter() - start) * 1e3

    def preprocess(self, path: Path) -> np.ndarray:
        """Decode, resize (shortest edge), center crop, normalize: [1, 3, H, W] float32."""
        p = self.encoder["preprocess"]
        image = Image.open(path).convert("RGB")
        resize = p["resize"]
        if "shortest_edge" in resize:
            edge = resize["shortest_edge"]
            w, h = image.size
            scale = edge / min(w, h)
            size = (edge, round(h * scale)) if w <= h else (round(w * scale), edge)
        else:
            size = (resize["exact"]["width"], resize["exact"]["height"])
        if size != image.size:
            image = image.resize(size, PIL_FILTERS[resize.get("filter", "bicubic")])
        if p.get("crop"):
            cw, ch = p["crop"]["width"], p["crop"]["height"]
            left, top = (image.size[0] - cw) // 2, (image.size[1] - ch) // 2
            image = image.crop((left, top, left + cw, top + ch))
        x = np.asarray(image, dtype=np.float32) * np.float32(p["rescale_factor"])
        x = (x - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"], np.float32)
        x = x.transpose(2, 0, 1) if p.get("layout", "nchw") == "nchw" else x
        return x[None].astype(np.float16 if p.get("dtype") == "float16" else np.float32)

    def prompt_ids(self, prompt: str, images: int, tokens_per_image: int) -> list[int]:
        fmt = self.manifest["prompt"]
        placeholder = fmt["placeholders"].get("image", "")
        content = prompt if placeholder and placeholder in prompt else (placeholder + "\n") * images + prompt
        text = fmt["template"].replace("{content}", content)
        ids = [fmt["bos_token_id"]] + self.tokenizer.encode(text, add_special_tokens=False).ids
        image_id = fmt["media_token_ids"].get("image")
        out: list[int] = []
        for t in ids:
            out.extend([t] * tokens_per_image if t == image_id else [t])
        return out

    def embed(self, ids: list[int]) -> np.ndarray:
        emb = self.decoder["embedding"]
        x = self.embed_sess.run([emb["output"]], {emb["input"]: np.asarray([ids], dtype=np.int64)})[0]
        return x * emb["scale"] if emb.get("scale", 1.0) != 1.0 else x

    def step(self, embeds: np.ndarray, past: list[np.ndarray], past_len: int) -> tuple[np.ndarray, list[np.ndarray]]:
        names = self.decoder["inputs"]
        n = embeds.shape[1]
        feed = {names["inputs_embeds"]: embeds.astype(NUMPY_TYPES[self.inputs[names["inputs_embeds"]].type])}
        if names.get("attention_mask"):
            feed[names["attention_mask"]] = np.ones((1, past_len + n), NUMPY_TYPES[self.inputs[names["attention_mask"]].type])
        if names.get("position_ids"):
            dtype = NUMPY_TYPES[self.inputs[names["position_ids"]].type]
            feed[names["position_ids"]] = np.arange(past_len, past_len + n, dtype=dtype)[None]
        feed.update(zip(self.past, past))
        out = self.dec_sess.run([self.decoder["outputs"]["logits"]] + self.present, feed)
        return out[0][0, -1], out[1:]

    def run(self, image: Path | None, prompt: str, new_tokens: int) -> dict[str, float]:
        """One greedy request, stop tokens ignored; milliseconds per stage plus derived figures."""
        t: dict[str, float] = {}
        start = time.perf_counter()
        mark = start
        rows = None

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            t[name] = (now - mark) * 1e3
            mark = now

        if image is not None:
            pixels = self.preprocess(image)
            lap("preprocess")
            features = self.enc_sess.run([self.encoder["output"]], {self.encoder["input"]: pixels})[0]
            lap(self.encoder["name"])
            rows = self.proj_sess.run([self.projector["output"]], {self.projector["input"]: features})[0]
            lap(self.projector["name"])
        ids = self.prompt_ids(prompt, 1 if image is not None else 0, rows.shape[1] if rows is not None else 0)
        self.last_ids = ids
        embeds = self.embed(ids)
        if rows is not None:
            pos = ids.index(self.manifest["prompt"]["media_token_ids"]["image"])
            embeds[0, pos : pos + rows.shape[1]] = rows[0]
        lap("embed")
        past = []
        for name in self.past:  # empty past: [1, kv_heads, 0, head_dim] from the graph's static dims
            dims = self.inputs[name].shape
            past.append(np.zeros((1, dims[1], 0, dims[3]), NUMPY_TYPES[self.inputs[name].type]))
        logits, past = self.step(embeds, past, 0)
        lap("prefill")
        token = int(np.argmax(logits))
        t["time_to_first_token"] = (time.perf_counter() - start) * 1e3
        length = len(ids)
        for _ in range(new_tokens - 1):
            logits, past = self.step(self.embed([token]), past, length)
            length += 1
            token = int(np.argmax(logits))
        lap("decode")
        t["prefill_tokens_per_s"] = len(ids) / (t["prefill"] / 1e3)
        t["decode_tokens_per_s"] = (new_tokens - 1) / (t["decode"] / 1e3)
        t["decode_ms_per_token"] = t["decode"] / (new_tokens - 1)
        t["prompt_tokens"] = len(ids)
        return t


# ---------------------------------------------------------------- peer C: onnxruntime-genai


def genai_peer(model_dir: Path, prompt_ids: list[int], new_tokens: int, threads: int | None):
    """onnxruntime-genai on a decoder in its format; (runner, None) or (None, reason)."""
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        return None, f"onnxruntime-genai is not installed ({e})"
    if not (model_dir / "genai_config.json").is_file():
        return None, (
            f"{model_dir} has no genai_config.json: its decoder is in mmrt's bundle format "
            "(inputs_embeds + manifest-named KV cache), not onnxruntime-genai's"
        )
    config = og.Config(str(model_dir))
    if threads:
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    model = og.Model(config)
    total = len(prompt_ids) + new_tokens

    def run() -> dict[str, float]:
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=total, min_length=total)
        generator = og.Generator(model, params)
        start = time.perf_counter()
        generator.append_tokens(prompt_ids)
        prefill = (time.perf_counter() - start) * 1e3
        t0 = time.perf_counter()
        for _ in range(new_tokens - 1):
            generator.generate_next_token()
        decode = (time.perf_counter() - t0) * 1e3
        return {
            "prefill": prefill,
            "prefill_tokens_per_s": len(prompt_ids) / (prefill / 1e3),
            "decode": decode,
            "decode_tokens_per_s": (new_tokens - 1) / (decode / 1e3),
            "decode_ms_per_token": decode / (new_tokens - 1),
        }

    return run, None


# ---------------------------------------------------------------- mmrt (A)


def run_mmrt(args, image: Path, out: Path) -> dict:
    cmd = [str(args.mmrt), "bench", "--bundle", str(args.bundle), "--image", str(image), "--runs", str(args.runs),
           "--warmup", str(args.warmup), "--new-tokens", str(args.new_tokens), "--json", str(out)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--prompt-tokens", str(args.prompt_tokens)] if args.prompt_tokens else ["--prompt", args.prompt]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def mmrt_samples(report: dict) -> dict[str, list[float]]:
    f = report["providers"][0]["figures"]
    s = {name: v["samples"] for name, v in f["stages_ms"].items()}
    s["load_warm"] = f["load_warm_ms"]["samples"]
    for key, name in [("time_to_first_token_ms", "time_to_first_token"), ("prefill_tokens_per_s", "prefill_tokens_per_s"),
                      ("decode_tokens_per_s", "decode_tokens_per_s"), ("decode_ms_per_token", "decode_ms_per_token")]:
        s[name] = f[key]["samples"]
    return s


# ---------------------------------------------------------------- report


UNITS = {"prefill_tokens_per_s": "tokens/s", "decode_tokens_per_s": "tokens/s", "decode_ms_per_token": "ms/token"}
HIGHER_IS_BETTER = {"prefill_tokens_per_s", "decode_tokens_per_s"}


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.4g} ({min(values):.3g}–{max(values):.3g})"


def table(title: str, ours: dict[str, list[float]], peer: dict[str, list[float]], order: list[str]) -> str:
    lines = [f"**{title}**", "",
             "| figure | unit | mmrt median (min–max) | peer median (min–max) | mmrt ÷ peer (medians) | mmrt faster by: medians | best runs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in order:
        if name not in ours or name not in peer:
            continue
        a, b = statistics.median(ours[name]), statistics.median(peer[name])
        ratio = a / b if b else float("nan")
        if name in HIGHER_IS_BETTER:
            faster, best = ratio, max(ours[name]) / max(peer[name])
        else:
            faster, best = 1 / ratio, min(peer[name]) / min(ours[name])
        lines.append(f"| {name} | {UNITS.get(name, 'ms')} | {fmt(ours[name])} | {fmt(peer[name])} | {ratio:.3g} | {faster:.3g}× | {best:.3g}× |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "tiny")
    ap.add_argument("--mmrt", type=Path, default=REPO / "target" / "release" / "mmrt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="A B rounds (interleaved)")
    ap.add_argument("--runs", type=int, default=5, help="measured requests per side per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt", default="Describe the image.")
    ap.add_argument("--prompt-tokens", type=int, default=None)
    ap.add_argument("--image", type=Path, default=None, help="default: a synthetic 1920x1080 JPEG photo")
    ap.add_argument("--genai-dir", type=Path, default=None, help="onnxruntime-genai model folder (default: the bundle)")
    ap.add_argument("--json", type=Path, default=None, help="write every sample here")
    args = ap.parse_args()
    if not args.mmrt.is_file():
        print(f"error: {args.mmrt} not found; build it with `cargo build --release` or pass --mmrt", file=sys.stderr)
        return 2
    if args.new_tokens < 2 or args.rounds < 1 or args.runs < 1:
        print("error: --new-tokens must be >= 2, --rounds and --runs >= 1", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="mmrt-peers-") as tmp:
        tmp = Path(tmp)
        image = args.image
        if image is None:
            image = tmp / "photo_1920x1080.jpg"
            write_photo(image)
        plain = PlainLoop(args.bundle, args.threads)
        ours: dict[str, list[float]] = {}
        theirs: dict[str, list[float]] = {}
        genai: dict[str, list[float]] = {}
        genai_run, genai_reason, prompt, env = None, None, None, None
        for round_ in range(args.rounds):
            # A: mmrt, a fresh process with its own warm-up.
            report = run_mmrt(args, image, tmp / f"mmrt_{round_}.json")
            env = report["environment"]
            prompt = report["settings"]["prompt"]
            for k, v in mmrt_samples(report).items():
                ours.setdefault(k, []).extend(v)
            mmrt_prompt_tokens = report["providers"][0]["figures"]["prompt_tokens"]
            # B: the plain loop, warmed up once, then the same number of runs.
            if round_ == 0:
                for _ in range(args.warmup):
                    plain.run(image, prompt, args.new_tokens)
            for _ in range(args.runs):
                t = plain.run(image, prompt, args.new_tokens)
                if t["prompt_tokens"] != mmrt_prompt_tokens:
                    print(f"warning: prompt is {t['prompt_tokens']} tokens in Python, {mmrt_prompt_tokens} in mmrt", file=sys.stderr)
                for k, v in t.items():
                    if k != "prompt_tokens":
                        theirs.setdefault(k, []).append(v)
            theirs.setdefault("load_warm", []).append(plain.load())
            # C: onnxruntime-genai on the same prompt ids (image rows as their placeholder id:
            # the same prompt length, so the same prefill and decode work), when its format is there.
            if round_ == 0:
                ids = plain.last_ids
                genai_run, genai_reason = genai_peer(args.genai_dir or args.bundle, ids, args.new_tokens, args.threads)
                if genai_run:
                    for _ in range(args.warmup):
                        genai_run()
            if genai_run:
                for _ in range(args.runs):
                    for k, v in genai_run().items():
                        genai.setdefault(k, []).append(v)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    order = ["load_warm", "preprocess"] + [k for k in ours if k not in ("load_warm", "preprocess")]
    threads = args.threads or "ORT default"
    head = (f"bundle `{env['bundle']}` ({env['quantization']}), {env['cpu_model']}, {env['logical_cores']} logical cores, "
            f"threads {threads}, onnxruntime {env['onnxruntime_version']} (mmrt) / {ort.__version__} (Python); "
            f"1920x1080 JPEG, prompt {prompt!r}, {args.new_tokens} new tokens greedy; "
            f"{args.rounds} interleaved rounds x {args.runs} runs per side")
    print(head + "\n")
    print(table("mmrt vs plain Python onnxruntime loop", ours, theirs, order))
    print()
    if genai_run:
        print(table("mmrt vs onnxruntime-genai (same prompt length; image rows as placeholder ids)", ours, genai, order))
    else:
        print(f"**mmrt vs onnxruntime-genai**: not available — {genai_reason}")
    if args.json:
        args.json.write_text(json.dumps({"settings": head, "mmrt": ours, "python_loop": theirs, "onnxruntime_genai": genai or genai_reason}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
