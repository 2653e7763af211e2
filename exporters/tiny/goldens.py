"""Golden outputs computed by PyTorch (the reference the Rust tests compare against).

Layout of ``tests/golden/tiny.json``:

* ``preprocess``: per fixture image, ``pixel_values`` [1, 3, 32, 32] flattened (C order);
* ``embeddings``: per image, the projected image embeddings [T, d_text] flattened,
  from ``LlavaForConditionalGeneration.get_image_features``;
* ``generate``: per request, the prompt ``input_ids`` (BOS + image tokens expanded),
  the greedy ``output_ids`` of ``model.generate()`` (new tokens only) and their
  decoded ``text`` (``tokenizer.decode(output_ids, skip_special_tokens=True)``).

Floats are written as the exact float64 value of each float32, so parsing them
as f64 and casting to f32 is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import LlavaForConditionalGeneration

from ..common.preprocess import ImagePreprocess, preprocess_paths
from ..common.prompt import PromptFormat, build_input_ids


@dataclass(frozen=True)
class GenerateCase:
    """One golden generation request."""

    name: str
    prompt: str
    images: tuple[str, ...]
    max_new_tokens: int


def _flat(array: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(array, dtype=np.float32).reshape(-1)]


def preprocess_goldens(image_paths: list[str], params: ImagePreprocess) -> list[dict]:
    """``preprocess`` entries: the reference pixel values of each image."""
    entries = []
    for path in image_paths:
        pixels = preprocess_paths([path], params)
        entries.append({"image": path, "shape": list(pixels.shape), "pixel_values": _flat(pixels)})
    return entries


@torch.no_grad()
def image_embeddings(model: LlavaForConditionalGeneration, pixels: np.ndarray) -> np.ndarray:
    """Projected image embeddings [n, T, d_text] by the LLaVA model's own modules."""
    if pixels.shape[0] == 0:
        return np.zeros((0, 0, model.config.text_config.hidden_size), dtype=np.float32)
    features = model.get_image_features(pixel_values=torch.from_numpy(pixels)).pooler_output
    return torch.stack(list(features)).numpy()


def embedding_goldens(model: LlavaForConditionalGeneration, image_paths: list[str], params: ImagePreprocess) -> list[dict]:
    """``embeddings`` entries: per image, [T, d_text] projected embeddings."""
    entries = []
    for path in image_paths:
        embeds = image_embeddings(model, preprocess_paths([path], params))[0]
        entries.append({"image": path, "shape": list(embeds.shape), "values": _flat(embeds)})
    return entries


@torch.no_grad()
def torch_generate(
    model: LlavaForConditionalGeneration,
    tokenizer: Tokenizer,
    fmt: PromptFormat,
    params: ImagePreprocess,
    case: GenerateCase,
    tokens_per_image: int,
    logits_processor=None,
) -> tuple[list[int], list[int], np.ndarray]:
    """Greedy ``generate()`` (with ``logits_processor``, e.g. the signal-run forcing):
    returns (prompt ids, new ids, last-position prefill logits)."""
    ids = build_input_ids(fmt, tokenizer, case.prompt, len(case.images), tokens_per_image)
    input_ids = torch.tensor([ids], dtype=torch.int64)
    kwargs = {}
    if case.images:
        kwargs["pixel_values"] = torch.from_numpy(preprocess_paths(list(case.images), params))
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=case.max_new_tokens,
        do_sample=False,
        eos_token_id=list(fmt.eos_token_ids),
        pad_token_id=fmt.pad_token_id,
        logits_processor=logits_processor,
        **kwargs,
    )
    new_ids = out[0, input_ids.shape[1] :].tolist()
    logits = model(input_ids=input_ids, **kwargs).logits[0, -1].numpy()
    return ids, new_ids, logits


def generate_golden(case: GenerateCase, ids: list[int], new_ids: list[int], tokenizer: Tokenizer) -> dict:
    """One ``generate`` entry."""
    return {
        "name": case.name,
        "prompt": case.prompt,
        "images": list(case.images),
        "max_new_tokens": case.max_new_tokens,
        "input_ids": ids,
        "output_ids": new_ids,
        "text": tokenizer.decode(new_ids, skip_special_tokens=True),
    }
