"""Export a transformers checkpoint with Optimum (optimum-onnx 0.1.0, ``main_export``, task
``text-generation-with-past``) and lay it out as transformers.js model repositories are:
``config.json``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` at the
top, the graphs under ``onnx/``: ``model.onnx``, ``model_quantized.onnx`` (onnxruntime's dynamic
int8 quantization of the same graph) and ``model_fp16.onnx`` (float16 throughout, KV cache and
logits included). Runs in .cache/venv-optimum (setup_optimum.sh).

    python -m exporters.onnx_folders.optimum_export HF_DIR OUT_DIR
"""

import json
import shutil
import sys
from pathlib import Path

# venv-exporters' diffusers needs a newer huggingface_hub than optimum's transformers 4.57; the
# text export never uses it, so optimum must not import it.
sys.modules["diffusers"] = None


def transformers4_checkpoint(hf: Path, into: Path) -> Path:
    """``hf`` as transformers 4.57 reads it: a transformers 5.x config keeps rope settings in
    ``rope_parameters`` (4.57 would silently fall back to rope_theta 10000) and may write a null
    ``quantization_config`` (which 4.57 fails on). Weights and tokenizer files are linked."""
    into.mkdir(parents=True, exist_ok=True)
    config = json.loads((hf / "config.json").read_text())
    rope = config.pop("rope_parameters", None) or {}
    if "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default":
        config["rope_scaling"] = rope
    if config.get("quantization_config", 0) is None:
        del config["quantization_config"]
    (into / "config.json").write_text(json.dumps(config, indent=2))
    for f in hf.iterdir():
        if f.name != "config.json" and not (into / f.name).exists():
            (into / f.name).symlink_to(f.resolve())
    return into


def main() -> None:
    hf, out = Path(sys.argv[1]), Path(sys.argv[2])
    from optimum.exporters.onnx import main_export
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = out.with_name(out.name + ".export")
    shutil.rmtree(staging, ignore_errors=True)
    hf = transformers4_checkpoint(hf, out.with_name(out.name + ".hf4"))
    main_export(str(hf), output=staging, task="text-generation-with-past", device="cpu", no_post_process=False)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    for f in sorted(staging.iterdir()):
        if f.suffix == ".onnx" or f.name.endswith(".onnx_data") or f.name.endswith(".onnx.data"):
            shutil.move(str(f), out / "onnx" / f.name)
        else:
            shutil.move(str(f), out / f.name)
    shutil.rmtree(staging)
    # Optimum saves the tokenizer through transformers 4.57, which does not know the checkpoint's
    # transformers 5 tokenizer class: ship the checkpoint's own files, as model repositories do.
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (hf / name).exists() and not (out / name).exists():
            shutil.copyfile(hf / name, out / name)
    shutil.rmtree(hf)
    quantize_dynamic(out / "onnx/model.onnx", out / "onnx/model_quantized.onnx", weight_type=QuantType.QInt8)
    # float16 weights, KV cache and logits (inputs and outputs too: keep_io_types=False), as
    # transformers.js ships model_fp16.onnx
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(out / "onnx/model.onnx"), keep_io_types=False, disable_shape_infer=True)
    onnx.save(half, out / "onnx/model_fp16.onnx")
    print(sorted(str(p.relative_to(out)) for p in out.rglob("*")))


if __name__ == "__main__":
    main()
