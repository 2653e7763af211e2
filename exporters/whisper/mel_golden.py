"""Log-mel goldens from transformers' WhisperFeatureExtractor (numpy path) for
tests/preprocess_audio.rs: for 80 and 128 mel bins, the frames that hold the
speech (plus a margin) as raw little-endian f32 `[n_mels, frames]`, and the
value every later (padding) frame must have.

Usage: python -m exporters.whisper.mel_golden WAV OUT_DIR
"""
import json
import sys
from pathlib import Path

import numpy as np
from transformers import WhisperFeatureExtractor

from ..common.audio import read_wav


def main(wav: Path, out: Path):
    x, rate = read_wav(wav)
    meta = {"wav": wav.name, "sample_rate": rate, "samples": len(x), "goldens": []}
    for n_mels in (80, 128):
        fe = WhisperFeatureExtractor(feature_size=n_mels)
        feats = fe(x, sampling_rate=rate, return_tensors="np").input_features[0]
        keep = len(x) // fe.hop_length + 4
        tail = feats[:, keep:]
        if not np.all(tail == tail[0, 0]):
            raise AssertionError("padding frames are not constant; store them all")
        name = f"log_mel_{n_mels}.f32"
        np.ascontiguousarray(feats[:, :keep], dtype="<f4").tofile(out / name)
        meta["goldens"].append({"file": name, "n_mels": n_mels, "frames_total": int(feats.shape[1]),
                                "frames_stored": keep, "padding_value": float(tail[0, 0])})
    (out / "log_mel.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
