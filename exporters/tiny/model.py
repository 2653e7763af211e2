"""Build the tiny random-weight LLaVA model from real ``transformers`` classes.

Architecture (LLaVA-1.5 style, shrunk):

* vision tower: ``CLIPVisionModel``, 32x32 images, 8x8 patches -> 16 patches + CLS,
  hidden 32, 2 layers, 4 heads, MLP 64;
* feature selection: hidden states of layer -2 with CLS dropped (``"default"``)
  -> 16 image tokens per image, width 32;
* projector: LLaVA's ``multi_modal_projector`` (Linear 32->64, GELU, Linear 64->64);
* language model: ``LlamaForCausalLM`` body, hidden 64, 2 layers, 4 query heads,
  2 KV heads (grouped-query attention, head_dim 16), MLP 128, context 128.

Weights are drawn from a fixed seed with a large ``initializer_range`` so that
greedy decoding of the random model produces varied, non-degenerate tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from .tokenizer import BOS_ID, EOS_ID, IMAGE_ID, PAD_ID

SEED = 1234
#: Standard deviation of the random weights (transformers' default is 0.02,
#: which gives nearly uniform logits and repetitive greedy output).
INITIALIZER_RANGE = 0.2


@dataclass(frozen=True)
class TinyDims:
    """Sizes of the tiny model; everything else derives from them."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 64
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    context_length: int = 128

    @property
    def tokens_per_image(self) -> int:
        """Image tokens after dropping CLS: one per patch."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def head_dim(self) -> int:
        return self.text_hidden // self.text_heads


def build_config(vocab_size: int, dims: TinyDims = TinyDims()) -> LlavaConfig:
    """The ``LlavaConfig`` of the tiny model."""
    vision = CLIPVisionConfig(
        image_size=dims.image_size,
        patch_size=dims.patch_size,
        hidden_size=dims.vision_hidden,
        num_hidden_layers=dims.vision_layers,
        num_attention_heads=dims.vision_heads,
        intermediate_size=dims.vision_intermediate,
        initializer_range=INITIALIZER_RANGE,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=dims.text_hidden,
        num_hidden_layers=dims.text_layers,
        num_attention_heads=dims.text_heads,
        num_key_value_heads=dims.text_kv_heads,
        intermediate_size=dims.text_intermediate,
        max_position_embeddings=dims.context_length,
        initializer_range=INITIALIZER_RANGE,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=IMAGE_ID,
        image_seq_length=dims.tokens_per_image,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    config.pad_token_id = PAD_ID
    return config


def _reinit_(model: torch.nn.Module, std: float) -> None:
    """Redraw every Linear / Embedding / Conv weight as N(0, std) and biases as N(0, std/4).

    Done explicitly (in the fixed ``named_parameters`` order) so the weights
    depend only on the seed, not on transformers' init heuristics.
    LayerNorm / RMSNorm weights keep their init value 1 (and LayerNorm biases 0).
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                continue
            if name.endswith("bias"):
                param.normal_(0.0, std / 4)
            else:
                param.normal_(0.0, std)


def build_model(vocab_size: int, dims: TinyDims = TinyDims(), seed: int = SEED) -> LlavaForConditionalGeneration:
    """The tiny LLaVA model in eval mode, fp32, eager attention, deterministic weights."""
    torch.manual_seed(seed)
    config = build_config(vocab_size, dims)
    model = LlavaForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    _reinit_(model, INITIALIZER_RANGE)
    model.eval()
    return model.float()
