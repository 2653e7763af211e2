"""Prompt construction, mirrored by the Rust runtime.

Rules (manifest ``prompt`` block):

* ``content`` = for each modality in the order image, audio, video: its placeholder
  (``"<image>\\n"``, ``"<audio>\\n"``, ``"<video>\\n"``) once per item, unless the user prompt
  already contains that placeholder (then the prompt places them), followed by
  the user prompt.
* ``text`` = ``template`` with ``{content}`` replaced.
* ``ids`` = ``[bos_token_id] + tokenizer.encode(text, add_special_tokens=False).ids``.
* Each media token id (``<image>`` = 3, ``<audio>``, ``<video>``) is expanded to one copy per
  embedding row of its item (``tokens_per_image``; per audio file, windows x
  tokens per window; per video, the rows its temporal stage gives); the i-th
  placeholder of a modality takes its i-th item, so images, audio and videos
  interleave in the order their placeholders appear.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

from .manifest import Prompt


@dataclass(frozen=True)
class PromptFormat:
    """The manifest's ``prompt`` block (defaults: the tiny test model's format)."""

    template: str = "USER: {content} ASSISTANT:"
    image_placeholder: str = "<image>"
    image_token_id: int = 3
    bos_token_id: int = 1
    eos_token_ids: tuple[int, ...] = (2,)
    pad_token_id: int = 0
    audio_placeholder: str = "<audio>"
    #: Set once the ``<audio>`` token is added to the tokenizer (None: no audio input).
    audio_token_id: int | None = None
    video_placeholder: str = "<video>"
    #: Set once the ``<video>`` token is added to the tokenizer (None: no video input).
    video_token_id: int | None = None

    def to_manifest(self) -> Prompt:
        """The ``prompt`` object of bundle.json."""
        placeholders, token_ids = {"image": self.image_placeholder}, {"image": self.image_token_id}
        if self.audio_token_id is not None:
            placeholders["audio"], token_ids["audio"] = self.audio_placeholder, self.audio_token_id
        if self.video_token_id is not None:
            placeholders["video"], token_ids["video"] = self.video_placeholder, self.video_token_id
        return Prompt(
            template=self.template,
            placeholders=placeholders,
            media_token_ids=token_ids,
            bos_token_id=self.bos_token_id,
            eos_token_ids=list(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
        )

    @classmethod
    def from_manifest(cls, prompt: Prompt) -> "PromptFormat":
        """The format a manifest's ``prompt`` describes (a bundle with image and optionally audio / video placeholders)."""
        return cls(
            template=prompt.template,
            image_placeholder=prompt.placeholders["image"],
            image_token_id=prompt.media_token_ids["image"],
            bos_token_id=prompt.bos_token_id,
            eos_token_ids=tuple(prompt.eos_token_ids),
            pad_token_id=prompt.pad_token_id,
            audio_placeholder=prompt.placeholders.get("audio", "<audio>"),
            audio_token_id=prompt.media_token_ids.get("audio"),
            video_placeholder=prompt.placeholders.get("video", "<video>"),
            video_token_id=prompt.media_token_ids.get("video"),
        )


def build_text(fmt: PromptFormat, user_prompt: str, num_images: int, num_audio: int = 0, num_videos: int = 0) -> str:
    """Apply the placeholder rule and the template."""
    prefix = ""
    counts = ((fmt.image_placeholder, num_images), (fmt.audio_placeholder, num_audio), (fmt.video_placeholder, num_videos))
    for placeholder, count in counts:
        if placeholder not in user_prompt:
            prefix += f"{placeholder}\n" * count
    return fmt.template.replace("{content}", prefix + user_prompt)


def build_input_ids(
    fmt: PromptFormat,
    tokenizer: Tokenizer,
    user_prompt: str,
    num_images: int,
    tokens_per_image: int,
    audio_tokens: tuple[int, ...] = (),
    video_tokens: tuple[int, ...] = (),
) -> list[int]:
    """Token ids of the prompt with every media placeholder expanded.

    ``audio_tokens[i]`` / ``video_tokens[i]`` is the number of embedding rows of the i-th audio / video item.
    """
    text = build_text(fmt, user_prompt, num_images, len(audio_tokens), len(video_tokens))
    ids = [fmt.bos_token_id] + tokenizer.encode(text, add_special_tokens=False).ids
    expanded: list[int] = []
    found = {"image": 0, "audio": 0, "video": 0}
    rows = {"audio": (fmt.audio_token_id, audio_tokens), "video": (fmt.video_token_id, video_tokens)}
    for token in ids:
        modality = next((m for m, (tid, _) in rows.items() if tid is not None and token == tid), None)
        if token == fmt.image_token_id:
            expanded.extend([token] * tokens_per_image)
            found["image"] += 1
        elif modality is not None:
            given = rows[modality][1]
            if found[modality] >= len(given):
                raise ValueError(f"prompt has more {modality} placeholders than the {len(given)} {modality} inputs")
            expanded.extend([token] * given[found[modality]])
            found[modality] += 1
        else:
            expanded.append(token)
    for modality, given in (("image", num_images), ("audio", len(audio_tokens)), ("video", len(video_tokens))):
        if found[modality] != given:
            raise ValueError(f"prompt has {found[modality]} {modality} placeholders but {given} {modality} inputs were given")
    return expanded
