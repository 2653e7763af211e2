"""onnxruntime-genai's own loop on a model folder: greedy, the given prompt ids, exactly N new
tokens (min_length = max_length), 1 warm-up + 1 measured run. Prints one JSON line with prefill
ms, time to first token, decode tok/s and the generated ids (to check mmrt makes the same ones).

    python benches/peers/genai_run.py DIR THREADS NEW_TOKENS ID,ID,...
"""

import json
import sys
import time

import onnxruntime_genai as og


def run(model, ids: list[int], new_tokens: int) -> dict:
    params = og.GeneratorParams(model)
    total = len(ids) + new_tokens
    # genai's sliding-window KV buffers need max_length >= the 512-token window; the loop stops at N
    params.set_search_options(do_sample=False, max_length=max(total, 1024), min_length=total)
    gen = og.Generator(model, params)
    t0 = time.perf_counter()
    gen.append_tokens(ids)  # prefill: runs the prompt and computes the first token's logits
    gen.generate_next_token()
    first = time.perf_counter()
    out = [int(gen.get_next_tokens()[0])]
    while len(out) < new_tokens and not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    end = time.perf_counter()
    return {"ttft_ms": (first - t0) * 1e3, "decode_tokens_per_s": (len(out) - 1) / (end - first), "ids": out}


def main() -> None:
    folder, threads, new_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ids = [int(x) for x in sys.argv[4].split(",")]
    cfg_path = f"{folder}/genai_config.json"
    cfg = json.load(open(cfg_path))
    cfg["model"]["decoder"]["session_options"]["intra_op_num_threads"] = threads
    json.dump(cfg, open(cfg_path, "w"), indent=4)
    config = og.Config(folder)
    config.clear_providers()
    model = og.Model(config)
    run(model, ids, min(8, new_tokens))
    r = run(model, ids, new_tokens)
    r["prompt_tokens"] = len(ids)
    r["threads"] = threads
    print(json.dumps(r))


if __name__ == "__main__":
    main()
