"""A synthetic live stream of moving shapes, as raw RGB24 frames, for `mmrt watch` and its tests.

    python -m exporters.video.moving_shapes --scenes "red circle 3s, blue square 3s" \\
        | mmrt watch --source - --format rgb24 --size 224x224 --rate 8 ...
    python -m exporters.video.moving_shapes --out shapes.rgb --schedule-json shapes.json

Each scene is `COLOUR SHAPE [on BACKGROUND] DURATION`, scenes separated by commas:

* COLOUR: red, green, blue, yellow, purple, orange; SHAPE: circle, square, triangle, star, cross
  (the vlm-shapes vocabulary, exporters/vlm_shapes/data.py);
* BACKGROUND: white, black, gray (default: --background, white);
* DURATION: `3s`, `1.5s`, `500ms` or a bare number of seconds.

One shape per frame, drawn by the vlm-shapes training renderer itself (`exporters.vlm_shapes.data.render`: the same
224x224 canvas, polygons, colour jitter, blur and noise as the training images, so the trained vlm-shapes model
recognises them), moving smoothly inside the frame on a Lissajous path while it slowly turns. Frames of another
`--size` are the 224x224 render resized (bilinear). Frame k of scene s is drawn from the seed (--seed, s, k) alone:
the stream is reproducible.

Output: the frames back to back (height x width x 3 bytes each, no header) on stdout, or in `--out FILE`.
`--realtime` sleeps to pace the frames at `--rate` (on an absolute clock, so no drift); the default is on when
the output is a pipe, FIFO or terminal (a live stream for `mmrt watch`) and off for a regular file (`--out`, or
stdout redirected to a file); `--no-realtime` / `--realtime` override it. `--loop` repeats the scenes until the
reader goes away. A reader that closes the pipe ends the stream quietly (exit 0).

`--schedule-json FILE` writes, before the first frame, the scene schedule a test checks captions against:

    {"width", "height", "rate", "frames", "seconds", "loop",
     "scenes": [{"colour", "shape", "background", "caption", "start", "end", "first_frame", "end_frame"}]}

with start/end in seconds of stream time (frame k is shown at k / rate) and end_frame exclusive.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from exporters.vlm_shapes import data as shapes

RADIUS = 30.0  # inside the training range (16..38 for one shape)
MARGIN = 4.0  # the training layout keeps shapes this far from the border


@dataclass
class SceneSpec:
    colour: str
    shape: str
    background: str
    seconds: float

    def caption(self) -> str:
        return shapes.Scene(self.shape, self.colour, 1, self.background, []).caption()


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", text)
    if not m:
        raise ValueError(f"bad duration {text!r} (e.g. 3s, 1.5s, 500ms)")
    value = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if value <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return value


def parse_scenes(text: str, background: str = "white") -> list[SceneSpec]:
    scenes = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        words = part.lower().split()
        if len(words) not in (3, 5) or (len(words) == 5 and words[2] != "on"):
            raise ValueError(f"bad scene {part!r}: expected 'COLOUR SHAPE [on BACKGROUND] DURATION'")
        colour, shape = words[0], words[1]
        bg = words[3] if len(words) == 5 else background
        if colour not in shapes.COLOURS:
            raise ValueError(f"scene {part!r}: colour {colour!r} is not one of {', '.join(shapes.COLOURS)}")
        if shape not in shapes.SHAPES:
            raise ValueError(f"scene {part!r}: shape {shape!r} is not one of {', '.join(shapes.SHAPES)}")
        if bg not in shapes.BACKGROUNDS:
            raise ValueError(f"scene {part!r}: background {bg!r} is not one of {', '.join(shapes.BACKGROUNDS)}")
        scenes.append(SceneSpec(colour, shape, bg, parse_duration(words[-1])))
    if not scenes:
        raise ValueError("no scenes")
    return scenes


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"bad size {text!r} (WxH, e.g. 224x224)")
    return int(m.group(1)), int(m.group(2))


def schedule(scenes: list[SceneSpec], rate: float) -> list[dict]:
    """Frame ranges on a cumulative clock (no rounding drift): scene s covers frames
    [round(start_s * rate), round(end_s * rate))."""
    rows, t = [], 0.0
    for sc in scenes:
        first, end = round(t * rate), round((t + sc.seconds) * rate)
        rows.append({"colour": sc.colour, "shape": sc.shape, "background": sc.background, "caption": sc.caption(),
                     "start": first / rate, "end": end / rate, "first_frame": first, "end_frame": end})
        t += sc.seconds
    return rows


def position(k: int, rate: float, scene_index: int) -> tuple[float, float, float]:
    """Centre and angle of the shape at frame k of a scene: a Lissajous path inside the frame, slowly turning."""
    t = k / rate
    lo, hi = RADIUS + MARGIN, shapes.SIZE - RADIUS - MARGIN
    mid, amp = (lo + hi) / 2, (hi - lo) / 2
    phase = 1.3 * scene_index
    cx = mid + amp * math.sin(2 * math.pi * t / 5.0 + phase)
    cy = mid + amp * math.sin(2 * math.pi * t / 7.0 + 2 * phase + 0.5)
    return cx, cy, 0.6 * t + phase


def frame(sc: SceneSpec, scene_index: int, k: int, rate: float, size: tuple[int, int], seed: int) -> bytes:
    """Frame k (counted from the scene's start) of scene `scene_index`, RGB24 bytes of `size`."""
    cx, cy, angle = position(k, rate, scene_index)
    rng = np.random.default_rng([seed, scene_index, k])
    img = shapes.render(shapes.Scene(sc.shape, sc.colour, 1, sc.background, [(cx, cy, RADIUS, angle)]), rng)
    if size != (shapes.SIZE, shapes.SIZE):
        img = img.resize(size, Image.BILINEAR)
    return np.asarray(img, np.uint8).tobytes()


def is_live(fd: int) -> bool:
    """A pipe, FIFO, socket or terminal (pace it), not a regular file."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def stream(scenes: list[SceneSpec], out, *, rate: float, size: tuple[int, int], realtime: bool, loop: bool,
           seed: int) -> int:
    """Write the frames; returns how many were written."""
    rows = schedule(scenes, rate)
    written, start = 0, time.monotonic()
    while True:
        for s, (sc, row) in enumerate(zip(scenes, rows)):
            for k in range(row["end_frame"] - row["first_frame"]):
                data = frame(sc, s, k, rate, size, seed)
                if realtime:
                    delay = start + written / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                out.write(data)
                out.flush()
                written += 1
        if not loop:
            return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exporters.video.moving_shapes",
                                description="A raw RGB24 stream of moving vlm-shapes scenes.")
    p.add_argument("--size", default=f"{shapes.SIZE}x{shapes.SIZE}",
                   help=f"WxH (default {shapes.SIZE}x{shapes.SIZE}, the vlm-shapes image size)")
    p.add_argument("--rate", type=float, default=8.0, help="frames per second (default 8)")
    p.add_argument("--scenes", default="red circle 3s, blue square 3s",
                   help="'COLOUR SHAPE [on BACKGROUND] DURATION, ...' (default: %(default)s)")
    p.add_argument("--background", default="white", choices=list(shapes.BACKGROUNDS),
                   help="background of scenes that name none (default white)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace frames at --rate (default: on for a pipe or terminal, off for a file)")
    p.add_argument("--loop", action="store_true", help="repeat the scenes until the reader goes away")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    p.add_argument("--schedule-json", type=Path, help="write the scene schedule (start/end seconds) here")
    a = p.parse_args(argv)
    try:
        size = parse_size(a.size)
        if not (a.rate > 0 and math.isfinite(a.rate)):
            raise ValueError(f"--rate {a.rate} must be positive")
        scenes = parse_scenes(a.scenes, a.background)
    except ValueError as e:
        p.error(str(e))
    rows = schedule(scenes, a.rate)
    if a.schedule_json:
        total = rows[-1]["end_frame"]
        a.schedule_json.write_text(json.dumps({
            "width": size[0], "height": size[1], "rate": a.rate, "frames": total, "seconds": total / a.rate,
            "loop": a.loop, "scenes": rows}, indent=1) + "\n")
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    realtime = a.realtime if a.realtime is not None else is_live(out.fileno())
    try:
        stream(scenes, out, rate=a.rate, size=size, realtime=realtime, loop=a.loop, seed=a.seed)
        out.flush()
    except BrokenPipeError:
        # The reader went away: end quietly. Point stdout at /dev/null so the interpreter's
        # final flush does not raise again (the Python docs' recipe for SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if a.out:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
