"""Build an onnxruntime-genai model of the tiny bundle's language model, so
``benches/peers/peers.py --genai-dir`` has a genai-format decoder to compare with.

The tiny LLaVA is rebuilt from the exporters' fixed seeds (the same weights as
``models/tiny``), its Llama language model and LM head are saved as a Hugging
Face ``LlamaForCausalLM`` checkpoint, and onnxruntime-genai's model builder
turns that into its own graph (GroupQueryAttention, token ids in, fp32, CPU).
The result goes to an ignored folder (default ``out/genai-tiny``); it is the
same weights in onnxruntime-genai's graph, not mmrt's ``decoder.onnx``.

    .cache/venv-exporters/bin/python benches/peers/genai_tiny.py [--out out/genai-tiny]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from exporters.tiny.model import build_model  # noqa: E402
from exporters.tiny.tokenizer import build_tokenizer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "genai-tiny")
    args = ap.parse_args()

    tokenizer = build_tokenizer()
    llava = build_model(tokenizer.get_vocab_size())
    text_config = llava.config.text_config
    lm = LlamaForCausalLM(text_config).eval()
    state = {f"model.{k}": v for k, v in llava.model.language_model.state_dict().items()}
    state.update({f"lm_head.{k}": v for k, v in llava.lm_head.state_dict().items()})
    missing, unexpected = lm.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "rotary" not in m]:
        print(f"error: weights do not map: missing {missing}, unexpected {unexpected}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="mmrt-genai-hf-") as hf:
        lm.save_pretrained(hf)
        PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>").save_pretrained(hf)
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", hf, "-o", str(args.out),
               "-p", "fp32", "-e", "cpu", "-c", str(Path(hf) / "cache")]
        subprocess.run(cmd, check=True)

    # Same weights, two graphs: the genai decoder's first logits must match PyTorch's.
    import numpy as np
    import onnxruntime_genai as og

    ids = [1, 40, 41, 42]
    with torch.no_grad():
        want = lm(torch.tensor([ids])).logits[0, -1].numpy()
    model = og.Model(str(args.out))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    got = np.asarray(gen.get_logits()).reshape(-1)[-want.shape[0]:]
    err = float(np.abs(got - want).max())
    print(f"genai model in {args.out}; last-position logits max |diff| vs PyTorch: {err:.2e}")
    return 0 if err < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
