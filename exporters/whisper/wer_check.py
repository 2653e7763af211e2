"""Cross-check of mmrt's WER scoring (src/wer.rs) with transformers' Whisper
``EnglishTextNormalizer``: per utterance of the speech test set, the WER of the
PyTorch transcript (which mmrt's equals) against the sentence, raw (lowercase,
punctuation stripped) and normalized. transformers needs the British→American
spelling table Whisper ships (``english.json``, not in any package here), so it
is given the same word list as src/wer.rs.

Usage: python -m exporters.whisper.wer_check models/whisper-base/testset/references.json
"""
import json
import re
import sys
from pathlib import Path

from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

# The singular table of src/wer.rs (BRITISH_AMERICAN) with its plurals.
SPELLINGS = {
    "analyse": "analyze", "apologise": "apologize", "behaviour": "behavior", "cancelled": "canceled",
    "catalogue": "catalog", "centre": "center", "colour": "color", "coloured": "colored", "defence": "defense",
    "dialogue": "dialog", "favour": "favor", "favourite": "favorite", "flavour": "flavor", "grey": "gray",
    "harbour": "harbor", "honour": "honor", "humour": "humor", "labour": "labor", "licence": "license",
    "litre": "liter", "metre": "meter", "neighbour": "neighbor", "organise": "organize", "programme": "program",
    "realise": "realize", "recognise": "recognize", "theatre": "theater", "travelled": "traveled",
    "travelling": "traveling",
}
SPELLINGS.update({b + "s": a + "s" for b, a in list(SPELLINGS.items()) if not b.endswith(("ed", "ing"))})


def wer(reference: str, hypothesis: str) -> float:
    r, h = reference.split(), hypothesis.split()
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r):
        cur = [i + 1] * (len(h) + 1)
        for j, hw in enumerate(h):
            cur[j + 1] = min(prev[j] + (rw != hw), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(h)] / max(len(r), 1)


def raw(text: str) -> str:
    """The raw scoring of tests/whisper_speech.rs: lowercase, split at spaces and '-', keep letters, digits, '."""
    words = re.split(r"[\s-]+", text.lower())
    return " ".join(w for w in ("".join(c for c in w if c.isalnum() or c == "'") for w in words) if w)


def main(references: Path) -> None:
    normalize = EnglishTextNormalizer(SPELLINGS)
    refs = json.loads(references.read_text())
    total_raw = total_norm = 0.0
    for r in refs:
        a = wer(raw(r["sentence"]), raw(r["pytorch_text"]))
        b = wer(normalize(r["sentence"]), normalize(r["pytorch_text"]))
        total_raw, total_norm = total_raw + a, total_norm + b
        print(f"{r['file']:<18} raw {100 * a:5.1f}%  normalized {100 * b:5.1f}%  {normalize(r['pytorch_text'])!r}")
    n = len(refs)
    print(f"mean WER raw {100 * total_raw / n:.1f}%, normalized (transformers EnglishTextNormalizer) {100 * total_norm / n:.1f}% over {n}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
