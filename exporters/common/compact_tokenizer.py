"""mmrt's compact tokenizer: a SentencePiece-style BPE ``tokenizer.json`` as one flat file that
the runtime maps and reads in place (``src/tokenizer/compact.rs``), so that start-up parses no
JSON and builds no hash maps (Gemma 3: 262k tokens, 515k merges, ~0.45 s and ~100 MiB through
the ``tokenizers`` crate).

Only one shape is written, the one Gemma's tokenizer has: a BPE model (byte fallback, optional
unk), a normalizer made of string ``Replace``s, no pre-tokenizer (or a ``Split`` on a string the
normalizer has already replaced away), a ``TemplateProcessing`` that adds fixed special tokens
around the sequence, the ``Replace`` + ``ByteFallback`` + ``Fuse`` decoder, and added tokens that
are vocabulary entries matched as written (not normalized, no strip or single-word flags).
:func:`write` returns False for anything else; the runtime then reads ``tokenizer.json``.

Layout (little-endian): ``MMRTBPE1``, u32 header length, a JSON header, zero padding to 4 bytes,
then the sections the header's ``sections`` map places ({name: [offset, bytes]}):

* ``offsets`` u32[vocab + 1]: token ``i`` is ``strings[offsets[i]:offsets[i+1]]`` (UTF-8);
* ``strings``: the token texts, concatenated in id order;
* ``sorted`` u32[vocab]: the ids ordered by their token's bytes (string -> id by binary search);
* ``merge_start`` u32[vocab + 1]: merges whose left token is ``i`` are rows
  ``merge_start[i]:merge_start[i+1]`` of ``merges``;
* ``merges`` u32[merges, 3]: (right id, rank, merged id), by left id then right id. The rank is the
  merge's index in ``tokenizer.json``; a pair listed twice keeps its last rank, as ``tokenizers``
  does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FILE_NAME = "tokenizer.bin"
MAGIC = b"MMRTBPE1"


def write(tokenizer_json: Path, out: Path) -> bool:
    """Write the compact form of ``tokenizer_json`` to ``out``; False (nothing written) when the
    tokenizer is not the one shape this format holds."""
    doc = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    plan = _plan(doc)
    if plan is None:
        return False
    header, sections = plan
    _write(out, header, sections)
    return True


def _plan(doc: dict) -> tuple[dict, dict[str, bytes]] | None:
    model = doc.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout") not in (None, 0.0):
        return None
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("ignore_merges"):
        return None
    vocab: dict[str, int] = model["vocab"]
    n = len(vocab)
    tokens = [None] * n
    for text, i in vocab.items():
        if not 0 <= i < n or tokens[i] is not None:
            return None  # ids not exactly 0..n-1
        tokens[i] = text
    replaces = _normalizer(doc.get("normalizer"))
    if replaces is None or not _pre_tokenizer_is_noop(doc.get("pre_tokenizer"), replaces):
        return None
    affixes = _post_processor(doc.get("post_processor"))
    decode_replace = _decoder(doc.get("decoder"))
    if affixes is None or decode_replace is None:
        return None
    added = []
    for t in doc.get("added_tokens", []):
        if t["normalized"] or t["lstrip"] or t["rstrip"] or t["single_word"] or vocab.get(t["content"]) != t["id"]:
            return None
        added.append([t["id"], bool(t["special"])])
    unk = model.get("unk_token")
    if unk is not None and unk not in vocab:
        return None
    merge_rows = _merges(model["merges"], vocab)
    if merge_rows is None:
        return None

    encoded = [t.encode("utf-8") for t in tokens]
    offsets = np.zeros(n + 1, dtype="<u4")
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    order = sorted(range(n), key=lambda i: encoded[i])
    merge_start = np.zeros(n + 1, dtype="<u4")
    np.add.at(merge_start, merge_rows[:, 0] + 1, 1)
    merge_start = np.cumsum(merge_start).astype("<u4")
    header = {
        "format": "mmrt.bpe", "version": 1, "vocab": n, "merges": int(len(merge_rows)),
        "unk": vocab[unk] if unk is not None else None, "fuse_unk": bool(model.get("fuse_unk")),
        "byte_fallback": bool(model.get("byte_fallback")),
        "normalizer": {"replace": replaces}, "prefix": affixes[0], "suffix": affixes[1],
        "decoder": {"replace": decode_replace, "byte_fallback": True},
        "added": added,
    }
    sections = {
        "offsets": offsets.tobytes(),
        "strings": b"".join(encoded),
        "sorted": np.asarray(order, dtype="<u4").tobytes(),
        "merge_start": merge_start.tobytes(),
        "merges": np.ascontiguousarray(merge_rows[:, 1:], dtype="<u4").tobytes(),
    }
    return header, sections


def _normalizer(node: dict | None) -> list[list[str]] | None:
    """The normalizer as a list of [from, to] string replacements, or None if it is anything else."""
    if node is None:
        return []
    parts = node["normalizers"] if node.get("type") == "Sequence" else [node]
    out = []
    for p in parts:
        if p.get("type") != "Replace" or set(p["pattern"]) != {"String"} or not p["pattern"]["String"]:
            return None
        out.append([p["pattern"]["String"], p["content"]])
    return out


def _pre_tokenizer_is_noop(node: dict | None, replaces: list[list[str]]) -> bool:
    """No pre-tokenizer, or a Split on a string the normalizer replaced away (it never matches)."""
    if node is None:
        return True
    if node.get("type") != "Split" or set(node["pattern"]) != {"String"} or node.get("invert"):
        return False
    pattern = node["pattern"]["String"]
    return any(src == pattern and pattern not in dst for src, dst in replaces)


def _post_processor(node: dict | None) -> tuple[list[int], list[int]] | None:
    """(ids before, ids after) the sequence for ``TemplateProcessing``'s ``single``, or None."""
    if node is None:
        return [], []
    if node.get("type") != "TemplateProcessing":
        return None
    before, after, seen = [], [], False
    for piece in node["single"]:
        if "Sequence" in piece:
            if seen or piece["Sequence"]["id"] != "A":
                return None
            seen = True
        elif "SpecialToken" in piece:
            special = node["special_tokens"][piece["SpecialToken"]["id"]]
            (after if seen else before).extend(special["ids"])
        else:
            return None
    return (before, after) if seen else None


