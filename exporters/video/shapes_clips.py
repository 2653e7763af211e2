"""Short MP4 clips of one moving vlm-shapes shape, and the reference captions of the vlm-shapes
bundle's video path (``tests/golden/vlm_shapes_video.json``).

    python -m exporters.video.shapes_clips                   # write the clips into .cache/video/shapes/
    python -m exporters.video.shapes_clips --goldens         # + the reference captions (needs the vlm-shapes build)

Clips (:data:`CLIPS`, deterministic): ``shapes-NN.mp4``, 224x224, :data:`FRAMES` frames at :data:`RATE`
fps, H.264 (libx264, yuv420p, CRF 18, one thread) written by PyAV. Each frame is drawn by the
vlm-shapes training renderer itself (:func:`exporters.vlm_shapes.data.render`: same canvas,
polygons, colour jitter, blur and noise; one shape, the clip's own seed for every frame so only
the motion changes) while the shape crosses the frame in a straight line and turns. The folder's
``index.json`` lists each clip's file, sha256, shape, colour, background and caption.

Reference (what ``mmrt run --bundle models/vlm-shapes-f32 --video CLIP`` must reproduce): the
bundle's video encoder samples 4 frames, ``floor(i * total / 4)``, decoded by PyAV in display order
as RGB24 (:mod:`exporters.video.reference`); each frame is preprocessed as an image (shortest edge
224, center crop, x/255, ImageNet mean/std) and encoded by the vision encoder (onnxruntime); the
image projector (PyTorch, the committed float16 weights in float32) runs per frame and the frames'
17 rows are averaged (``temporal: mean``); the rows replace the expanded video placeholder
(``<unused0>``, an unused token of Gemma's tokenizer) of ``"<unused0>\\n{prompt}\\n"`` after BOS, and
transformers' Gemma 3 270M float32 ``generate`` decodes greedily. The golden records per clip the
sampled indices, frame times, frame sha256, prompt ids, greedy ids and text, and whether the
caption names the clip's shape and colour (the accuracy is printed and stored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..common.paths import CACHE, ROOT
from ..vlm_shapes import data as shapes
from . import reference

OUT = CACHE / "video" / "shapes"
GOLDEN = ROOT / "tests" / "golden" / "vlm_shapes_video.json"
SIZE = shapes.SIZE
RATE = 8
FRAMES = 16
#: Frames the bundle's video encoder samples (the manifest's ``preprocess.frames``).
SAMPLED = 4
#: The video placeholder of the vlm-shapes bundles: an unused special token of Gemma 3's tokenizer.
PLACEHOLDER = "<unused0>"
MAX_NEW = 24
SEED = 5_000_011


@dataclass(frozen=True)
class ClipSpec:
    index: int
    shape: str
    colour: str
    background: str

    @property
    def file(self) -> str:
        return f"shapes-{self.index:02d}.mp4"

    def caption(self) -> str:
        return shapes.Scene(self.shape, self.colour, 1, self.background, []).caption()


def clip_specs() -> list[ClipSpec]:
    """Ten clips: every shape twice, every colour at least once, the three backgrounds in turn."""
    colours, backgrounds = list(shapes.COLOURS), list(shapes.BACKGROUNDS)
    return [ClipSpec(k, shapes.SHAPES[k % len(shapes.SHAPES)], colours[k % len(colours)], backgrounds[k % len(backgrounds)])
            for k in range(10)]


def frames(spec: ClipSpec) -> list[np.ndarray]:
    """The clip's RGB frames [224, 224, 3] uint8: the shape moves along a straight line and turns."""
    rng = np.random.default_rng([SEED, spec.index])
    radius = float(rng.uniform(22, 32))
    lo, hi = radius + 6, SIZE - radius - 6
    start, end = rng.uniform(lo, hi, 2), rng.uniform(lo, hi, 2)
    if spec.index % 2 == 0:  # left to right, else top to bottom (and back), so the path crosses the frame
        start[0], end[0] = lo, hi
    else:
        start[1], end[1] = lo, hi
    angle0, turn = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.4, 1.2))
    style_seed = int(rng.integers(1 << 31))
    out = []
    for k in range(FRAMES):
        t = k / (FRAMES - 1)
        cx, cy = (float(v) for v in start + t * (end - start))
        scene = shapes.Scene(spec.shape, spec.colour, 1, spec.background, [(cx, cy, radius, angle0 + turn * t)])
        # The same style draw (colour jitter, blur, noise) in every frame: only the motion changes.
        out.append(np.asarray(shapes.render(scene, np.random.default_rng(style_seed)), np.uint8))
    return out


