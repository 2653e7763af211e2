"""The audio branch of the tiny model: a Whisper-style audio encoder and an MLP
input projector into the tiny LLM's embedding space, the ``<audio>`` placeholder
token, the audio fixtures and the log-mel reference.

Architecture (Qwen2-Audio style, shrunk):

* preprocessing: Whisper log-mel (80 bins, n_fft 400, hop 160, 16 kHz) over
  windows of :attr:`AudioDims.chunk_seconds` (2 s -> 200 frames; longer audio
  is split into consecutive windows, the last one zero-padded, exactly as the
  manifest's ``chunk_seconds`` tells the Rust runtime);
* encoder: ``transformers`` ``WhisperEncoder`` (d_model 32, 2 layers, 4 heads,
  FFN 64, 100 positions after the stride-2 convolution) followed by average
  pooling over time (stride :attr:`AudioDims.pool`) -> 20 audio tokens per window;
* projector: Linear 32->64, GELU, Linear 64->64 (the LLM width).

Tensor contracts (also written into bundle.json):

* :class:`AudioEncoder`:   ``input_features`` [n, 80, 200] -> ``audio_features`` [n, 20, 32]
* :class:`AudioProjector`: ``audio_features`` [n, 20, 32] -> ``audio_embeds`` [n, 20, 64]

The ``<audio>`` token is added to the trained tokenizer as a special token
after the signal tokens, with a new embedding row (replaced by the audio
embeddings before prefill) and a small random ``lm_head`` row (logit near 0,
so it does not win the argmax and text / image generation is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from ..common import onnx_export
from ..common.audio import read_wav, write_wav
from ..common.manifest import AudioPreprocess

AUDIO_TOKEN = "<audio>"
#: Seed of the audio encoder / projector weights and of the ``<audio>`` rows.
AUDIO_SEED = 2468
FIXTURE_DIR = Path("tests/fixtures/audio")
#: The committed espeak-ng utterance (16 kHz, 2.8 s: two windows) and the synthesized sweep (one window).
SPEECH_FIXTURE = FIXTURE_DIR / "speech_16k.wav"
SWEEP_FIXTURE = FIXTURE_DIR / "sweep_16k.wav"


@dataclass(frozen=True)
class AudioDims:
    """Sizes of the audio branch."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    chunk_seconds: float = 2.0
    d_model: int = 32
    layers: int = 2
    heads: int = 4
    ffn: int = 64
    pool: int = 5

    @property
    def frames(self) -> int:
        """Log-mel frames per window."""
        return int(self.chunk_seconds * self.sample_rate) // self.hop_length

    @property
    def tokens_per_window(self) -> int:
        """Encoder positions (frames / 2, the stride-2 convolution) pooled by ``pool``."""
        return self.frames // 2 // self.pool

    def to_manifest(self) -> AudioPreprocess:
        """The ``preprocess`` object of the audio ``modality_encoder`` stage."""
        return AudioPreprocess(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            chunk_seconds=self.chunk_seconds,
        )

    def feature_extractor(self) -> WhisperFeatureExtractor:
        """transformers' log-mel reference with this window (it takes whole seconds)."""
        assert float(self.chunk_seconds).is_integer(), "WhisperFeatureExtractor needs whole seconds"
        return WhisperFeatureExtractor(
            feature_size=self.n_mels,
            sampling_rate=self.sample_rate,
            hop_length=self.hop_length,
            chunk_length=int(self.chunk_seconds),
            n_fft=self.n_fft,
        )


class AudioEncoder(torch.nn.Module):
    """Whisper encoder + average pooling over time."""

    def __init__(self, dims: AudioDims):
        super().__init__()
        config = WhisperConfig(
            num_mel_bins=dims.n_mels,
            d_model=dims.d_model,
            encoder_layers=dims.layers,
            encoder_attention_heads=dims.heads,
            encoder_ffn_dim=dims.ffn,
            max_source_positions=dims.frames // 2,
        )
        self.encoder = WhisperEncoder(config)
        self.pool = torch.nn.AvgPool1d(dims.pool, stride=dims.pool)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """[n, n_mels, frames] -> [n, tokens, d_model]."""
        hidden = self.encoder(input_features).last_hidden_state  # [n, positions, d]
        return self.pool(hidden.transpose(1, 2)).transpose(1, 2)


class AudioProjector(torch.nn.Module):
    """Two-layer MLP into the LLM embedding space."""

    def __init__(self, d_in: int, d_llm: int):
        super().__init__()
        self.linear_1 = torch.nn.Linear(d_in, d_llm)
        self.act = torch.nn.GELU()
        self.linear_2 = torch.nn.Linear(d_llm, d_llm)

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        """[n, tokens, d_in] -> [n, tokens, d_llm]."""
        return self.linear_2(self.act(self.linear_1(audio_features)))


