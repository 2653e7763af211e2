"""The transformers reference for Gemma 3 270M: the GGUF loaded by transformers
(``gguf_file=``, dequantized to float32). Its greedy ``generate()`` is what the
float32 bundle must reproduce.

Loading the GGUF through transformers takes about a minute (tokenizer
conversion + dequantization), so the loaded model and tokenizer are saved once
with ``save_pretrained`` to ``.cache/models/gemma3-270m-hf`` and reloaded from
there (same float32 weights).
"""

from __future__ import annotations

import json

import torch

from ..common.paths import CACHE
from ..gguf.fetch import fetch

HF_DIR = CACHE / "models" / "gemma3-270m-hf"

# Gemma's chat turn format (the GGUF carries no chat template).
CHAT_TEMPLATE = "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n"


def load(dtype=torch.float32):
    """(model, tokenizer) of the transformers reference, eval mode, float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stamp = HF_DIR / "mmrt-source.json"
    if not stamp.exists():
        gguf = fetch()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.config.quantization_config = None
        if hasattr(model, "hf_quantizer"):
            model.hf_quantizer = None
        HF_DIR.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(HF_DIR)
        tok.save_pretrained(HF_DIR)
        stamp.write_text(json.dumps({"gguf": gguf.name}) + "\n")
    tok = AutoTokenizer.from_pretrained(HF_DIR)
    model = AutoModelForCausalLM.from_pretrained(HF_DIR, dtype=dtype)
    model.eval()
    return model, tok


if __name__ == "__main__":
    m, t = load()
    print(type(m).__name__, sum(p.numel() for p in m.parameters()), t("Hello").input_ids)
