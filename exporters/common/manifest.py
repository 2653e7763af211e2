"""The bundle manifest (``bundle.json``, format ``mmrt.bundle`` version 1) as typed Python objects.

Every exporter builds its manifest from these dataclasses and writes it with
:meth:`Manifest.write`, which adds ``format``/``version`` in front and the sha256
``checksums`` of the bundle files at the end. The classes mirror the serde
structs of ``src/manifest.rs`` (which parses with ``deny_unknown_fields`` and
tagged enums): a field here is a key there, in the order written; a field left
``None`` is not written (serde's default applies). :meth:`Manifest.read` parses
a written manifest back (strictly: an unknown key is an error), so a bundle
derived from another one (the float16 twin, vlm-shapes over Gemma 3) is edited
as objects, not as dicts.

Floats and integers are written as the field's type (``float(...)`` /
``int(...)``), so numpy scalars and ints in float fields serialise the same way
every time.

    python -m exporters.common.manifest models/*/   # parse and rewrite each bundle.json in memory: must be byte-identical
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .files import sha256_file

FORMAT = "mmrt.bundle"
VERSION = 1
FILE_NAME = "bundle.json"

#: Field metadata: the field is a writing option, not a manifest key.
OPTION = {"option": True}


# ---------------------------------------------------------------- typed (de)serialisation


def _strip_optional(tp):
    """``X | None`` -> ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise TypeError(f"only `X | None` unions are supported, got {tp}")
    return tp


def _dump(value, tp):
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if isinstance(value, Node):
        return value.to_dict()
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        return [_dump(v, item) for v in value]
    if origin is dict:
        item = typing.get_args(tp)[1]
        return {str(k): _dump(v, item) for k, v in value.items()}
    if tp is bool:
        return bool(value)
    if tp is float:
        return float(value)
    if tp is int:
        return int(value)
    if tp is str:
        return str(value)
    return value


def _load(value, tp, where: str):
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, Node):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        return tp.from_dict(value, where)
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        return [_load(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        item = typing.get_args(tp)[1]
        return {k: _load(v, item, f"{where}.{k}") for k, v in value.items()}
    if tp in (bool, str) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    if tp in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if tp is int and value != int(value):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return tp(value) if tp in (int, float) else value


class Node:
    """A JSON object: the dataclass fields in declaration order, ``None`` fields left out."""

    def to_dict(self) -> dict:
        hints = typing.get_type_hints(type(self))
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and not f.metadata.get("option"):
                out[f.name] = _dump(value, hints[f.name])
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = ""):
        where = where or cls.__name__
        hints = typing.get_type_hints(cls)
        keys = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("option")}
        unknown = [k for k in data if k not in keys]
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (known: {list(keys)})")
        return cls(**{k: _load(v, hints[k], f"{where}.{k}") for k, v in data.items()})


