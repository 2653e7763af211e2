"""The shared base of the exporters: what every model family uses.

* :mod:`~exporters.common.manifest`    - the typed ``bundle.json`` schema (mirrors ``src/manifest.rs``) and its writer;
* :mod:`~exporters.common.onnx_export` - ``torch.onnx.export`` of a module to one clean, self-contained graph;
* :mod:`~exporters.common.onnx_shared` - several graphs over one shared, deduplicated ``weights.bin``;
* :mod:`~exporters.common.fp16`        - float16 conversion of graphs (inputs and outputs included);
* :mod:`~exporters.common.preprocess`  - reference image preprocessing (the Python twin of ``src/preprocess/image.rs``);
* :mod:`~exporters.common.prompt`      - prompt templating and media token expansion (twin of ``src/prompt.rs``);
* :mod:`~exporters.common.audio`       - reference WAV I/O and resampling;
* :mod:`~exporters.common.files`       - sha256 of files, hard links with a copy fallback;
* :mod:`~exporters.common.wheels`      - fetch a wheel from PyPI once (cached) without installing it;
* :mod:`~exporters.common.paths`       - the repository root and its folders.
"""
