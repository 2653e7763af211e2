"""Greedy references for the ONNX folders of build.sh, from the tools' own runtimes (never mmrt):

* genai-int4: onnxruntime-genai's ``og.Generator`` (greedy: do_sample False), prompt ids from
  its ``og.Tokenizer``;
* optimum (onnx/model.onnx, onnx/model_quantized.onnx, onnx/model_fp16.onnx): a greedy loop in onnxruntime's Python
  API over the graph (input_ids, attention_mask, position_ids, past_key_values.* -> logits,
  present.*), prompt ids from the ``tokenizers`` library's ``encode`` (special tokens added, as
  transformers does).

Written to a small JSON: per folder (and variant), per prompt, the prompt ids and 32 new ids
(fewer when an eos id comes first; the eos id is included, as mmrt reports it).

    python -m exporters.onnx_folders.goldens .cache/onnx-folders tests/golden/onnx_folders.json
"""

import json
import sys
from pathlib import Path

import numpy as np

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "List three colors:",
]
NEW_TOKENS = 32


def genai(folder: Path) -> list[dict]:
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    tok = og.Tokenizer(model)
    eos = json.loads((folder / "genai_config.json").read_text())["model"]["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    cases = []
    for prompt in PROMPTS:
        ids = [int(i) for i in tok.encode(prompt)]
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + NEW_TOKENS, batch_size=1)
        gen = og.Generator(model, params)
        gen.append_tokens([ids])
        new = []
        while not gen.is_done() and len(new) < NEW_TOKENS:
            gen.generate_next_token()
            new.append(int(gen.get_next_tokens()[0]))
            if new[-1] in eos:
                break
        cases.append({"prompt": prompt, "prompt_ids": ids, "new_ids": new})
    return cases


def ort_greedy(folder: Path, graph: str) -> list[dict]:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    config = json.loads((folder / "config.json").read_text())
    gen_config = json.loads((folder / "generation_config.json").read_text())
    eos = gen_config.get("eos_token_id", config.get("eos_token_id"))
    eos = set(eos if isinstance(eos, list) else [eos])
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    sess = ort.InferenceSession(str(folder / graph), providers=["CPUExecutionProvider"])
    pasts = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    names = [o.name for o in sess.get_outputs()]
    cases = []
    for prompt in PROMPTS:
        ids = tok.encode(prompt).ids
        feed_ids = np.array([ids], dtype=np.int64)
        kv_type = np.float16 if pasts[0].type == "tensor(float16)" else np.float32
        cache = {p.name: np.zeros((1, p.shape[1], 0, p.shape[3]), dtype=kv_type) for p in pasts}
        total, new = 0, []
        while len(new) < NEW_TOKENS:
            n = feed_ids.shape[1]
            feeds = {
                "input_ids": feed_ids,
                "attention_mask": np.ones((1, total + n), dtype=np.int64),
                "position_ids": np.arange(total, total + n, dtype=np.int64)[None, :],
                **cache,
            }
            out = dict(zip(names, sess.run(None, feeds)))
            total += n
            nxt = int(np.argmax(out["logits"][0, -1]))
            new.append(nxt)
            if nxt in eos:
                break
            cache = {p.name: out[p.name.replace("past_key_values.", "present.")] for p in pasts}
            feed_ids = np.array([[nxt]], dtype=np.int64)
        cases.append({"prompt": prompt, "prompt_ids": ids, "new_ids": new})
    return cases


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    import onnxruntime
    import onnxruntime_genai

    golden = {
        "source": "exporters/onnx_folders/goldens.py: onnxruntime-genai og.Generator (greedy) and an onnxruntime "
        "Python greedy loop; SmolLM2-135M-Instruct folders built by exporters/onnx_folders/build.sh",
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_genai": onnxruntime_genai.__version__,
        "new_tokens": NEW_TOKENS,
        "folders": {
            "genai-int4": {"variant": None, "runtime": "onnxruntime-genai og.Generator", "cases": genai(root / "genai-int4")},
            "optimum": {"variant": None, "runtime": "onnxruntime InferenceSession greedy loop",
                        "cases": ort_greedy(root / "optimum", "onnx/model.onnx")},
            "optimum:quantized": {"variant": "quantized", "runtime": "onnxruntime InferenceSession greedy loop",
                                  "cases": ort_greedy(root / "optimum", "onnx/model_quantized.onnx")},
            "optimum:fp16": {"variant": "fp16", "runtime": "onnxruntime InferenceSession greedy loop (float16 KV cache and logits)",
                             "cases": ort_greedy(root / "optimum", "onnx/model_fp16.onnx")},
        },
    }
    out.write_text(json.dumps(golden, indent=1) + "\n")
    for name, f in golden["folders"].items():
        print(name, [len(c["new_ids"]) for c in f["cases"]])


if __name__ == "__main__":
    main()