class Tagged(Node):
    """A member of a tagged enum: ``{TAG_KEY: TAG, ...fields}``. Subclasses of a base that sets
    ``TAG_KEY`` register themselves by ``TAG``; the base's :meth:`from_dict` dispatches on it."""

    TAG_KEY: ClassVar[str]
    TAG: ClassVar[str | None] = None
    VARIANTS: ClassVar[dict[str, type]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "TAG_KEY" in cls.__dict__:
            cls.VARIANTS = {}
        elif cls.__dict__.get("TAG") is not None:
            cls.VARIANTS[cls.TAG] = cls

    def to_dict(self) -> dict:
        return {self.TAG_KEY: self.TAG, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: dict, where: str = ""):
        tag = data.get(cls.TAG_KEY)
        variant = cls.VARIANTS.get(tag)
        if variant is None or (cls.TAG is not None and variant is not cls):
            raise ValueError(f"{where or cls.__name__}: {cls.TAG_KEY} {tag!r} is not one of {sorted(cls.VARIANTS)}")
        body = {k: v for k, v in data.items() if k != cls.TAG_KEY}
        return variant._from_body(body, where or f"{variant.__name__}")

    @classmethod
    def _from_body(cls, body: dict, where: str):
        return Node.from_dict.__func__(cls, body, where)


# ---------------------------------------------------------------- preprocessing


class Preprocess(Tagged):
    """The ``preprocess`` object of a ``modality_encoder`` stage, tagged by ``type``."""

    TAG_KEY = "type"


#: CLIP's (and LLaVA's) normalisation.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True, kw_only=True)
class ImagePreprocess(Preprocess):
    """Resize (shortest edge), center crop, rescale, normalise: the parameters of
    :func:`exporters.common.preprocess.preprocess_image` and of ``src/preprocess/image.rs``.
    Written nested (``resize``, ``crop``) as the runtime reads it."""

    TAG = "image"
    shortest_edge: int
    crop_width: int
    crop_height: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float = 1.0 / 255.0
    filter: str = "bicubic"
    layout: str = "nchw"
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {
            "type": self.TAG,
            "resize": {"shortest_edge": int(self.shortest_edge), "filter": self.filter},
            "crop": {"width": int(self.crop_width), "height": int(self.crop_height)},
            "rescale_factor": float(self.rescale_factor),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "layout": self.layout,
            "dtype": self.dtype,
        }

    @classmethod
    def _from_body(cls, body: dict, where: str):
        expected = ["resize", "crop", "rescale_factor", "mean", "std", "layout", "dtype"]
        if list(body) != expected or sorted(body["resize"]) != ["filter", "shortest_edge"] \
                or sorted(body["crop"]) != ["height", "width"]:
            raise ValueError(f"{where}: an image preprocess this writer cannot express: {body}")
        return cls(shortest_edge=body["resize"]["shortest_edge"], crop_width=body["crop"]["width"],
                   crop_height=body["crop"]["height"], mean=tuple(body["mean"]), std=tuple(body["std"]),
                   rescale_factor=body["rescale_factor"], filter=body["resize"]["filter"], layout=body["layout"],
                   dtype=body["dtype"])


@dataclass(frozen=True, kw_only=True)
class AudioPreprocess(Preprocess):
    """Whisper log-mel over ``chunk_seconds`` windows (``src/preprocess/audio.rs``)."""

    TAG = "audio"
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    chunk_seconds: float


@dataclass(frozen=True, kw_only=True)
class VideoPreprocess(Preprocess):
    """Frames sampled from a clip, each preprocessed as an image (``VideoPreprocess`` of
    ``src/preprocess/config.rs``): ``frames`` uniformly over the clip (frame ``i`` of ``n`` is
    ``floor(i * total / n)``), or, with ``fps``, at that rate up to ``frames``. The nested
    ``image`` object is the image preprocess without its tag."""

    TAG = "video"
    frames: int
    image: ImagePreprocess
    fps: float | None = None

    def to_dict(self) -> dict:
        out = {"type": self.TAG, "frames": int(self.frames)}
        if self.fps is not None:
            out["fps"] = float(self.fps)
        out["image"] = {k: v for k, v in self.image.to_dict().items() if k != "type"}
        return out

    @classmethod
    def _from_body(cls, body: dict, where: str):
        unknown = [k for k in body if k not in ("frames", "fps", "image")]
        if unknown or "frames" not in body or "image" not in body:
            raise ValueError(f"{where}: a video preprocess this writer cannot express: {body}")
        image = ImagePreprocess._from_body(dict(body["image"]), f"{where}.image")
        fps = body.get("fps")
        return cls(frames=_load(body["frames"], int, f"{where}.frames"), image=image,
                   fps=None if fps is None else _load(fps, float, f"{where}.fps"))


# ---------------------------------------------------------------- stages


class Stage(Tagged):
    """One stage of the bundle, tagged by ``kind``."""

    TAG_KEY = "kind"

    def graphs(self) -> list[str]:
        """The graph files the stage names, in the order the runtime opens them."""
        raise NotImplementedError


@dataclass(kw_only=True)
class ModalityEncoder(Stage):
    """Raw media (preprocessed) -> features."""

    TAG = "modality_encoder"
    name: str
    modality: str
    graph: str
    input: str
    output: str
    preprocess: Preprocess

    def graphs(self) -> list[str]:
        return [self.graph]


class Temporal(Tagged):
    """How a video projector turns per-frame encoder features into one video's rows
    (``Temporal`` of ``src/manifest/stage.rs``), tagged by ``kind``."""

    TAG_KEY = "kind"


@dataclass(frozen=True, kw_only=True)
class ConcatTemporal(Temporal):
    """The projector runs per frame; the frames' rows follow each other (the default)."""

    TAG = "concat"


@dataclass(frozen=True, kw_only=True)
class MeanTemporal(Temporal):
    """The projector runs per frame; the frames' rows are averaged (one frame's worth of rows)."""

    TAG = "mean"


@dataclass(frozen=True, kw_only=True)
class GraphTemporal(Temporal):
    """The projector graph sees the whole clip: ``input`` [1, F, tokens, d_enc] and
    ``timestamps`` [1, F] (frame times in seconds, float32) -> ``output`` [1, rows, d_llm]."""

    TAG = "graph"
    timestamps: str


@dataclass(kw_only=True)
class InputProjector(Stage):
    """Encoder features -> rows of the LLM's embedding space (``temporal``: video projectors only)."""

    TAG = "input_projector"
    name: str
    modality: str
    graph: str
    input: str
    output: str
    temporal: Temporal | None = None

    def graphs(self) -> list[str]:
        return [self.graph]


@dataclass(kw_only=True)
class Embedding(Node):
    """The token embedding graph of a decoder that takes ``inputs_embeds``; ``scale`` multiplies text rows."""

    graph: str
    input: str
    output: str
    scale: float | None = None


@dataclass(kw_only=True)
class DecoderInputs(Node):
    """Input names of an ``llm_decoder`` graph (token ids or embeddings, mask, positions)."""

    input_ids: str | None = None
    inputs_embeds: str | None = None
    attention_mask: str | None = None
    position_ids: str | None = None


@dataclass(kw_only=True)
class DecoderOutputs(Node):
    """Output names of an ``llm_decoder`` graph (no ``logits`` when a ``token_table`` computes them
    from ``hidden_states``)."""

    logits: str | None = None
    hidden_states: str | None = None


@dataclass(kw_only=True)
class TokenTable(Node):
    """A token table mmrt reads itself (``src/stages/token_table.rs``): the embedding lookup and the
    tied output layer. ``format`` ``q8_0``: ``codes [vocab, width]`` uint8 (int8 code + 128), then
    ``scales [vocab, width / 32]`` float16, little-endian; ``scale`` multiplies looked-up rows."""

    file: str
    format: str = "q8_0"
    vocab: int
    width: int
    scale: float | None = None


@dataclass(kw_only=True)
class KvCache(Node):
    """KV-cache tensor names (``{layer}`` is replaced by the layer index)."""

    num_layers: int
    past_key: str = "past_key_values.{layer}.key"
    past_value: str = "past_key_values.{layer}.value"
    present_key: str = "present.{layer}.key"
    present_value: str = "present.{layer}.value"
    head_dim: int | None = None
    #: The graph updates one preallocated buffer in place (GroupQueryAttention).
    shared_buffer: bool | None = None


@dataclass(kw_only=True)
class LlmDecoder(Stage):
    """The decoder-only LLM backbone with its KV cache."""

    TAG = "llm_decoder"
    name: str
    embedding: Embedding | None = None
    graph: str
    inputs: DecoderInputs
    outputs: DecoderOutputs
    kv_cache: KvCache
    context_length: int
    token_table: TokenTable | None = None
    #: Write ``embedding`` after ``context_length`` instead of after ``name`` (the Gemma 3 bundles'
    #: key order, kept so their manifests stay byte-identical; the runtime does not care).
    embedding_last: bool = field(default=False, metadata=OPTION)

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.embedding_last and "embedding" in out:
            out["embedding"] = out.pop("embedding")
        return out

    @classmethod
    def _from_body(cls, body: dict, where: str):
        stage = super()._from_body(body, where)
        keys = list(body)
        stage.embedding_last = "embedding" in body and keys.index("embedding") > keys.index("graph")
        return stage

    def graphs(self) -> list[str]:
        return ([self.embedding.graph] if self.embedding else []) + [self.graph]


@dataclass(kw_only=True)
class CrossKv(Node):
    """The cross-attention K/V projection graph of a ``seq2seq_decoder``, run once per encoder output."""

    graph: str
    input: str
    key: str
    value: str


@dataclass(kw_only=True)
class DecoderPrompt(Node):
    """The forced first tokens of an encoder-decoder (Whisper: start, language, task, no-timestamps)."""

    start_token_id: int
    language_token_id: int | None = None
    task_token_id: int | None = None
    no_timestamps_token_id: int | None = None


@dataclass(kw_only=True)
class Seq2SeqDecoder(Stage):
    """The text decoder of an encoder-decoder model (Whisper)."""

    TAG = "seq2seq_decoder"
    name: str
    graph: str
    cross_kv: CrossKv
    input_ids: str
    logits: str
    kv_cache: KvCache
    context_length: int
    decoder_prompt: DecoderPrompt
    suppress_tokens: list[int] = field(default_factory=list)
    begin_suppress_tokens: list[int] = field(default_factory=list)

    def graphs(self) -> list[str]:
        return [self.cross_kv.graph, self.graph]


@dataclass(kw_only=True)
class OutputProjector(Stage):
    """LLM hidden states at the signal tokens -> generator conditioning (NExT-GPT)."""

    TAG = "output_projector"
    name: str
    modality: str
    graph: str
    input: str
    output: str
    signal_tokens: list[str]

    def graphs(self) -> list[str]:
        return [self.graph]


@dataclass(kw_only=True)
class DenoiserInputs(Node):
    latents: str
    timestep: str
    conditioning: str


@dataclass(kw_only=True)
class Denoiser(Node):
    graph: str
    inputs: DenoiserInputs
    output: str


@dataclass(kw_only=True)
class LatentDecoder(Node):
    graph: str
    input: str
    output: str


@dataclass(kw_only=True)
class Scheduler(Node):
    """A diffusers scheduler: ``{"kind": kind, **config}`` (the config keys the runtime reads)."""

    kind: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.config}

    @classmethod
    def from_dict(cls, data: dict, where: str = ""):
        return cls(kind=data["kind"], config={k: v for k, v in data.items() if k != "kind"})


