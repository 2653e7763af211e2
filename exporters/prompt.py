"""Prompt construction, mirrored by the Rust runtime.

Rules (manifest ``prompt`` block):

* ``content`` = ``"<image>\\n"`` once per image, followed by the user prompt,
  unless the user prompt already contains the placeholder (then it is used as is).
* ``text`` = ``template`` with ``{content}`` replaced.
* ``ids`` = ``[bos_token_id] + tokenizer.encode(text, add_special_tokens=False).ids``.
* Each media token id (``<image>`` = 3) is expanded to ``tokens_per_image`` copies;
  those positions later receive the projected image embeddings, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer


@dataclass(frozen=True)
class PromptFormat:
    """The manifest's ``prompt`` block."""

    template: str = "USER: {content} ASSISTANT:"
    image_placeholder: str = "<image>"
    image_token_id: int = 3
    bos_token_id: int = 1
    eos_token_ids: tuple[int, ...] = (2,)
    pad_token_id: int = 0

    def to_manifest(self) -> dict:
        """The ``prompt`` object of bundle.json."""
        return {
            "template": self.template,
            "placeholders": {"image": self.image_placeholder},
            "media_token_ids": {"image": self.image_token_id},
            "bos_token_id": self.bos_token_id,
            "eos_token_ids": list(self.eos_token_ids),
            "pad_token_id": self.pad_token_id,
        }


def build_text(fmt: PromptFormat, user_prompt: str, num_images: int) -> str:
    """Apply the placeholder rule and the template."""
    if fmt.image_placeholder in user_prompt:
        content = user_prompt
    else:
        content = f"{fmt.image_placeholder}\n" * num_images + user_prompt
    return fmt.template.replace("{content}", content)


def build_input_ids(
    fmt: PromptFormat, tokenizer: Tokenizer, user_prompt: str, num_images: int, tokens_per_image: int
) -> list[int]:
    """Token ids of the prompt with every image placeholder expanded."""
    text = build_text(fmt, user_prompt, num_images)
    ids = [fmt.bos_token_id] + tokenizer.encode(text, add_special_tokens=False).ids
    expanded: list[int] = []
    for token in ids:
        expanded.extend([token] * tokens_per_image if token == fmt.image_token_id else [token])
    found = expanded.count(fmt.image_token_id) // tokens_per_image
    if found != num_images:
        raise ValueError(f"prompt has {found} image placeholders but {num_images} images were given")
    return expanded
