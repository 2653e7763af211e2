"""A wide phoneme check beyond the committed goldens: English sentences from the
docstrings of Python's standard library (shuffled with a fixed seed), phonemized by
piper-tts 1.8.0 into the golden format, for `tests/piper_voice.rs`'s ignored
`phoneme_ids_on_a_corpus`:

    .cache/venv-exporters/bin/python -m exporters.piper.corpus --out .cache/piper-corpus.json --count 1500
    MMRT_PHONEME_CORPUS=.cache/piper-corpus.json cargo test --test piper_voice corpus -- --ignored --nocapture

The standard library's docstrings vary with the Python version; the count of
differing texts is what to compare, not the texts themselves.
"""

import argparse
import importlib
import json
import random
import re
import warnings

from .reference import FLUSH

MODULES = """os re json collections itertools functools pathlib subprocess argparse logging email http.client
urllib.request datetime decimal fractions statistics random string textwrap shutil tarfile zipfile csv sqlite3
threading asyncio socket ssl unittest doctest inspect typing dataclasses enum heapq bisect calendar locale gettext
codecs base64 hashlib hmac secrets uuid pickle copy pprint difflib tempfile glob fnmatch io time math cmath numbers
operator contextlib abc array queue sched signal mmap select selectors struct wave zlib gzip bz2 lzma configparser
netrc plistlib xml.dom.minidom html.parser mimetypes smtplib ftplib poplib imaplib ipaddress turtle cmd shlex venv
zipapp trace tracemalloc timeit pdb profile ast dis tokenize keyword token symtable compileall py_compile platform
sysconfig warnings weakref gc atexit traceback types""".split()


def sentences(count: int, seed: int = 0) -> list[str]:
    found = set()
    warnings.simplefilter("ignore")
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional stdlib module (tkinter...) is simply skipped
            continue
        for attr in dir(module):
            doc = getattr(getattr(module, attr, None), "__doc__", None)
            if not isinstance(doc, str):
                continue
            for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 20 <= len(s) <= 200 and re.match(r"^[A-Z]", s) and not re.search(r"[<>{}\[\]=_`\\|]", s):
                    found.add(s)
    ordered = sorted(found)
    random.Random(seed).shuffle(ordered)
    return ordered[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/piper-joe")
    ap.add_argument("--out", default=".cache/piper-corpus.json")
    ap.add_argument("--count", type=int, default=1500)
    args = ap.parse_args()
    from piper import PiperVoice

    b = args.bundle
    voice = PiperVoice.load(f"{b}/voice.onnx", f"{b}/voice.json", espeak_data_dir=f"{b}/espeak-ng-data")
    rows = []
    for text in sentences(args.count):
        voice.phonemize(FLUSH)
        phonemes = voice.phonemize(text)
        rows.append({"text": text, "phonemes": phonemes, "ids": [voice.phonemes_to_ids(p) for p in phonemes]})
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"sentences": rows}, f, ensure_ascii=False)
    print(f"wrote {len(rows)} texts to {args.out}")


if __name__ == "__main__":
    main()