class MediaOutput(Tagged):
    """What a generator writes, tagged by ``type``."""

    TAG_KEY = "type"


@dataclass(kw_only=True)
class ImageOutput(MediaOutput):
    TAG = "image"
    format: str = "png"
    value_range: tuple[float, float]


@dataclass(kw_only=True)
class AudioOutput(MediaOutput):
    TAG = "audio"
    format: str = "wav"
    sample_rate: int
    value_range: tuple[float, float]


@dataclass(kw_only=True)
class ModalityGenerator(Stage):
    """Conditioning -> media: a denoiser looped by a scheduler, then a latent decoder."""

    TAG = "modality_generator"
    name: str
    modality: str
    denoiser: Denoiser
    decoder: LatentDecoder
    scheduler: Scheduler
    latent_shape: list[int]
    steps: int
    guidance_scale: float
    output: MediaOutput

    def graphs(self) -> list[str]:
        return [self.denoiser.graph, self.decoder.graph]


@dataclass(kw_only=True)
class TextToSpeech(Stage):
    """A Piper voice: text -> phonemes (espeak-ng) -> ids -> VITS graph -> waveform. ``voice`` is
    Piper's own voice config (``<voice>.onnx.json``), ``espeak_data`` a bundle-relative folder named
    ``espeak-ng-data``. It stands alone in its bundle (a voice bundle: no tokenizer, prompt or generation)."""

    TAG = "text_to_speech"
    name: str
    graph: str
    voice: str
    espeak_data: str

    def graphs(self) -> list[str]:
        return [self.graph]


