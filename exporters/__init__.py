"""mmrt exporters: build per-stage ONNX bundles (and golden outputs) from PyTorch models.

Each model stage (modality encoder, input projector, token embedding, LLM decoder)
is exported as its own ONNX graph and described by a ``bundle.json`` manifest that
the Rust runtime reads.  The package is organised in small modules:

* :mod:`exporters.tokenizer_build` - train the tiny byte-level BPE ``tokenizer.json``.
* :mod:`exporters.tiny_model`      - build the tiny random-weight LLaVA model.
* :mod:`exporters.tiny_audio`      - the tiny model's audio encoder + projector, ``<audio>`` token, audio goldens.
* :mod:`exporters.stages`          - ``torch.nn.Module`` wrappers, one per exported stage.
* :mod:`exporters.onnx_export`     - export the stage wrappers to ONNX graphs.
* :mod:`exporters.preprocess`      - reference image preprocessing (PIL + numpy).
* :mod:`exporters.prompt`          - prompt templating and image / audio token expansion.
* :mod:`exporters.fixtures`        - synthesize deterministic fixture images.
* :mod:`exporters.goldens`         - golden outputs computed by PyTorch.
* :mod:`exporters.ort_pipeline`    - run the exported graphs with onnxruntime like the Rust runtime.
* :mod:`exporters.bundle`          - write ``bundle.json`` with checksums.
* :mod:`exporters.fp16`            - derive the float16 twin of a bundle (``models/tiny-f16``).
* :mod:`exporters.tiny_llava`      - entry point: ``python -m exporters.tiny_llava``.
"""
