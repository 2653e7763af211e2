"""Train the tiny byte-level BPE tokenizer used by the test bundle.

The tokenizer is a real Hugging Face ``tokenizers`` pipeline (so the Rust
``tokenizers`` crate loads the same ``tokenizer.json``):

* model: BPE trained on :data:`CORPUS` (a few hundred merges),
* pre-tokenizer and decoder: byte-level (every UTF-8 byte is representable,
  so any text round-trips, multi-byte characters included),
* special tokens with fixed ids: ``<pad>``=0, ``<s>``=1, ``</s>``=2, ``<image>``=3,
  so ``"<image>"`` inside text encodes to the single id 3,
* no post-processor: the runtime prepends BOS itself (see the manifest).

Training is deterministic for a fixed corpus and vocab size.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

#: Special tokens, in id order (their index is their id).
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<image>")
PAD_ID, BOS_ID, EOS_ID, IMAGE_ID = 0, 1, 2, 3

#: Target vocabulary size (4 specials + 256 byte symbols + merges).
VOCAB_SIZE = 448

#: Small built-in training corpus: image-description English, the chat template
#: words, and some non-ASCII text so that multi-byte characters appear.
CORPUS = [
    "USER: <image>\nDescribe the image. ASSISTANT: The image shows a red square on a blue background.",
    "USER: Compare the two images. ASSISTANT: The first image is brighter than the second one.",
    "USER: What is in the picture? ASSISTANT: A small cat is sitting on a wooden table near the window.",
    "A photo of a dog running across a green field under a clear sky.",
    "An old red car is parked in front of a white house with a tall tree.",
    "Two people are walking along the beach at sunset, holding hands.",
    "The picture shows a mountain covered with snow and a lake below it.",
    "A bowl of fresh fruit: apples, oranges, bananas and grapes on the kitchen table.",
    "A child is playing with a yellow ball in the park while birds fly overhead.",
    "The image is a gradient from dark blue at the top to light green at the bottom.",
    "There is a circle in the middle of the image and stripes around the edges.",
    "A city street at night with bright lights, cars and tall buildings.",
    "The second image looks darker and has more noise than the first image.",
    "Describe the colors, the shapes and the objects you can see in the image.",
    "A cup of coffee sits next to a laptop and a notebook on the desk.",
    "Café au lait, a naïve façade, the rôle of the piñata, jalapeño and crème brûlée.",
    "日本語のテキスト: 猫がテーブルの上に座っています。画像には赤い四角があります。",
    "Emoji: 🙂 😀 🐱 🐶 🌅 🚗 ☕ — they are images too.",
    "Ελληνικά, русский текст, العربية, and 中文 appear in captions sometimes.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
]


def build_tokenizer(corpus: list[str] | None = None, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train and return the byte-level BPE tokenizer (deterministic)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus so that frequent pairs clearly win (ties are broken
    # deterministically by the trainer either way).
    tokenizer.train_from_iterator((corpus or CORPUS) * 4, trainer=trainer)
    check_tokenizer(tokenizer)
    return tokenizer


def check_tokenizer(tokenizer: Tokenizer) -> None:
    """Assert the fixed special-token ids and the round-trip properties we rely on."""
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        got = tokenizer.token_to_id(token)
        assert got == expected_id, f"special token {token!r}: expected id {expected_id}, got {got}"
    ids = tokenizer.encode("USER: <image>\nhi ASSISTANT:", add_special_tokens=False).ids
    assert ids.count(IMAGE_ID) == 1, f"'<image>' must encode to the single id {IMAGE_ID}: {ids}"
    for text in ("café naïve 日本語 emoji 🙂", "Describe the image."):
        enc = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(enc.ids) == text, f"round-trip failed for {text!r}"