@dataclass(kw_only=True)
class ConsistencyInputs(Node):
    """Input names of a consistency-function graph (``src/manifest/consistency.rs``)."""

    sample: str
    sigma: str
    condition: str


@dataclass(kw_only=True)
class ScalarCondition(Node):
    """An integer in ``min..=max`` the user picks, fed to the graph as ``(value - offset) / divisor``."""

    name: str
    default: int
    min: int
    max: int
    offset: float
    divisor: float


class SampleTransform(Tagged):
    """What a consistency generator's final sample becomes, tagged by ``kind``."""

    TAG_KEY = "kind"


@dataclass(kw_only=True)
class HeightMapTransform(SampleTransform):
    """Model space -> heights as ``TerrainGenerator._from_model_space`` (adaptive-terrain-diffusion)."""

    TAG = "height_map"
    value_range: tuple[float, float]
    asinh_scale: float
    height_range: float
    zero_floor: bool


@dataclass(kw_only=True)
class ConsistencyGenerator(Stage):
    """Noise -> sample by a consistency model in ``steps`` graph calls (the only stage of its bundle)."""

    TAG = "consistency_generator"
    name: str
    graph: str
    inputs: ConsistencyInputs
    output: str
    sample_shape: list[int]
    sigma_min: float
    sigma_max: float
    rho: float
    steps: int
    condition: ScalarCondition
    output_transform: SampleTransform

    def graphs(self) -> list[str]:
        return [self.graph]


