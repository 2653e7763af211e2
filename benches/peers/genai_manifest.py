"""Write an mmrt bundle.json beside an onnxruntime-genai decoder (model.onnx), so mmrt runs the
very file onnxruntime-genai runs. Tensor names, head size and special tokens come from its
genai_config.json; the prompt format (BOS, stop tokens, chat template) from our Gemma 3 bundle.

    python benches/peers/genai_manifest.py DIR
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from exporters.common.manifest import (  # noqa: E402
    DecoderInputs,
    DecoderOutputs,
    KvCache,
    LlmDecoder,
    Manifest,
)


def manifest(d: Path, genai_config: dict, ours: Manifest) -> Manifest:
    """The manifest of the genai folder ``d``: its decoder's names, our Gemma 3 bundle's prompt and defaults."""
    g = genai_config["model"]
    dec = g["decoder"]
    pattern = lambda n: n.replace("%d", "{layer}")
    return Manifest(
        name=d.name,
        description=f"onnxruntime-genai's own {g['type']} export ({dec['filename']}), run by mmrt unchanged.",
        tokenizer="tokenizer.json",
        stages=[LlmDecoder(
            name="decoder",
            graph=dec["filename"],
            inputs=DecoderInputs(input_ids=dec["inputs"]["input_ids"], attention_mask=dec["inputs"]["attention_mask"]),
            outputs=DecoderOutputs(logits=dec["outputs"]["logits"]),
            kv_cache=KvCache(
                num_layers=dec["num_hidden_layers"],
                past_key=pattern(dec["inputs"]["past_key_names"]),
                past_value=pattern(dec["inputs"]["past_value_names"]),
                present_key=pattern(dec["outputs"]["present_key_names"]),
                present_value=pattern(dec["outputs"]["present_value_names"]),
                head_dim=dec["head_size"],
                # its GroupQueryAttention nodes expect preallocated buffers (past_present_share_buffer)
                shared_buffer=True,
            ),
            context_length=ours.stage(LlmDecoder).context_length,
        )],
        prompt=ours.prompt,
        generation=ours.generation,
    )


def main() -> None:
    d = Path(sys.argv[1])
    config = json.loads((d / "genai_config.json").read_text())
    dec = config["model"]["decoder"]
    ours = Manifest.read(ROOT / "models/gemma3-270m-q4-text")
    files = ["tokenizer.json", dec["filename"]] + sorted(p.name for p in d.glob(dec["filename"] + ".data"))
    manifest(d, config, ours).write(d, files)


if __name__ == "__main__":
    main()
