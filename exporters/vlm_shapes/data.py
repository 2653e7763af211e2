"""Captioned images with known content, for the vlm-shapes projector.

Each 224x224 image holds 1-4 copies of one shape in one colour on a plain
background, at random positions, sizes and rotations, with colour jitter,
light Gaussian noise and blur. The caption and QA pairs are derived from that
content. Image ``i`` of split ``s`` is generated from ``seed(s, i)`` alone, so
the train / validation split is fixed and any image can be regenerated.

    python -m exporters.vlm_shapes.data val 200 DIR   # write DIR/val-00000.png ... + DIR/val.json
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 224
SHAPES = ["circle", "square", "triangle", "star", "cross"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}
COLOURS = {
    "red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220),
    "yellow": (240, 210, 20), "purple": (140, 40, 170), "orange": (245, 130, 20),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128)}
COUNTS = ["one", "two", "three", "four"]
SPLIT_SEED = {"train": 1, "val": 2}

# Instructions for the caption; "" is the bare image (no prompt).
CAPTION_PROMPTS = ["", "Describe the image.", "What is in the image?", "Caption this image.",
                   "What do you see?", "Describe this picture in one sentence."]
DEFAULT_PROMPT = "What is in the image?"


@dataclass
class Scene:
    shape: str
    colour: str
    count: int
    background: str
    boxes: list  # (cx, cy, radius, angle) per object

    def caption(self) -> str:
        what = f"{COUNTS[self.count - 1]} {self.colour} {PLURAL[self.shape] if self.count > 1 else self.shape}"
        what = ("A" + what[3:]) if self.count == 1 else what.capitalize()
        return f"{what} on a {self.background} background."

    def qa(self) -> list[tuple[str, str]]:
        noun = PLURAL[self.shape] if self.count > 1 else self.shape
        return [
            ("What colour is the shape?" if self.count == 1 else "What colour are the shapes?", f"{self.colour.capitalize()}."),
            ("What shape is shown?", f"{noun.capitalize()}."),
            ("How many shapes are there?", f"{COUNTS[self.count - 1].capitalize()}."),
            ("What colour is the background?", f"{self.background.capitalize()}."),
        ]


def seed(split: str, index: int) -> int:
    return SPLIT_SEED[split] * 1_000_003 + index


def scene(rng: np.random.Generator) -> Scene:
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    count = int(rng.integers(1, 5))
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    boxes: list = []
    tries = 0
    while len(boxes) < count:
        tries += 1
        r = float(rng.uniform(16, 38 if count <= 2 else 30))
        cx, cy = (float(v) for v in rng.uniform(r + 4, SIZE - r - 4, 2))
        # no overlap (objects stay countable); restart if the layout is too crowded
        if all(math.hypot(cx - x, cy - y) > r + s + 6 for x, y, s, _ in boxes):
            boxes.append((cx, cy, r, float(rng.uniform(0, 2 * math.pi))))
        if tries > 200:
            boxes, tries = [], 0
    return Scene(shape, colour, count, background, boxes)


def _polygon(shape: str, cx: float, cy: float, r: float, a: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(math.cos(a + k * math.pi / 2 + math.pi / 4), math.sin(a + k * math.pi / 2 + math.pi / 4)) for k in range(4)]
        rr = [r] * 4
    elif shape == "triangle":
        pts = [(math.cos(a + k * 2 * math.pi / 3), math.sin(a + k * 2 * math.pi / 3)) for k in range(3)]
        rr = [r] * 3
    elif shape == "star":
        pts = [(math.cos(a + k * math.pi / 5), math.sin(a + k * math.pi / 5)) for k in range(10)]
        rr = [r if k % 2 == 0 else 0.42 * r for k in range(10)]
    elif shape == "cross":
        w = 0.33
        base = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
        c, s = math.cos(a), math.sin(a)
        return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]
    else:
        raise ValueError(shape)
    return [(cx + q * x, cy + q * y) for (x, y), q in zip(pts, rr)]


def render(sc: Scene, rng: np.random.Generator) -> Image.Image:
    jitter = lambda rgb, d: tuple(int(np.clip(v + rng.integers(-d, d + 1), 0, 255)) for v in rgb)
    img = Image.new("RGB", (SIZE, SIZE), jitter(BACKGROUNDS[sc.background], 10))
    draw = ImageDraw.Draw(img)
    for cx, cy, r, a in sc.boxes:
        fill = jitter(COLOURS[sc.colour], 18)
        if sc.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(sc.shape, cx, cy, r, a), fill=fill)
    blur = float(rng.uniform(0, 1.2))
    if blur > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.normal(0, rng.uniform(0, 8), (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).round().astype(np.uint8))


def example(split: str, index: int) -> tuple[Image.Image, Scene]:
    rng = np.random.default_rng(seed(split, index))
    sc = scene(rng)
    return render(sc, rng), sc


def pixels(img: Image.Image) -> np.ndarray:
    """The encoder input [3,224,224] of a 224x224 RGB image (x/255, ImageNet mean/std, float32 in that order)."""
    from .encoder import MEAN, STD

    x = np.asarray(img, np.uint8).astype(np.float32) * np.float32(1 / 255)
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def write_split(split: str, n: int, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img, sc = example(split, i)
        name = f"{split}-{i:05d}.png"
        img.save(out / name)
        rows.append({"file": name, "caption": sc.caption(), **{k: v for k, v in asdict(sc).items() if k != "boxes"}})
    path = out / f"{split}.json"
    path.write_text(json.dumps(rows, indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(write_split(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
