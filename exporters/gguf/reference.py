"""The transformers reference of a GGUF: the file loaded by transformers (``gguf_file=``,
dequantized to float32). Its greedy ``generate()`` is what an f32 bundle must reproduce, and
its logits are what the quantized bundle's agreement is measured against.

Loading a GGUF through transformers converts the tokenizer and dequantizes every tensor
(a minute for 270M parameters), so the loaded model and tokenizer are saved once with
``save_pretrained`` to ``.cache/models/<gguf stem>-hf`` and reloaded from there (same
float32 weights).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common.paths import CACHE


def hf_dir(gguf: Path) -> Path:
    """Where the transformers checkpoint of ``gguf`` is cached."""
    return CACHE / "models" / f"{Path(gguf).stem}-hf"


def load(gguf: Path, cache_dir: Path | None = None, dtype=None):
    """(model, tokenizer) of the transformers reference of ``gguf``, eval mode, float32 unless ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    gguf = Path(gguf)
    out = cache_dir or hf_dir(gguf)
    stamp = out / "mmrt-source.json"
    source = {"gguf": gguf.name, "bytes": gguf.stat().st_size}
    if not stamp.exists() or json.loads(stamp.read_text()).get("bytes", source["bytes"]) != source["bytes"]:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.config.quantization_config = None
        if hasattr(model, "hf_quantizer"):
            model.hf_quantizer = None
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        stamp.write_text(json.dumps(source) + "\n")
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=dtype)
    model.eval()
    return model, tok
