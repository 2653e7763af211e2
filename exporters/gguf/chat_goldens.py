"""Chat template goldens: conversations rendered by transformers' ``apply_chat_template``.

For each GGUF source below, the chat template and the BOS/EOS token strings are read from
the GGUF metadata (``tokenizer.chat_template``, ``tokenizer.ggml.bos_token_id`` /
``eos_token_id`` looked up in ``tokenizer.ggml.tokens``); the tokenizer is loaded by
transformers from the same file, and every conversation is rendered with
``apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``. The Rust test
``tests/chat_template.rs`` renders the same conversations with ``mmrt::chat::ChatTemplate``
and asserts byte equality.

The script also checks that the token strings transformers' tokenizer holds equal the ones
the GGUF names, and that the template transformers renders with is the GGUF's.

Layout of ``tests/golden/chat_templates.json``::

    {"transformers": "5.x", "models": [
        {"source": "smollm2", "file": "....gguf", "template": "...", "bos_token": "...",
         "eos_token": "...", "cases": [
            {"name": "...", "messages": [{"role": ..., "content": ...}],
             "add_generation_prompt": true, "expected": "..."}]}]}

    python -m exporters.gguf.chat_goldens            # from the repository root, in the venv
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import transformers
from transformers import AutoTokenizer

from ..common.paths import ROOT
from .fetch import fetch

SOURCES = ("smollm2", "qwen2.5-coder")
OUT = ROOT / "tests" / "golden" / "chat_templates.json"

# (name, messages, add_generation_prompt)
CONVERSATIONS: list[tuple[str, list[dict[str, str]], bool]] = [
    ("system_user", [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ], True),
    ("user_only_default_system", [
        {"role": "user", "content": "Hello!"},
    ], True),
    ("multi_turn", [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And grass?"},
        {"role": "assistant", "content": "Green."},
        {"role": "user", "content": "Snow?"},
    ], True),
    ("multi_turn_no_generation_prompt", [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "1, 2, 3."},
    ], False),
    ("user_only_no_generation_prompt", [
        {"role": "user", "content": "Hi"},
    ], False),
    ("non_ascii", [
        {"role": "system", "content": "Réponds en français, s'il te plaît."},
        {"role": "user", "content": "Qu'est-ce que « naïveté » ? 日本語でも 🙂 — Ελληνικά"},
    ], True),
    ("whitespace", [
        {"role": "user", "content": "\n\n  leading and trailing spaces\t \n"},
        {"role": "assistant", "content": "  ok  \n"},
        {"role": "user", "content": " \nline one\n\nline two\n "},
    ], True),
    ("code_and_braces", [
        {"role": "user", "content": "Write `{% raw %}` and {{ x }} in Python: def f(): return {'a': 1}"},
    ], True),
]


# A template written here to exercise what real templates use beyond the two above: Python string
# methods, namespace, loop controls, tojson, raise_exception, indented block tags (lstrip_blocks),
# newlines after block tags (trim_blocks) and a trailing newline (dropped, keep_trailing_newline off).
FEATURES_TEMPLATE = """{%- set ns = namespace(system='', turns=0) %}
{% for message in messages %}
    {% if message['role'] == 'system' %}
        {% set ns.system = message['content'].strip() %}
        {% continue %}
    {% endif %}
    {% if message.role not in ['user', 'assistant'] %}
        {{ raise_exception('unknown role ' + message.role) }}
    {% endif %}
    {% set ns.turns = ns.turns + 1 %}
[{{ loop.index0 }}:{{ message.role.upper() }}{% if message.content.startswith(' ') %} (indented){% endif %}]
{{ message['content'].strip() }} | words={{ message.content.split()|length }} | {{ message.content.replace('a', 'A').rstrip() }}
    {% if ns.turns > 6 %}{% break %}{% endif %}
{% endfor %}
system={{ ns.system|tojson }} last={{ messages[-1]|tojson }}
{% if add_generation_prompt %}
{{ bos_token }}assistant:{% endif %}
"""


def _field(reader: gguf.GGUFReader, key: str):
    """The value of a GGUF metadata field (a string, an int or a list of strings)."""
    field = reader.fields[key]
    if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    value = field.parts[field.data[0]]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value).decode("utf-8")
    return int(value[0])


def model_goldens(source: str) -> list[dict]:
    """The goldens of one GGUF's template (and, for smollm2, of :data:`FEATURES_TEMPLATE` with its tokens)."""
    path = fetch(source)
    reader = gguf.GGUFReader(path)
    template = _field(reader, "tokenizer.chat_template")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    bos = tokens[_field(reader, "tokenizer.ggml.bos_token_id")]
    eos = tokens[_field(reader, "tokenizer.ggml.eos_token_id")]

    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # The strings transformers passes to the template must be the ones the GGUF names.
    if tok.bos_token is not None and tok.bos_token != bos:
        raise SystemExit(f"{source}: transformers' bos_token {tok.bos_token!r} != GGUF's {bos!r}")
    if tok.eos_token != eos:
        raise SystemExit(f"{source}: transformers' eos_token {tok.eos_token!r} != GGUF's {eos!r}")
    if tok.chat_template != template:
        raise SystemExit(f"{source}: transformers renders with another template than the GGUF's")
    # transformers passes every special token it knows; the manifest carries BOS and EOS only.
    extra = sorted(set(tok.special_tokens_map) - {"bos_token", "eos_token"})
    cases = []
    for name, messages, add_generation_prompt in CONVERSATIONS:
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        cases.append({"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt,
                      "expected": expected})
    print(f"{source}: bos {bos!r}, eos {eos!r}, {len(cases)} conversations, "
          f"template {len(template)} chars; other special tokens passed: {extra}")
    model = {"source": source, "file": path.name, "template": template,
             "bos_token": tok.bos_token, "eos_token": eos, "gguf_bos_token": bos, "cases": cases}
    if source != "smollm2":
        return [model]
    features = []
    for name, messages, add_generation_prompt in CONVERSATIONS:
        expected = tok.apply_chat_template(messages, chat_template=FEATURES_TEMPLATE, tokenize=False,
                                           add_generation_prompt=add_generation_prompt)
        features.append({"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt,
                         "expected": expected})
    return [model, {"source": "features (smollm2 tokens)", "file": None, "template": FEATURES_TEMPLATE,
                    "bos_token": tok.bos_token, "eos_token": eos, "gguf_bos_token": bos, "cases": features}]


def main() -> None:
    models = [m for s in SOURCES for m in model_goldens(s)]
    OUT.write_text(json.dumps({"transformers": transformers.__version__, "models": models},
                              ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