def build_audio_branch(dims: AudioDims, d_llm: int, std: float) -> tuple[AudioEncoder, AudioProjector]:
    """Encoder and projector with weights drawn from :data:`AUDIO_SEED` (eval, fp32).

    Like the tiny LLaVA model: every Linear / Conv weight N(0, std), biases N(0, std/4),
    layer norms at their init; Whisper's sinusoidal position table is kept.
    """
    torch.manual_seed(AUDIO_SEED)
    encoder, projector = AudioEncoder(dims), AudioProjector(dims.d_model, d_llm)
    with torch.no_grad():
        for module in (encoder, projector):
            for name, param in module.named_parameters():
                if "norm" in name or "embed_positions" in name:
                    continue
                param.normal_(0.0, std / 4 if name.endswith("bias") else std)
    return encoder.eval().float(), projector.eval().float()


def add_audio_token(tokenizer: Tokenizer) -> int:
    """Add ``<audio>`` as a special token (after every existing id); returns its id."""
    tokenizer.add_special_tokens([AddedToken(AUDIO_TOKEN, special=True, normalized=False)])
    token_id = tokenizer.token_to_id(AUDIO_TOKEN)
    assert token_id is not None and tokenizer.encode(AUDIO_TOKEN, add_special_tokens=False).ids == [token_id]
    return token_id


def add_audio_row(model, token_id: int, std: float) -> None:
    """Grow the LLM's embedding table and lm_head by the ``<audio>`` row (see module doc)."""
    model.resize_token_embeddings(token_id + 1, mean_resizing=False)
    g = torch.Generator().manual_seed(AUDIO_SEED)
    hidden = model.get_input_embeddings().weight.shape[1]
    with torch.no_grad():
        model.get_input_embeddings().weight[token_id] = torch.randn(hidden, generator=g) * std
        model.get_output_embeddings().weight[token_id] = torch.randn(hidden, generator=g) * 0.02


def export_graphs(branch: tuple[AudioEncoder, AudioProjector], dims: AudioDims, encoder_path: Path, projector_path: Path) -> None:
    """Export both graphs, dynamic in the number of windows:
    ``input_features`` [w, n_mels, frames] -> ``audio_features`` [w, T, d_audio] -> ``audio_embeds`` [w, T, d_text]."""
    from torch.export import Dim

    encoder, projector = branch
    example = torch.randn(2, dims.n_mels, dims.frames)
    windows = {0: Dim("num_windows")}
    onnx_export.export_module(encoder, (example,), encoder_path, ["input_features"], ["audio_features"], {"input_features": windows})
    example = torch.randn(2, dims.tokens_per_window, dims.d_model)
    onnx_export.export_module(projector, (example,), projector_path, ["audio_features"], ["audio_embeds"], {"audio_features": windows})


# -- fixtures ---------------------------------------------------------------------------------


def sweep(dims: AudioDims, seconds: float = 1.25) -> np.ndarray:
    """A logarithmic tone sweep 200 Hz -> 4 kHz with its 2nd harmonic and seeded noise, in [-1, 1]."""
    t = np.arange(int(seconds * dims.sample_rate)) / dims.sample_rate
    f0, f1 = 200.0, 4000.0
    phase = 2 * np.pi * f0 * seconds / np.log(f1 / f0) * (np.exp(t / seconds * np.log(f1 / f0)) - 1)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    noise = np.random.default_rng(5).normal(0, 0.01, t.shape)
    return (0.5 * np.sin(phase) + 0.2 * np.sin(2 * phase)) * envelope + noise


def write_fixtures(dims: AudioDims) -> list[str]:
    """Write the synthesized sweep; returns both audio fixture paths (the speech one is committed)."""
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    write_wav(SWEEP_FIXTURE, sweep(dims), dims.sample_rate)
    assert SPEECH_FIXTURE.is_file(), f"{SPEECH_FIXTURE} is missing (committed espeak-ng utterance)"
    return [SWEEP_FIXTURE.as_posix(), SPEECH_FIXTURE.as_posix()]


# -- reference computation ---------------------------------------------------------------------