# ---------------------------------------------------------------- prompt, generation, manifest


@dataclass(kw_only=True)
class ChatTemplate(Node):
    """A Jinja chat template (as in a GGUF's ``tokenizer.chat_template`` or transformers'
    ``chat_template.jinja``) kept in a bundle file, with the special-token strings transformers
    passes to it. The rendered text is tokenized without an added BOS (the template writes it)."""

    file: str
    bos_token: str | None = None
    eos_token: str | None = None


@dataclass(kw_only=True)
class Prompt(Node):
    """The prompt format (``src/prompt.rs``): template, media placeholders and their token ids, special ids."""

    template: str
    chat_template: str | None = None
    chat: ChatTemplate | None = None
    placeholders: dict[str, str] | None = None
    media_token_ids: dict[str, int] | None = None
    bos_token_id: int | None = None
    eos_token_ids: list[int]
    pad_token_id: int | None = None
    default_prompt: str | None = None


@dataclass(kw_only=True)
class Generation(Node):
    """Generation defaults; a field left ``None`` takes the runtime's default."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None

    @classmethod
    def greedy(cls, max_new_tokens: int) -> "Generation":
        """Every field written: greedy (temperature 0), no top-k / top-p filtering, no repetition penalty."""
        return cls(max_new_tokens=max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0)


@dataclass(kw_only=True)
class StageSession(Node):
    """Session settings of one stage (the manifest's ``sessions`` block; the command line's
    ``--stage NAME:KEY=VALUE`` wins): provider, threads, CPU memory arena, ONNX Runtime entries."""

    ep: str | None = None
    threads: int | None = None
    arena: bool | None = None
    options: dict[str, str] | None = None


@dataclass(kw_only=True)
class Manifest(Node):
    """The manifest body; :meth:`write` adds ``format``, ``version`` and ``checksums``.

    ``tokenizer``, ``prompt`` and ``generation`` are required of every bundle but a standalone
    generator bundle (one :class:`TextToSpeech` or :class:`ConsistencyGenerator` stage), which has
    none of them (:meth:`check`)."""

    name: str
    description: str
    tokenizer: str | None = None
    # mmrt's compact form of the same tokenizer (compact_tokenizer.py), read in place by the runtime
    compact_tokenizer: str | None = None
    stages: list[Stage]
    prompt: Prompt | None = None
    generation: Generation | None = None
    sessions: dict[str, StageSession] | None = None

    def is_standalone(self) -> bool:
        """Whether this is a standalone generator bundle (a voice or a consistency generator)."""
        return any(isinstance(s, (TextToSpeech, ConsistencyGenerator)) for s in self.stages)

    def check(self) -> None:
        """Raise if the body is not a shape the runtime accepts: a standalone generator bundle (a
        ``text_to_speech`` or ``consistency_generator`` stage) is its one stage without tokenizer and
        prompt; any other bundle has all three of ``tokenizer``, ``prompt`` and ``generation``."""
        if self.is_standalone():
            if len(self.stages) != 1:
                raise ValueError(f"{self.name}: a {self.stages[0].TAG} stage stands alone in its bundle")
            if self.tokenizer is not None or self.prompt is not None:
                raise ValueError(f"{self.name}: a standalone generator bundle has no tokenizer and no prompt")
        else:
            missing = [k for k in ("tokenizer", "prompt", "generation") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{self.name}: {', '.join(missing)} missing (only a standalone generator bundle goes without)")

    def stage(self, kind: type, modality: str | None = None):
        """The first stage of class ``kind`` (and ``modality``, when given), or None."""
        return next((s for s in self.stages if isinstance(s, kind) and modality in (None, getattr(s, "modality", None))), None)

    def graphs(self) -> list[str]:
        """Every graph file the stages name, in stage order."""
        return [g for s in self.stages for g in s.graphs()]

    def document(self, checksums: dict[str, str]) -> dict:
        """The whole bundle.json object."""
        self.check()
        return {"format": FORMAT, "version": VERSION, **self.to_dict(), "checksums": dict(checksums)}

    def write(self, bundle_dir: Path, checksum_files: list[str]) -> Path:
        """Write ``bundle_dir/bundle.json`` with the sha256 of ``checksum_files`` (in that order)."""
        checksums = {name: sha256_file(bundle_dir / name) for name in checksum_files}
        path = bundle_dir / FILE_NAME
        path.write_text(dumps(self.document(checksums)))
        return path

    @classmethod
    def read(cls, bundle_dir: Path) -> "Manifest":
        """Parse ``bundle_dir/bundle.json`` (checksums are not part of the body: see :func:`checksums`)."""
        return cls.from_document(json.loads((Path(bundle_dir) / FILE_NAME).read_text()), str(Path(bundle_dir) / FILE_NAME))

    @classmethod
    def from_document(cls, doc: dict, where: str = "bundle.json") -> "Manifest":
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"{where}: not an {FORMAT} version {VERSION} manifest")
        body = {k: v for k, v in doc.items() if k not in ("format", "version", "checksums")}
        return cls.from_dict(body, where)


def checksums(bundle_dir: Path) -> dict[str, str]:
    """The ``checksums`` table of a written bundle.json: file name -> sha256, in manifest order."""
    return json.loads((Path(bundle_dir) / FILE_NAME).read_text())["checksums"]


def dumps(document: dict) -> str:
    """bundle.json text: two-space indent, UTF-8 as is, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def roundtrip(bundle_dir: Path) -> bool:
    """Whether parsing ``bundle_dir/bundle.json`` and writing it again gives the same bytes."""
    path = Path(bundle_dir) / FILE_NAME
    text = path.read_text()
    doc = json.loads(text)
    return dumps(Manifest.from_document(doc, str(path)).document(doc["checksums"])) == text


if __name__ == "__main__":
    bad = 0
    for arg in sys.argv[1:]:
        if not (Path(arg) / FILE_NAME).is_file():
            print(f"no {FILE_NAME}  {arg}")
            continue
        ok = roundtrip(Path(arg))
        bad += not ok
        print(f"{'identical' if ok else 'DIFFERS'}  {Path(arg) / FILE_NAME}")
    sys.exit(1 if bad else 0)
