"""Run onnxruntime-genai's model builder (0.18.0) on the Gemma 3 270M checkpoint.

transformers 5.x stores Gemma 3's rope settings per layer type
(``rope_parameters = {"full_attention": {...}, "sliding_attention": {...}}``);
the builder's generic reader expects the flat form (``rope_parameters["rope_type"]``,
``rope_theta``, ``rope_local_base_freq``). This wrapper shows it the flat form
for the global layers and the local base for the sliding ones, then builds.

    python benches/peers/genai_build.py HF_DIR OUT_DIR [int4|int8|fp32]
"""

import runpy
import sys

import transformers
from onnxruntime_genai.models.builders import base


def flat_rope(make_rope_init):
    def patched(self, config):
        nested = getattr(config, "rope_parameters", None)
        if isinstance(nested, dict) and "full_attention" in nested:
            config.rope_theta = nested["full_attention"]["rope_theta"]
            config.rope_local_base_freq = nested["sliding_attention"]["rope_theta"]
            config.rope_parameters = dict(nested["full_attention"])
            try:
                return make_rope_init(self, config)
            finally:
                config.rope_parameters = nested
        return make_rope_init(self, config)

    return patched


def flat_config(from_pretrained):
    def patched(*args, **kwargs):
        config = from_pretrained(*args, **kwargs)
        nested = getattr(config, "rope_parameters", None)
        if isinstance(nested, dict) and "full_attention" in nested:
            config.rope_theta = nested["full_attention"]["rope_theta"]
            config.rope_local_base_freq = nested["sliding_attention"]["rope_theta"]
            # the generic reader also looks up the flat keys in the same dict
            nested.setdefault("rope_type", nested["full_attention"].get("rope_type", "default"))
            nested.setdefault("rope_theta", config.rope_theta)
        if getattr(config, "quantization_config", "absent") is None:
            del config.quantization_config  # a null one trips the builder's option check
        return config

    return patched


def main() -> None:
    hf, out = sys.argv[1], sys.argv[2]
    precision = sys.argv[3] if len(sys.argv) > 3 else "int4"
    base.Model.make_rope_init = flat_rope(base.Model.make_rope_init)
    transformers.AutoConfig.from_pretrained = flat_config(transformers.AutoConfig.from_pretrained)
    sys.argv = ["builder", "-i", hf, "-o", out, "-p", precision, "-e", "cpu", "-c", out + ".build-cache"]
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")


if __name__ == "__main__":
    main()