def log_mel(path: str, dims: AudioDims) -> np.ndarray:
    """Whisper log-mel of every window of a file: float32 [windows, n_mels, frames] (transformers)."""
    samples, rate = read_wav(Path(path))
    assert rate == dims.sample_rate, f"{path}: {rate} Hz, the fixtures are at {dims.sample_rate} Hz"
    window = int(dims.chunk_seconds * dims.sample_rate)
    fe = dims.feature_extractor()
    chunks = [samples[s : s + window] for s in range(0, max(len(samples), 1), window)]
    feats = [fe(c, sampling_rate=rate, return_tensors="np").input_features[0] for c in chunks]
    return np.stack(feats).astype(np.float32)


@torch.no_grad()
def audio_embeddings(encoder: AudioEncoder, projector: AudioProjector, mel: np.ndarray) -> np.ndarray:
    """Projected embeddings of one file's windows, concatenated: [windows * tokens, d_llm]."""
    embeds = projector(encoder(torch.from_numpy(mel)))
    return embeds.reshape(-1, embeds.shape[-1]).numpy()


# -- goldens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaCase:
    """One golden request with images and/or audio files."""

    name: str
    prompt: str
    images: tuple[str, ...]
    audio: tuple[str, ...]
    max_new_tokens: int


def _flat(array: np.ndarray) -> list[float]:
    """float32 values as the shortest decimal that round-trips through float32."""
    return [float(str(v)) for v in np.asarray(array, dtype=np.float32).reshape(-1)]


@torch.no_grad()
def splice_embeds(model, fmt, ids: list[int], image_rows: np.ndarray | None, audio_rows: list[np.ndarray]) -> torch.Tensor:
    """``inputs_embeds`` [1, s, d]: token embeddings with the rows at image / audio token
    positions replaced by the projected media rows, in prompt order."""
    input_ids = torch.tensor([ids], dtype=torch.int64)
    embeds = model.get_input_embeddings()(input_ids).clone()
    if image_rows is not None:
        embeds[0, input_ids[0] == fmt.image_token_id] = torch.from_numpy(image_rows)
    if audio_rows:
        embeds[0, input_ids[0] == fmt.audio_token_id] = torch.from_numpy(np.concatenate(audio_rows))
    return embeds


@torch.no_grad()
def torch_generate(model, branch, tokenizer, fmt, prep, adims: AudioDims, case: MediaCase, tokens_per_image: int, logits_processor):
    """Greedy ``generate(inputs_embeds=…)`` of the LLaVA model with the media rows spliced in.

    Returns (prompt ids, new ids, per audio file [rows, d] embeddings)."""
    from .goldens import image_embeddings
    from ..common.preprocess import preprocess_paths
    from ..common.prompt import build_input_ids

    encoder, projector = branch
    audio_rows = [audio_embeddings(encoder, projector, log_mel(p, adims)) for p in case.audio]
    ids = build_input_ids(fmt, tokenizer, case.prompt, len(case.images), tokens_per_image, tuple(len(r) for r in audio_rows))
    image_rows = None
    if case.images:
        rows = image_embeddings(model, preprocess_paths(list(case.images), prep))  # [n, T, d]
        image_rows = rows.reshape(-1, rows.shape[-1])
    embeds = splice_embeds(model, fmt, ids, image_rows, audio_rows)
    out = model.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.int64),
        max_new_tokens=case.max_new_tokens,
        do_sample=False,
        eos_token_id=list(fmt.eos_token_ids),
        pad_token_id=fmt.pad_token_id,
        logits_processor=logits_processor,
    )
    return ids, out[0].tolist(), audio_rows


def goldens(model, branch, tokenizer, fmt, prep, adims: AudioDims, cases: list[MediaCase], tokens_per_image: int, forcing) -> dict:
    """``tests/golden/tiny_audio.json``: per fixture the log-mel windows and projected
    embeddings (transformers / PyTorch), per request the prompt ids and greedy ids."""
    files = sorted({p for case in cases for p in case.audio})
    golden = {"tokens_per_window": adims.tokens_per_window, "audio": [], "generate": []}
    for path in files:
        mel = log_mel(path, adims)
        embeds = audio_embeddings(*branch, mel)
        golden["audio"].append(
            {"file": path, "mel_shape": list(mel.shape), "mel": _flat(mel), "embeds_shape": list(embeds.shape), "embeds": _flat(embeds)}
        )
    for case in cases:
        ids, new_ids, _ = torch_generate(model, branch, tokenizer, fmt, prep, adims, case, tokens_per_image, forcing)
        golden["generate"].append(
            {
                "name": case.name,
                "prompt": case.prompt,
                "images": list(case.images),
                "audio": list(case.audio),
                "max_new_tokens": case.max_new_tokens,
                "input_ids": ids,
                "output_ids": new_ids,
                "text": tokenizer.decode(new_ids, skip_special_tokens=True),
            }
        )
    return golden
