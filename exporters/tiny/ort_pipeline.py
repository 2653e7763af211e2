"""Run an exported bundle with onnxruntime exactly the way the Rust runtime does.

Everything is driven by ``bundle.json``: tensor names, preprocessing, prompt
format, KV-cache naming. The flow for one request:

Audio (when the bundle has an audio encoder): each file is split into
``chunk_seconds`` windows, each window's Whisper log-mel (transformers'
``WhisperFeatureExtractor`` with the manifest's settings) goes through
``audio_encoder`` and ``audio_projector``; a file's rows are its windows' rows
in order. Image and audio rows replace their placeholder tokens' rows in
prompt order (the i-th ``<audio>`` placeholder takes the i-th file).

1. preprocess each image (:mod:`exporters.common.preprocess`) -> ``pixel_values`` [n, 3, H, W];
2. ``vision_encoder`` -> ``image_features`` [n, T, d_vision];
3. ``projector`` -> ``image_embeds`` [n, T, d_text];
4. prompt ids (:mod:`exporters.common.prompt`), ``embed`` -> ``inputs_embeds`` [1, s, d_text];
5. merge: the rows at image-token positions are replaced, in order, by the
   ``n * T`` image embedding rows;
6. decoder prefill with empty past tensors ``[1, kv_heads, 0, head_dim]``,
   ``attention_mask`` = ones [1, s], ``position_ids`` = [[0 .. s-1]];
7. greedy loop: argmax of the last logits row; stop after an EOS id (which is
   kept in the output, as ``generate()`` does) or ``max_new_tokens``; the next
   step feeds the token's embedding, ``attention_mask`` = ones [1, past+1],
   ``position_ids`` = [[past]] and the previous ``present.*`` as ``past_key_values.*``;
   after a signal token ``[IMG{j}]`` of the output projector (j < k-1) the next
   token is ``[IMG{j+1}]``, forced (a signal run is always complete).

Like the Rust runtime, every float input is fed in the element type its graph
declares (float32 or float16, read from the session's input metadata), so the
same code runs a float32 bundle and its float16 twin (``models/tiny-f16``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ..common.manifest import InputProjector, LlmDecoder, Manifest, ModalityEncoder, OutputProjector
from ..common.preprocess import preprocess_paths
from ..common.prompt import PromptFormat, build_input_ids


_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _declared(session: ort.InferenceSession, name: str) -> type:
    """The numpy dtype ``session`` declares for input ``name``."""
    (meta,) = [i for i in session.get_inputs() if i.name == name]
    return _NUMPY_DTYPES[meta.type]


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class OrtResult:
    """What one request produced."""

    input_ids: list[int]
    output_ids: list[int]
    image_embeds: np.ndarray  # [n, T, d_text], in the projector's output dtype
    prefill_logits: np.ndarray = field(repr=False, default=None)  # [vocab] float32, last prompt position


class OrtPipeline:
    """The bundle's graphs in onnxruntime, orchestrated from the manifest."""

    def __init__(self, bundle_dir: Path):
        self.dir = Path(bundle_dir)
        self.manifest = Manifest.read(self.dir)
        self.encoder_stage = self.manifest.stage(ModalityEncoder, "image")
        self.projector_stage = self.manifest.stage(InputProjector, "image")
        self.audio_encoder_stage = self.manifest.stage(ModalityEncoder, "audio")
        self.audio_projector_stage = self.manifest.stage(InputProjector, "audio")
        self.decoder_stage = self.manifest.stage(LlmDecoder)

        self.preprocess = self.encoder_stage.preprocess
        self.prompt = PromptFormat.from_manifest(self.manifest.prompt)
        self.tokenizer = Tokenizer.from_file(str(self.dir / self.manifest.tokenizer))

        self.vision = _session(self.dir / self.encoder_stage.graph)  # pixel_values -> image_features
        self.projector = _session(self.dir / self.projector_stage.graph)  # image_features -> image_embeds
        self.embed = _session(self.dir / self.decoder_stage.embedding.graph)  # input_ids -> inputs_embeds
        self.decoder = _session(self.dir / self.decoder_stage.graph)  # embeds, mask, pos, past -> logits, present

        kv = self.decoder_stage.kv_cache
        layers = range(kv.num_layers)
        self.past_names = [(kv.past_key.format(layer=i), kv.past_value.format(layer=i)) for i in layers]
        self.present_names = [(kv.present_key.format(layer=i), kv.present_value.format(layer=i)) for i in layers]
        # KV heads and head_dim come from the graph's own input metadata, not from constants.
        past_meta = {i.name: i for i in self.decoder.get_inputs()}[self.past_names[0][0]]
        self.kv_heads, self.head_dim = past_meta.shape[1], past_meta.shape[3]
        # Element types the graphs declare (float32 or float16), fed as such.
        self.pixel_dtype = _declared(self.vision, self.encoder_stage.input)
        self.features_dtype = _declared(self.projector, self.projector_stage.input)
        self.embeds_dtype = _declared(self.decoder, self.decoder_stage.inputs.inputs_embeds)
        self.past_dtype = _declared(self.decoder, self.past_names[0][0])
        self.tokens_per_image = self.projector.get_outputs()[0].shape[1]
        self.audio = None
        if self.audio_encoder_stage is not None:
            self.audio = (
                _session(self.dir / self.audio_encoder_stage.graph),  # input_features -> audio_features
                _session(self.dir / self.audio_projector_stage.graph),  # audio_features -> audio_embeds
            )
        signal = [self.tokenizer.token_to_id(t) for s in self.manifest.stages if isinstance(s, OutputProjector)
                  for t in s.signal_tokens]
        self.forced_next = dict(zip(signal, signal[1:]))

    # -- stages -----------------------------------------------------------------------------

    def image_embeds(self, image_paths: list[str]) -> np.ndarray:
        """Preprocess, encode and project images: [n, T, d_text]."""
        pixels = preprocess_paths(image_paths, self.preprocess).astype(self.pixel_dtype)
        (features,) = self.vision.run([self.encoder_stage.output], {self.encoder_stage.input: pixels})
        features = features.astype(self.features_dtype, copy=False)
        (embeds,) = self.projector.run([self.projector_stage.output], {self.projector_stage.input: features})
        return embeds

    def audio_embeds(self, path: str) -> np.ndarray:
        """Log-mel per window, encode and project one audio file: [windows * T, d_text]."""
        from transformers import WhisperFeatureExtractor

        from ..common.audio import read_wav, resample

        pre = self.audio_encoder_stage.preprocess
        samples, rate = read_wav(path)
        samples = resample(samples, rate, pre.sample_rate)
        window = int(pre.chunk_seconds * pre.sample_rate)
        fe = WhisperFeatureExtractor(
            feature_size=pre.n_mels, sampling_rate=pre.sample_rate, hop_length=pre.hop_length,
            chunk_length=int(pre.chunk_seconds), n_fft=pre.n_fft,
        )
        chunks = [samples[s : s + window] for s in range(0, max(len(samples), 1), window)]
        mel = np.stack([fe(c, sampling_rate=pre.sample_rate, return_tensors="np").input_features[0] for c in chunks])
        encoder, projector = self.audio
        enc, proj = self.audio_encoder_stage, self.audio_projector_stage
        (features,) = encoder.run([enc.output], {enc.input: mel.astype(_declared(encoder, enc.input))})
        features = features.astype(_declared(projector, proj.input), copy=False)
        (embeds,) = projector.run([proj.output], {proj.input: features})
        return embeds.reshape(-1, embeds.shape[-1])

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        """[1, s, d_text] token embeddings."""
        emb = self.decoder_stage.embedding
        (out,) = self.embed.run([emb.output], {emb.input: np.asarray([ids], dtype=np.int64)})
        return out

    def step(self, embeds: np.ndarray, past: list[tuple[np.ndarray, np.ndarray]], past_len: int):
        """One decoder call: returns (logits [1, s, vocab], present KV list)."""
        seq = embeds.shape[1]
        names = self.decoder_stage.inputs
        feed = {
            names.inputs_embeds: embeds.astype(self.embeds_dtype, copy=False),
            names.attention_mask: np.ones((1, past_len + seq), dtype=np.int64),
            names.position_ids: np.arange(past_len, past_len + seq, dtype=np.int64)[None],
        }
        for (key_name, value_name), (key, value) in zip(self.past_names, past):
            feed[key_name], feed[value_name] = key, value
        output_names = [self.decoder_stage.outputs.logits] + [n for pair in self.present_names for n in pair]
        logits, *flat = self.decoder.run(output_names, feed)
        present = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(self.present_names))]
        return logits, present

    # -- request ------------------------------------------------------------------------------

    def generate(self, prompt: str, image_paths: list[str], max_new_tokens: int, audio_paths: tuple[str, ...] = ()) -> OrtResult:
        """Greedy generation for one request."""
        audio_rows = [self.audio_embeds(p) for p in audio_paths]
        ids = build_input_ids(
            self.prompt, self.tokenizer, prompt, len(image_paths), self.tokens_per_image, tuple(len(r) for r in audio_rows)
        )
        embeds = self.embed_ids(ids)
        image_embeds = self.image_embeds(image_paths)
        positions = [i for i, t in enumerate(ids) if t == self.prompt.image_token_id]
        rows = image_embeds.reshape(-1, image_embeds.shape[-1])
        assert len(positions) == rows.shape[0], "image token count != image embedding rows"
        embeds[0, positions] = rows
        if audio_rows:
            positions = [i for i, t in enumerate(ids) if t == self.prompt.audio_token_id]
            embeds[0, positions] = np.concatenate(audio_rows)

        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.past_dtype)
        past = [(empty, empty) for _ in self.past_names]
        past_len = 0
        output: list[int] = []
        prefill_logits = None
        while len(output) < max_new_tokens:
            logits, past = self.step(embeds, past, past_len)
            past_len += embeds.shape[1]
            if prefill_logits is None:
                prefill_logits = logits[0, -1].astype(np.float32)
            token = self.forced_next.get(output[-1]) if output else None
            token = int(np.argmax(logits[0, -1])) if token is None else token
            output.append(token)
            if token in self.prompt.eos_token_ids:
                break
            embeds = self.embed_ids([token])
        return OrtResult(ids, output, image_embeds, prefill_logits)
