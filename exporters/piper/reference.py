"""piper-tts 1.8.0 as the reference for the Piper voice bundle (``models/piper-joe``).

The voice is loaded from the bundle (``voice.onnx``, ``voice.json``, its ``espeak-ng-data/``) into
``piper.voice.PiperVoice`` over a one-thread CPU ONNX Runtime session, and writes:

* ``tests/golden/piper_phonemes.json`` - per :data:`~exporters.piper.sentences.PHONEME_SENTENCES`
  text, piper's phonemes and phoneme ids per sentence;
* ``tests/golden/piper_sentences.json`` - the closed-loop and waveform texts, for the Rust tests;
* ``<bundle>/reference/`` - per :data:`~exporters.piper.sentences.WAVEFORM_SENTENCES` text, with
  noise off (noise_scale 0, length_scale 1, noise_w 0): ``wave_<i>.f32`` the graph's raw output
  (``phoneme_ids_to_audio``, little-endian float32) and ``wave_<i>.s16`` what ``synthesize()``
  gives as 16-bit PCM (peak-normalized, little-endian int16), listed in ``index.json``.

The goldens are written when missing or with ``--goldens``; otherwise they are recomputed and
compared, and a difference is an error (the committed files must stay piper's). The reference
waveforms are written when ``index.json`` is missing or with ``--waves``.

piper's espeak-ng keeps state from one call to the next (clause and intonation context), so
a neutral text (:data:`FLUSH`) is phonemized before every text: each result then depends on
its own text only, as the runtime's phonemizer sees it.

    python -m exporters.piper.reference [--bundle models/piper-joe] [--goldens] [--waves]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..common.paths import MODELS, ROOT
from . import bundle as voice_bundle
from .sentences import CLOSED_LOOP_SENTENCES, PHONEME_SENTENCES, WAVEFORM_SENTENCES

PIPER_VERSION = voice_bundle.PIPER_PACKAGE[1]
GOLDEN_DIR = ROOT / "tests" / "golden"
PHONEMES_GOLDEN = "piper_phonemes.json"
SENTENCES_GOLDEN = "piper_sentences.json"
REFERENCE = "reference"
#: Phonemized before each text to reset the state piper's espeak-ng carries between calls.
FLUSH = "\n"
#: Noise off: the graph's output is then a function of the ids.
QUIET = {"noise_scale": 0.0, "length_scale": 1.0, "noise_w_scale": 0.0}


def load_voice(bundle_dir: Path):
    """``PiperVoice`` over the bundle's files, with a one-thread CPU session (reproducible)."""
    import onnxruntime as ort
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    if version("piper-tts") != PIPER_VERSION:
        raise RuntimeError(f"piper-tts {version('piper-tts')} is installed; the goldens are piper-tts {PIPER_VERSION}'s")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(bundle_dir / voice_bundle.GRAPH), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    config = json.loads((bundle_dir / voice_bundle.VOICE).read_text(encoding="utf-8"))
    return PiperVoice(session=session, config=PiperConfig.from_dict(config),
                      espeak_data_dir=bundle_dir / voice_bundle.ESPEAK_DATA)


def phonemize(voice, text: str) -> list[list[str]]:
    """piper's phonemes of ``text`` per sentence, espeak-ng's carried state flushed first."""
    voice.phonemize(FLUSH)
    return voice.phonemize(text)


def phoneme_golden(voice) -> dict:
    cases = []
    for text in PHONEME_SENTENCES:
        sentences = phonemize(voice, text)
        cases.append({"text": text, "phonemes": sentences, "ids": [voice.phonemes_to_ids(s) for s in sentences]})
    return {"voice": voice.config.espeak_voice, "piper_tts": PIPER_VERSION, "sentences": cases}


def sentence_golden() -> dict:
    return {"closed_loop": list(CLOSED_LOOP_SENTENCES), "waveform": list(WAVEFORM_SENTENCES)}


def golden_text(doc: dict) -> str:
    """One JSON line per sentence case (readable diffs), UTF-8 as is."""
    if "sentences" not in doc:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    head = {k: v for k, v in doc.items() if k != "sentences"}
    lines = [json.dumps(case, ensure_ascii=False) for case in doc["sentences"]]
    body = json.dumps(head, ensure_ascii=False)[:-1]
    return body + ', "sentences": [\n  ' + ",\n  ".join(lines) + "\n]}\n"