def encode_mp4(images: list[np.ndarray], path: Path) -> None:
    """H.264 in MP4 by PyAV (libx264, yuv420p, CRF 18, single-threaded: the same bytes every time)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        for k, rgb in enumerate(images):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_clips(out: Path = OUT) -> list[dict]:
    """Write every clip (rewritten each time) and ``index.json``; returns the index rows."""
    rows = []
    for spec in clip_specs():
        path = out / spec.file
        encode_mp4(frames(spec), path)
        rows.append({"file": spec.file, "sha256": sha256(path), "shape": spec.shape, "colour": spec.colour,
                     "background": spec.background, "caption": spec.caption(), "frames": FRAMES, "rate": RATE})
    (out / "index.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def sample(path: Path, n: int = SAMPLED) -> tuple[list[int], list[float], list[np.ndarray]]:
    """The bundle's sampling of a clip by the PyAV reference: (indices, seconds, RGB24 frames)."""
    total = reference.probe(path)["total_frames"]
    got = list(reference.decode(path, reference.uniform_indices(total, n)))
    return [i for i, _, _ in got], [s for _, s, _ in got], [f for _, _, f in got]


def video_prompt_ids(tok, user: str, tokens: int) -> tuple[list[int], int]:
    """(ids with BOS and the video placeholder expanded to ``tokens`` rows, first video row), as mmrt builds them."""
    from ..vlm_shapes.train import prompt_ids

    return prompt_ids(tok, user, tokens, placeholder=PLACEHOLDER)


def goldens(bundle: Path, rows: list[dict], out: Path = OUT, golden: Path = GOLDEN) -> dict:
    """Reference captions of every clip through the bundle's video stages (see module doc)."""
    import torch
    from PIL import Image

    from ..common.manifest import Manifest, ModalityEncoder
    from ..common.preprocess import preprocess_image
    from ..gemma3.reference import load
    from ..vlm_shapes.eval import named
    from ..vlm_shapes.features import encoder_session
    from ..vlm_shapes.encoder import INPUT, OUTPUT, TOKENS
    from ..vlm_shapes.train import WEIGHTS, Projector, tokenizer

    torch.set_num_threads(1)
    manifest = Manifest.read(bundle)
    stage = manifest.stage(ModalityEncoder, "video")
    assert stage.preprocess.frames == SAMPLED, stage.preprocess
    default = manifest.prompt.default_prompt
    model, _ = load()
    tok = tokenizer()
    proj = Projector.from_file(WEIGHTS)
    session = encoder_session()
    embed = model.get_input_embeddings()
    cases, hits = [], {"shape": 0, "colour": 0, "both": 0}
    for row in rows:
        path = out / row["file"]
        indices, seconds, rgb = sample(path)
        pixels = np.concatenate([preprocess_image(Image.fromarray(f, "RGB"), stage.preprocess.image) for f in rgb])
        feats = np.concatenate([session.run([OUTPUT], {INPUT: p[None]})[0] for p in pixels])  # each frame alone
        with torch.no_grad():
            rows_ = proj(torch.from_numpy(feats)).mean(dim=0)  # [17, 640]
            ids, pos = video_prompt_ids(tok, default, TOKENS)
            x = torch.tensor([ids])
            e = embed(x)
            e[0, pos:pos + TOKENS] = rows_
            gen = model.generate(inputs_embeds=e, attention_mask=torch.ones_like(x), max_new_tokens=MAX_NEW,
                                 do_sample=False, eos_token_id=[1, 106], pad_token_id=0)
        got = gen[0].tolist()
        text = tok.decode(got, skip_special_tokens=True)
        said = named(text)
        ok = {"shape": said["shape"] == row["shape"], "colour": said["colour"] == row["colour"]}
        ok["both"] = ok["shape"] and ok["colour"]
        for k, v in ok.items():
            hits[k] += int(v)
        cases.append({**row, "indices": indices, "seconds": seconds,
                      "frame_sha256": [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in rgb],
                      "prompt_ids": ids, "expected_ids": got, "expected_text": text, "named": said, "ok": ok})
        print(f"{row['file']}: {text!r} (truth: {row['caption']!r}) {ok}", flush=True)
    n = len(cases)
    result = {
        "model": "vlm-shapes video: PyAV frames, onnxruntime encoder per frame, PyTorch projector per frame, "
                 "rows averaged over frames, transformers Gemma 3 270M float32 greedy generate",
        "placeholder": PLACEHOLDER,
        "frames": SAMPLED,
        "default_prompt": default,
        "max_new_tokens": MAX_NEW,
        "accuracy": {k: v / n for k, v in hits.items()} | {"clips": n},
        "clips": cases,
    }
    golden.write_text(json.dumps(result, indent=1) + "\n")
    print(f"vlm-shapes video reference accuracy over {n} clips: {result['accuracy']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--goldens", action="store_true", help="also write the reference captions (needs models/vlm-shapes-f32)")
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "vlm-shapes-f32")
    args = ap.parse_args(argv)
    rows = write_clips()
    print(f"wrote {len(rows)} clips into {OUT}")
    if args.goldens:
        goldens(args.bundle, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
