"""The tiny random-weight any-to-any test model (``models/tiny``, ``models/tiny-f16``), its
fixtures and its PyTorch / diffusers goldens (``tests/golden/``), all committed.

``bash exporters/tiny/build.sh`` (= ``python -m exporters.tiny.llava``) regenerates everything:

* :mod:`~exporters.tiny.llava`             - entry point: build, write the goldens, verify in onnxruntime;
* :mod:`~exporters.tiny.tokenizer`         - train the tiny byte-level BPE ``tokenizer.json``;
* :mod:`~exporters.tiny.model`             - the tiny LLaVA (CLIP vision tower, MLP projector, Llama decoder);
* :mod:`~exporters.tiny.stages`            - ``torch.nn.Module`` wrappers, one per exported stage;
* :mod:`~exporters.tiny.export`            - export those wrappers to ONNX, check the decoder's shapes;
* :mod:`~exporters.tiny.audio`             - the audio branch (Whisper-style encoder + projector), ``<audio>`` token, audio goldens;
* :mod:`~exporters.tiny.video`             - the video twin ``models/tiny-video`` (built): ``<video>`` token, temporal projector, video goldens;
* :mod:`~exporters.tiny.signal_tokens`     - NExT-GPT ``[IMG0]``… signal tokens;
* :mod:`~exporters.tiny.generator_model`   - output projector, UNet and VAE (diffusers);
* :mod:`~exporters.tiny.generator_export`  - export the output side, rerun it in onnxruntime;
* :mod:`~exporters.tiny.diffusion_goldens` - scheduler and pipeline goldens from diffusers;
* :mod:`~exporters.tiny.fixtures`          - synthesize the fixture images;
* :mod:`~exporters.tiny.goldens`           - golden outputs computed by PyTorch;
* :mod:`~exporters.tiny.ort_pipeline`      - run a bundle with onnxruntime the way the Rust runtime does;
* :mod:`~exporters.tiny.f16`               - derive and check the float16 twin.
"""
