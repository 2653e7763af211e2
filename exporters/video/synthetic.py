"""Synthetic clips for tests/video_decode.rs, written with PyAV: long or large H.264 MP4s for the bounded-memory
tests, and short clips in other containers and codecs for the plug-in's format coverage.

    python -m exporters.video.synthetic OUT.mp4 --size 64x64 --fps 25 --seconds 600      # a 10-minute clip
    python -m exporters.video.synthetic OUT.mp4 --size 3840x2160 --fps 25 --seconds 2    # a 4K clip
    python -m exporters.video.synthetic OUT.mp4 --faststart-copy SRC.mp4                  # SRC remuxed, moov first
    python -m exporters.video.synthetic OUT.webm --codec libvpx-vp9 --seconds 2          # container from the suffix

Frame k is a diagonal gradient shifted by k with a bright square moving across it (every frame differs, and the
content is cheap to encode: libx264, preset ultrafast, yuv420p; yuvj420p for MJPEG). The container is the one
FFmpeg names for OUT's suffix (.mp4, .mkv, .webm, .avi, .ts, .mov). Written to a partial name first and renamed, so
an interrupted run never leaves a half clip under the final name. Prints {"path", "frames", "width", "height", "fps"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np


def frame(k: int, width: int, height: int) -> np.ndarray:
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    base = ((x + y + 3 * k) % 256).astype(np.uint8)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = base
    rgb[..., 1] = base[::-1] if height > 1 else base
    rgb[..., 2] = (k * 7) % 256
    side = max(2, min(width, height) // 6)
    cx = (k * max(1, width // 50)) % max(1, width - side)
    cy = (k * max(1, height // 70)) % max(1, height - side)
    rgb[cy:cy + side, cx:cx + side] = 255
    return rgb


def write_clip(out: Path, width: int, height: int, fps: int, seconds: float, codec: str = "libx264",
               bframes: int = 0) -> dict:
    import av

    n = max(1, round(fps * seconds))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")  # the suffix names the container
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "30", "bf": str(bframes)}
        for k in range(n):
            vf = av.VideoFrame.from_ndarray(frame(k, width, height), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(partial, out)
    return {"path": str(out), "frames": n, "width": width, "height": height, "fps": fps}


def faststart_copy(src: Path, out: Path) -> dict:
    """SRC's video stream remuxed (no re-encoding) into an MP4 whose index (moov) comes before the media data, so
    a prefix of the file still opens (the layout a truncated download or recording has)."""
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    n = 0
    with av.open(str(src)) as inp, av.open(str(partial), mode="w", format="mp4",
                                           options={"movflags": "faststart"}) as dst:
        ins = inp.streams.video[0]
        outs = dst.add_stream_from_template(ins)
        for packet in inp.demux(ins):
            if packet.dts is None:
                continue
            packet.stream = outs
            dst.mux(packet)
            n += 1
    os.replace(partial, out)
    return {"path": str(out), "packets": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exporters.video.synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--size", default="64x64", help="WxH (even numbers for yuv420p)")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--codec", default="libx264")
    p.add_argument("--bframes", type=int, default=0, help="libx264: up to this many B-frames in a row (unreferenced)")
    p.add_argument("--faststart-copy", type=Path, metavar="SRC", help="remux SRC with its index first instead")
    a = p.parse_args(argv)
    if a.faststart_copy:
        print(json.dumps(faststart_copy(a.faststart_copy, a.out)))
        return 0
    width, height = (int(v) for v in a.size.lower().split("x"))
    print(json.dumps(write_clip(a.out, width, height, a.fps, a.seconds, a.codec, a.bframes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
