"""NExT-GPT style signal tokens (``[IMG0]`` … ``[IMG3]``) for the tiny model.

The signal tokens are added to the trained tokenizer as *special* tokens (ids
after the BPE vocabulary, skipped when decoding text) and to the LLaVA model by
``resize_token_embeddings``: the vision tower, projector and every existing
row keep their weights, so the text-only behaviour of the model is unchanged
as long as no signal token wins the argmax.

How the random-weight model comes to emit ``[IMG0]`` for some prompts and not
for others is engineered here, honestly and in the open:

* the new embedding rows are random (:data:`SIGNAL_SEED`, std = the model's
  initializer range);
* the ``lm_head`` row of ``[IMG0]`` is ``alpha`` times a random unit vector, so
  its logit is ``alpha * <h, v>``: large when the last hidden state ``h`` points
  along ``v``, which happens for some prompts only;
* the ``lm_head`` rows of ``[IMG1]`` … ``[IMG3]`` are small random vectors
  (their logits stay near 0, far below the winning logits);
* :func:`search` picks the smallest ``alpha`` of :data:`ALPHAS` for which at
  least one candidate prompt emits exactly one complete signal run within the
  token budget and at least one emits none. PyTorch ``generate()`` decides,
  and the goldens record which requests emit the tokens (the text goldens of
  ``tests/golden/tiny.json`` are generated with the same forcing, so a signal
  run may appear in them too).

Once ``[IMG0]`` is generated, the remaining ``[IMG1]`` … ``[IMG{k-1}]`` are
forced, one per step (:class:`ForceSignalRun`, a ``transformers`` logits
processor); the Rust generation loop does the same. The hidden states fed to
the output projector are the decoder's last hidden state (after the final
norm) at the positions whose *input* token is a signal token, as NExT-GPT
reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer
from transformers import LlavaForConditionalGeneration, LogitsProcessor, LogitsProcessorList

from .goldens import GenerateCase
from ..common.preprocess import ImagePreprocess, preprocess_paths
from ..common.prompt import PromptFormat, build_input_ids

#: The image signal tokens, in run order.
SIGNAL_TOKENS = ("[IMG0]", "[IMG1]", "[IMG2]", "[IMG3]")
#: Seed of the new embedding / lm_head rows.
SIGNAL_SEED = 4321
#: Scales tried for the ``[IMG0]`` lm_head row, smallest first.
ALPHAS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 4.0)
#: Token budget of the signal goldens (the bundle's default ``max_new_tokens``).
BUDGET = 24
#: Candidate prompts for the signal / no-signal requests, tried in order.
CANDIDATES = (
    "Draw a picture of a cat.",
    "Generate an image of a red car.",
    "Show me a photo of a mountain lake.",
    "Paint a bowl of fresh fruit.",
    "Make an image of a city street at night.",
    "Create a picture of two people on the beach.",
    "Draw a small dog in a green field.",
    "Show a cup of coffee next to a laptop.",
    "What is the capital of France?",
    "Write one sentence about the sky.",
    "Describe a sunny day.",
    "Count from one to five.",
)


def add_signal_tokens(tokenizer: Tokenizer) -> list[int]:
    """Add :data:`SIGNAL_TOKENS` as special tokens; returns their ids (consecutive, after the vocabulary)."""
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SIGNAL_TOKENS])
    ids = [tokenizer.token_to_id(t) for t in SIGNAL_TOKENS]
    assert all(i is not None for i in ids), ids
    for token, token_id in zip(SIGNAL_TOKENS, ids):
        assert tokenizer.encode(token, add_special_tokens=False).ids == [token_id], f"{token} is not a single token"
    return ids


def add_signal_rows(model: LlavaForConditionalGeneration, signal_ids: list[int], alpha: float, std: float) -> None:
    """Grow the embedding table and lm_head by the signal tokens and draw their rows (see module doc)."""
    new_size = max(signal_ids) + 1
    model.resize_token_embeddings(new_size, mean_resizing=False)
    g = torch.Generator().manual_seed(SIGNAL_SEED)
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    hidden = embed.shape[1]
    with torch.no_grad():
        for token_id in signal_ids:
            embed[token_id] = torch.randn(hidden, generator=g) * std
        direction = torch.randn(hidden, generator=g)
        head[signal_ids[0]] = alpha * direction / direction.norm()
        for token_id in signal_ids[1:]:
            head[token_id] = torch.randn(hidden, generator=g) * 0.02


class ForceSignalRun(LogitsProcessor):
    """After ``[IMG{j}]`` (j < k-1), only ``[IMG{j+1}]`` may follow: a signal run is always complete."""

    def __init__(self, signal_ids: list[int]):
        self.next = {a: b for a, b in zip(signal_ids, signal_ids[1:])}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] == 0:  # generate(inputs_embeds=…) starts with no ids
            return scores
        for row, last in enumerate(input_ids[:, -1].tolist()):
            if last in self.next:
                forced = self.next[last]
                scores[row] = -float("inf")
                scores[row, forced] = 0.0
        return scores


@dataclass
class SignalGeneration:
    """One request's greedy generation and the hidden states of its signal runs."""

    input_ids: list[int]
    output_ids: list[int]
    #: [runs, k, d_llm]: last hidden state at each signal token position, per complete run.
    hidden: np.ndarray


