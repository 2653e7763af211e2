"""Synthesize the speech test set offline with espeak-ng and transcribe it
with the converted PyTorch model (the reference mmrt must reproduce).

Each sentence is spoken by two voices/speeds; espeak-ng's 22.05 kHz output is
resampled to 16 kHz here (scipy polyphase), so mmrt and PyTorch read the very
same samples. Writes OUT/NAME.wav and OUT/references.json:
[{"file", "sentence", "voice", "pytorch_text", "pytorch_ids", "beam_size",
"pytorch_beam_text", "pytorch_beam_ids"}]: greedy ``generate()`` and beam search
(``num_beams`` = :data:`BEAMS`, transformers' defaults otherwise: length penalty 1,
no early stopping).

Usage: python -m exporters.whisper.speech_set HF_DIR OUT_DIR
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tokenizers
import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

from ..common.audio import read_wav, resample, write_wav

# Plain sentences chosen before any transcription was seen; not tuned to the model.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is sunny with a light breeze from the west.",
    "My favourite season is autumn because the leaves change colour.",
    "We will meet at the train station at nine in the morning.",
    "Reading books every evening helps me relax before going to sleep.",
]
# (name, espeak-ng arguments): two voices at different speeds.
VOICES = [("us_slow", ["-v", "en-us", "-s", "140"]), ("gb_fast", ["-v", "en-gb", "-s", "175"])]
RATE = 16000
#: Beam width of the beam-search references (Whisper's own evaluation uses 5).
BEAMS = 5


def synthesize(text: str, args, out: Path):
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", *args, "-w", str(raw), text], check=True)
        x, rate = read_wav(raw)
    write_wav(out, resample(x, rate, RATE), RATE)


def main(hf_dir: Path, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    tok = tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    fe = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    refs = []
    for i, sentence in enumerate(SENTENCES):
        for voice, args in VOICES:
            name = f"s{i}_{voice}.wav"
            synthesize(sentence, args, out / name)
            x, rate = read_wav(out / name)
            feats = fe(x, sampling_rate=rate, return_tensors="pt").input_features
            with torch.no_grad():
                ids = model.generate(feats, language="en", task="transcribe")[0].tolist()
                beam_ids = model.generate(feats, language="en", task="transcribe", num_beams=BEAMS)[0].tolist()
            text = tok.decode(ids, skip_special_tokens=True).strip()
            beam_text = tok.decode(beam_ids, skip_special_tokens=True).strip()
            print(f"{name}: {text!r} / beam {BEAMS}: {beam_text!r}")
            refs.append({"file": name, "sentence": sentence, "voice": voice, "pytorch_text": text, "pytorch_ids": ids,
                         "beam_size": BEAMS, "pytorch_beam_text": beam_text, "pytorch_beam_ids": beam_ids})
    (out / "references.json").write_text(json.dumps(refs, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