def write_or_check(path: Path, doc: dict, regenerate: bool) -> str:
    text = golden_text(doc)
    if regenerate or not path.is_file():
        path.write_text(text, encoding="utf-8")
        return "written"
    if json.loads(path.read_text(encoding="utf-8")) != json.loads(text):
        raise SystemExit(f"piper/reference: {path} differs from what piper-tts {PIPER_VERSION} gives for "
                         f"exporters/piper/sentences.py; rerun with --goldens to rewrite it")
    return "checked"


def write_waves(voice, out: Path) -> list[dict]:
    from piper.config import SynthesisConfig

    quiet = SynthesisConfig(**QUIET)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    waves = []
    for i, text in enumerate(WAVEFORM_SENTENCES):
        sentences = phonemize(voice, text)
        if len(sentences) != 1:
            raise ValueError(f"{text!r}: {len(sentences)} sentences, a waveform text must be one")
        ids = voice.phonemes_to_ids(sentences[0])
        raw = np.asarray(voice.phoneme_ids_to_audio(ids, quiet), dtype=np.float32).reshape(-1)
        again = np.asarray(voice.phoneme_ids_to_audio(ids, quiet), dtype=np.float32).reshape(-1)
        if not np.array_equal(raw, again):
            raise RuntimeError(f"{text!r}: two runs with noise off differ")
        voice.phonemize(FLUSH)
        chunks = list(voice.synthesize(text, quiet))
        if len(chunks) != 1 or chunks[0].phoneme_ids != ids:
            raise RuntimeError(f"{text!r}: synthesize() spoke other ids than phonemize()")
        pcm = chunks[0].audio_int16_array
        if len(pcm) != len(raw):
            raise RuntimeError(f"{text!r}: synthesize() gave {len(pcm)} samples, the graph {len(raw)}")
        names = {"raw": f"wave_{i}.f32", "pcm16": f"wave_{i}.s16"}
        (tmp / names["raw"]).write_bytes(raw.astype("<f4").tobytes())
        (tmp / names["pcm16"]).write_bytes(pcm.astype("<i2").tobytes())
        waves.append({"text": text, "phonemes": sentences[0], "ids": ids, **names, "samples": int(len(raw)),
                      "peak": float(np.max(np.abs(raw)))})
    index = {"voice": voice.config.espeak_voice, "piper_tts": PIPER_VERSION, "sample_rate": voice.config.sample_rate,
             "scales": QUIET, "waves": waves}
    (tmp / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return waves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=MODELS / voice_bundle.NAME)
    ap.add_argument("--goldens", action="store_true", help="rewrite tests/golden/piper_*.json")
    ap.add_argument("--waves", action="store_true", help="rewrite <bundle>/reference/ even when present")
    args = ap.parse_args()
    start = time.time()
    bundle_dir = args.bundle.resolve()
    voice = load_voice(bundle_dir)

    golden = phoneme_golden(voice)
    n_ids = sum(len(ids) for case in golden["sentences"] for ids in case["ids"])
    state = write_or_check(GOLDEN_DIR / PHONEMES_GOLDEN, golden, args.goldens)
    print(f"piper/reference: tests/golden/{PHONEMES_GOLDEN} {state} ({len(golden['sentences'])} texts, {n_ids} ids)")
    state = write_or_check(GOLDEN_DIR / SENTENCES_GOLDEN, sentence_golden(), args.goldens)
    print(f"piper/reference: tests/golden/{SENTENCES_GOLDEN} {state} ({len(CLOSED_LOOP_SENTENCES)} closed-loop, "
          f"{len(WAVEFORM_SENTENCES)} waveform texts)")

    out = bundle_dir / REFERENCE
    if args.waves or not (out / "index.json").is_file():
        waves = write_waves(voice, out)
        print(f"piper/reference: {out}: " + ", ".join(f"{w['raw']}/{w['pcm16']} {w['samples']} samples" for w in waves))
    else:
        print(f"piper/reference: {out} is present")
    print(f"piper/reference: done in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