def signal_runs(ids: list[int], signal_ids: list[int]) -> list[int]:
    """Start indices (into ``ids``) of complete signal runs."""
    k = len(signal_ids)
    return [i for i in range(len(ids) - k + 1) if ids[i : i + k] == signal_ids]


@torch.no_grad()
def generate(
    model: LlavaForConditionalGeneration,
    tokenizer: Tokenizer,
    fmt: PromptFormat,
    prep: ImagePreprocess,
    case: GenerateCase,
    tokens_per_image: int,
    signal_ids: list[int],
) -> SignalGeneration:
    """Greedy ``generate()`` with :class:`ForceSignalRun`, then one forward pass over prompt + output for the hidden states."""
    ids = build_input_ids(fmt, tokenizer, case.prompt, len(case.images), tokens_per_image)
    input_ids = torch.tensor([ids], dtype=torch.int64)
    kwargs = {}
    if case.images:
        kwargs["pixel_values"] = torch.from_numpy(preprocess_paths(list(case.images), prep))
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=case.max_new_tokens,
        do_sample=False,
        eos_token_id=list(fmt.eos_token_ids),
        pad_token_id=fmt.pad_token_id,
        logits_processor=LogitsProcessorList([ForceSignalRun(signal_ids)]),
        **kwargs,
    )
    new_ids = out[0, input_ids.shape[1] :].tolist()
    full = out[:, :]
    hidden_all = model.model(input_ids=full, attention_mask=torch.ones_like(full), **kwargs).last_hidden_state[0]
    starts = signal_runs(new_ids, signal_ids)
    k, offset = len(signal_ids), len(ids)
    runs = [hidden_all[offset + s : offset + s + k].numpy() for s in starts]
    hidden = np.stack(runs) if runs else np.zeros((0, k, hidden_all.shape[-1]), dtype=np.float32)
    return SignalGeneration(ids, new_ids, hidden)


def search(model_factory, tokenizer, fmt, prep, tokens_per_image, signal_ids):
    """Pick ``alpha`` and the signal / no-signal prompts (see module doc).

    ``model_factory(alpha)`` returns the model with signal rows drawn at that scale.
    Returns ``(alpha, model, signal_case, no_signal_case)``.
    """
    for alpha in ALPHAS:
        model = model_factory(alpha)
        emitting, silent = None, None
        for prompt in CANDIDATES:
            case = GenerateCase("probe", prompt, (), BUDGET)
            ids = generate(model, tokenizer, fmt, prep, case, tokens_per_image, signal_ids).output_ids
            if emitting is None and ids.count(signal_ids[0]) == 1 and len(signal_runs(ids, signal_ids)) == 1:
                emitting = prompt
            if silent is None and signal_ids[0] not in ids:
                silent = prompt
        if emitting and silent:
            return (
                alpha,
                model,
                GenerateCase("signal", emitting, (), BUDGET),
                GenerateCase("no_signal", silent, (), BUDGET),
            )
    raise RuntimeError("no alpha in ALPHAS gives both a signal and a no-signal prompt")
