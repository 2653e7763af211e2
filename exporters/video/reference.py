"""PyAV reference decoder: the frames `mmrt frames` must reproduce (RGB within ±1 level, same indices).

    python -m exporters.video.reference CLIP --out DIR --frames 8
    python -m exporters.video.reference CLIP --out DIR --fps 2 --max-frames 6
    python -m exporters.video.reference CLIP --out DIR --indices 0,5,9

writes each sampled frame as raw RGB24 (`frame.to_ndarray(format="rgb24")`, height x width x 3, row-major, no
header) to `DIR/frame_{index:06d}.rgb`, and `DIR/frames.json`:

    {"width", "height", "total_frames", "fps", "indices": [...], "seconds": [...]}

* frame index: the position of the frame in PyAV's `container.decode(video=0)` sequence (display order, 0-based);
* total_frames: `stream.frames` (the container's count); when the container does not know it (0), the frames are
  counted by decoding the clip once;
* fps: `float(stream.average_rate)`;
* seconds: `frame.pts * stream.time_base` of each kept frame.

Sampling rule (the reference for mmrt's own sampling, `mmrt frames --frames N` / `--fps R --max-frames N`):

* uniform, n frames out of `total`:  index_i = floor(i * total / n), i = 0 .. n-1, in integer arithmetic.
  This is transformers' default video sampling: transformers 5.24.0, `transformers/video_utils.py`,
  `default_sample_indices_fn` (lines 317-356), `indices = np.arange(num_frames, dtype=int) * total_num_frames //
  num_frames`. (Its deprecated `get_uniform_frame_indices`, `np.arange(0, total, total / n).astype(int)`, is the
  same rule in floating point.) As there, n > total is an error.
* rate, `fps` frames per second of video time, at most `max_frames`:
      n = min(max_frames, max(1, floor(total / src_fps * fps)))
  then the uniform rule. transformers' `default_sample_indices_fn` computes the same n
  (`max(1, int(total_num_frames / video_fps * fps))`) without the cap.
* explicit: `--indices` keeps exactly the listed frames (sorted, deduplicated).

Decoding follows transformers' `read_video_pyav` (same file): decode in order, keep the sampled indices, stop after
the last one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MAX_FRAMES = 32


def uniform_indices(total: int, n: int) -> list[int]:
    """floor(i * total / n) for i in 0..n-1 (transformers' `default_sample_indices_fn`)."""
    if n < 1:
        raise ValueError(f"frames must be at least 1, got {n}")
    if total < 1:
        raise ValueError("the clip has no frames")
    if n > total:
        raise ValueError(f"{n} frames requested but the clip has only {total}")
    return [i * total // n for i in range(n)]


def rate_count(total: int, src_fps: float, fps: float, max_frames: int) -> int:
    """min(max_frames, max(1, floor(total / src_fps * fps)))."""
    if not (fps > 0 and src_fps > 0):
        raise ValueError(f"rates must be positive (sampling {fps}, source {src_fps})")
    return min(max_frames, max(1, int(total / src_fps * fps)))


def rate_indices(total: int, src_fps: float, fps: float, max_frames: int = DEFAULT_MAX_FRAMES) -> list[int]:
    return uniform_indices(total, rate_count(total, src_fps, fps, max_frames))


def probe(path: str | Path) -> dict:
    """width, height, total_frames, fps of the first video stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = int(stream.frames or 0)
        if total == 0:
            total = sum(1 for _ in container.decode(video=0))
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "total_frames": total,
            "fps": float(stream.average_rate) if stream.average_rate else 0.0,
        }


def decode(path: str | Path, indices: list[int], thread_type: str | None = None):
    """Yield (index, seconds, HxWx3 uint8 RGB array) for the wanted indices, in order; stops after the last one."""
    import av

    wanted = sorted(set(indices))
    if not wanted:
        return
    keep, last = set(wanted), wanted[-1]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if thread_type:
            stream.thread_type = thread_type
        for i, frame in enumerate(container.decode(video=0)):
            if i > last:
                break
            if i in keep:
                pts = frame.pts if frame.pts is not None else frame.dts
                seconds = float(pts * stream.time_base) if pts is not None and stream.time_base else float(frame.time or 0.0)
                yield i, seconds, frame.to_ndarray(format="rgb24")


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.rgb"


def write_reference(path: str | Path, out: Path, *, frames: int | None = None, fps: float | None = None,
                    max_frames: int = DEFAULT_MAX_FRAMES, indices: list[int] | None = None) -> dict:
    info = probe(path)
    total = info["total_frames"]
    if indices is not None:
        picked = sorted(set(indices))
        if picked and (picked[0] < 0 or picked[-1] >= total):
            raise ValueError(f"indices must be in 0..{total - 1}, got {picked}")
    elif fps is not None:
        picked = rate_indices(total, info["fps"], fps, frames if frames is not None else max_frames)
    else:
        picked = uniform_indices(total, frames if frames is not None else 8)
    out.mkdir(parents=True, exist_ok=True)
    got, seconds = [], []
    for index, sec, rgb in decode(path, picked):
        (out / frame_name(index)).write_bytes(rgb.tobytes())
        got.append(index)
        seconds.append(sec)
    if got != picked:
        missing = sorted(set(picked) - set(got))
        raise RuntimeError(f"{path}: the decoder gave no frame for indices {missing} (total_frames {total})")
    report = {**info, "indices": got, "seconds": seconds}
    (out / "frames.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exporters.video.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("clip")
    p.add_argument("--out", required=True, type=Path, help="folder for frame_NNNNNN.rgb and frames.json")
    p.add_argument("--frames", type=int, help="n frames uniformly (default 8); with --fps, the cap")
    p.add_argument("--fps", type=float, help="sample at this rate of video time")
    p.add_argument("--max-frames", type=int, help=f"cap of --fps (default {DEFAULT_MAX_FRAMES})")
    p.add_argument("--indices", help="explicit frame indices, comma-separated")
    a = p.parse_args(argv)
    if a.indices is not None and (a.frames is not None or a.fps is not None):
        p.error("--indices excludes --frames and --fps")
    if a.max_frames is not None and a.fps is None:
        p.error("--max-frames goes with --fps")
    indices = [int(s) for s in a.indices.split(",") if s.strip()] if a.indices is not None else None
    cap = a.max_frames if a.max_frames is not None else (a.frames if a.frames is not None else DEFAULT_MAX_FRAMES)
    try:
        report = write_reference(a.clip, a.out, frames=None if a.fps is not None else a.frames, fps=a.fps,
                                 max_frames=cap, indices=indices)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: report[k] for k in ("width", "height", "total_frames", "fps", "indices")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
