"""One ``torch.nn.Module`` wrapper per exported stage of the LLaVA model.

Each wrapper only re-routes inputs and outputs of the model's own submodules,
so the exported graphs compute exactly what ``LlavaForConditionalGeneration``
computes. Tensor contracts (also written into bundle.json):

* :class:`VisionEncoder`: ``pixel_values`` [n, 3, H, W] -> ``image_features`` [n, T, d_vision]
* :class:`Projector`:     ``image_features`` [n, T, d_vision] -> ``image_embeds`` [n, T, d_text]
* :class:`Embed`:         ``input_ids`` int64 [b, s] -> ``inputs_embeds`` [b, s, d_text]
* :class:`Decoder`:       ``inputs_embeds`` [b, s, d_text], ``attention_mask`` int64 [b, p+s],
  ``position_ids`` int64 [b, s], ``past_key_values.{i}.key|value`` [b, kv_heads, p, head_dim]
  -> ``logits`` [b, s, vocab], ``last_hidden_state`` [b, s, d_text] (after the final norm, what
  NExT-GPT's output projector reads at signal tokens), ``present.{i}.key|value`` [b, kv_heads, p+s, head_dim]
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, LlavaForConditionalGeneration


class VisionEncoder(torch.nn.Module):
    """CLIP vision tower; returns the hidden states LLaVA feeds its projector."""

    def __init__(self, model: LlavaForConditionalGeneration):
        super().__init__()
        self.tower = model.model.vision_tower
        self.feature_layer = model.config.vision_feature_layer
        self.drop_cls = model.config.vision_feature_select_strategy == "default"
        assert isinstance(self.feature_layer, int), "only a single vision_feature_layer is supported"

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] -> [n, T, d_vision]."""
        hidden = self.tower(pixel_values, output_hidden_states=True, return_dict=True).hidden_states
        features = hidden[self.feature_layer]
        return features[:, 1:] if self.drop_cls else features


class Projector(torch.nn.Module):
    """LLaVA's multi-modal projector (MLP): vision features -> LLM embedding space."""

    def __init__(self, model: LlavaForConditionalGeneration):
        super().__init__()
        self.projector = model.model.multi_modal_projector

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """[n, T, d_vision] -> [n, T, d_text]."""
        return self.projector(image_features)


class Embed(torch.nn.Module):
    """The language model's token embedding table."""

    def __init__(self, model: LlavaForConditionalGeneration):
        super().__init__()
        self.embed_tokens = model.model.language_model.embed_tokens

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """int64 [b, s] -> [b, s, d_text]."""
        return self.embed_tokens(input_ids)


class Decoder(torch.nn.Module):
    """Llama decoder over ``inputs_embeds`` with an explicit, flattened KV cache.

    ``forward(inputs_embeds, attention_mask, position_ids, k0, v0, k1, v1, ...)``
    returns ``(logits, last_hidden_state, present_k0, present_v0, present_k1, present_v1, ...)``.
    """

    def __init__(self, model: LlavaForConditionalGeneration):
        super().__init__()
        self.language_model = model.model.language_model
        self.lm_head = model.lm_head
        self.num_layers = model.config.text_config.num_hidden_layers

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        assert len(past) == 2 * self.num_layers
        cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.num_layers)])
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            return_dict=True,
        )
        logits = self.lm_head(out.last_hidden_state)
        present: list[torch.Tensor] = []
        for layer in cache.layers:
            present += [layer.keys, layer.values]
        return (logits, out.last_hidden_state, *present)

    def input_names(self) -> list[str]:
        names = ["inputs_embeds", "attention_mask", "position_ids"]
        for i in range(self.num_layers):
            names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        return names

    def output_names(self) -> list[str]:
        names = ["logits", "last_hidden_state"]
        for i in range(self.num_layers):
            names += [f"present.{i}.key", f"present.{i}.value"]
        return names