def _decoder(node: dict | None) -> list[str] | None:
    """[from, to] of the Sequence [Replace, ByteFallback, Fuse] decoder, or None."""
    if node is None or node.get("type") != "Sequence":
        return None
    kinds = [d.get("type") for d in node["decoders"]]
    if kinds != ["Replace", "ByteFallback", "Fuse"]:
        return None
    replace = node["decoders"][0]
    if set(replace["pattern"]) != {"String"}:
        return None
    return [replace["pattern"]["String"], replace["content"]]


def _merges(merges: list, vocab: dict[str, int]) -> np.ndarray | None:
    """Rows (left, right, rank, merged id) sorted by (left, right); the last rank of a repeated pair."""
    table: dict[tuple[int, int], tuple[int, int]] = {}
    for rank, m in enumerate(merges):
        parts = m if isinstance(m, list) else m.split(" ")
        if len(parts) != 2:
            return None
        a, b = parts
        merged = vocab.get(a + b)
        if a not in vocab or b not in vocab or merged is None:
            return None
        table[(vocab[a], vocab[b])] = (rank, merged)
    rows = np.array([(l, r, rank, m) for (l, r), (rank, m) in table.items()], dtype=np.int64).reshape(-1, 4)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def _write(out: Path, header: dict, sections: dict[str, bytes]) -> None:
    names = list(sections)
    # the header holds the section offsets, which depend on the header's length: size it with
    # placeholder offsets of the final width, then fill them in
    placeholder = {k: [10**12, 10**12] for k in names}
    size = len(json.dumps({**header, "sections": placeholder}, ensure_ascii=False).encode("utf-8"))
    at = _align(len(MAGIC) + 4 + size)
    placed = {}
    for k in names:
        placed[k] = [at, len(sections[k])]
        at = _align(at + len(sections[k]))
    text = json.dumps({**header, "sections": placed}, ensure_ascii=False).encode("utf-8")
    text += b" " * (size - len(text))
    with open(out, "wb") as f:
        f.write(MAGIC + len(text).to_bytes(4, "little") + text)
        for k in names:
            f.write(b"\0" * (placed[k][0] - f.tell()))
            f.write(sections[k])


def _align(n: int) -> int:
    return (n + 3) // 4 * 4
