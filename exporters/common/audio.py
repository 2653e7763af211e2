"""Reference audio I/O for the exporters and goldens (Whisper, the tiny model's audio branch):
read a WAV with the standard library, mix to mono, resample with scipy's polyphase filter."""
import wave
from math import gcd

import numpy as np
from scipy.signal import resample_poly


def read_wav(path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate (PCM 16-bit only)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: reference reader handles 16-bit PCM only")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, channels).mean(axis=1), rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x.astype(np.float32)
    g = gcd(rate, target)
    return resample_poly(x, target // g, rate // g).astype(np.float32)


def write_wav(path, x: np.ndarray, rate: int):
    """16-bit PCM mono."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
