"""Write an mmrt bundle.json beside an onnxruntime-genai decoder (model.onnx), so mmrt runs the
very file onnxruntime-genai runs. Tensor names, head size and special tokens come from its
genai_config.json; the prompt format (BOS, stop tokens, chat template) from our Gemma 3 bundle.

    python benches/genai_manifest.py DIR
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exporters.bundle import write_manifest  # noqa: E402


def main() -> None:
    d = Path(sys.argv[1])
    g = json.loads((d / "genai_config.json").read_text())["model"]
    dec = g["decoder"]
    ours = json.loads((Path(__file__).resolve().parents[1] / "models/gemma3-270m-q4-text/bundle.json").read_text())
    pattern = lambda n: n.replace("%d", "{layer}")
    manifest = {
        "name": d.name,
        "description": f"onnxruntime-genai's own {g['type']} export ({dec['filename']}), run by mmrt unchanged.",
        "tokenizer": "tokenizer.json",
        "stages": [{
            "kind": "llm_decoder",
            "name": "decoder",
            "graph": dec["filename"],
            "inputs": {"input_ids": dec["inputs"]["input_ids"], "attention_mask": dec["inputs"]["attention_mask"]},
            "outputs": {"logits": dec["outputs"]["logits"]},
            "kv_cache": {
                "num_layers": dec["num_hidden_layers"],
                "past_key": pattern(dec["inputs"]["past_key_names"]),
                "past_value": pattern(dec["inputs"]["past_value_names"]),
                "present_key": pattern(dec["outputs"]["present_key_names"]),
                "present_value": pattern(dec["outputs"]["present_value_names"]),
                "head_dim": dec["head_size"],
                # its GroupQueryAttention nodes expect preallocated buffers (past_present_share_buffer)
                "shared_buffer": True,
            },
            "context_length": ours["stages"][0]["context_length"],
        }],
        "prompt": ours["prompt"],
        "generation": ours["generation"],
    }
    files = ["tokenizer.json", dec["filename"]] + sorted(p.name for p in d.glob(dec["filename"] + ".data"))
    write_manifest(d, manifest, files)


if __name__ == "__main__":
    main()
