"""Stage wrappers of a transformers Whisper model, written out explicitly so the
exported decoder takes and returns a flat KV cache:

* :class:`Encoder`: ``input_features [1, n_mels, frames]`` -> ``encoder_hidden_states [1, positions, d]``
  (self-attention over blocks of query positions, to bound the activation memory)
* :class:`CrossKv`: ``encoder_hidden_states`` -> ``cross.{i}.key/value [1, heads, positions, head_dim]``
  (the cross-attention input projection, computed once per 30 s window)
* :class:`DecoderStep`: ``input_ids [beams, n]``, ``past.{i}.key/value [beams, heads, past, head_dim]``,
  ``cross.{i}.key/value [1, ...]`` (broadcast over the beams) -> ``logits [beams, n, vocab]``,
  ``present.{i}.key/value [beams, heads, past + n, head_dim]``

The decoder's position offset is the past length, read from the past tensor's shape.
"""
import torch
from torch import nn
from transformers import WhisperForConditionalGeneration


class Encoder(nn.Module):
    """The audio encoder, written out so that self-attention runs over blocks of
    :data:`QUERY_BLOCK` query positions: the ``[heads, 1500, 1500]`` score matrix
    (72 MiB in float32, with its softmax twice that) is never whole, so ONNX
    Runtime's peak activation memory is a block's. Each query row's softmax
    still spans every key, so the result is the full attention's."""

    #: Query positions per attention block (1500 = 6 blocks).
    QUERY_BLOCK = 250

    def __init__(self, model: WhisperForConditionalGeneration):
        super().__init__()
        enc = model.model.encoder
        self.conv1, self.conv2, self.embed_positions = enc.conv1, enc.conv2, enc.embed_positions
        self.layers, self.layer_norm = enc.layers, enc.layer_norm
        self.heads = model.config.encoder_attention_heads
        self.scale = (model.config.d_model // self.heads) ** -0.5

    def forward(self, input_features):
        x = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(input_features)))).permute(0, 2, 1)
        x = x + self.embed_positions.weight[None]
        for layer in self.layers:
            att = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = _heads(att.q_proj(h) * self.scale, self.heads)
            k, v = _heads(att.k_proj(h), self.heads), _heads(att.v_proj(h), self.heads)
            blocks = [_attend(q[:, :, i:i + self.QUERY_BLOCK], k, v) for i in range(0, q.shape[2], self.QUERY_BLOCK)]
            x = x + att.out_proj(_merge(torch.cat(blocks, dim=2)))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        return self.layer_norm(x)


def _heads(x, heads):
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(1, 2)


class CrossKv(nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration):
        super().__init__()
        self.layers = model.model.decoder.layers
        self.heads = model.config.decoder_attention_heads

    def forward(self, encoder_hidden_states):
        out = []
        for layer in self.layers:
            att = layer.encoder_attn
            out.append(_heads(att.k_proj(encoder_hidden_states), self.heads))
            out.append(_heads(att.v_proj(encoder_hidden_states), self.heads))
        return tuple(out)

    def output_names(self):
        return [f"cross.{i}.{kv}" for i in range(len(self.layers)) for kv in ("key", "value")]


def _attend(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


def _merge(x):
    b, h, t, hd = x.shape
    return x.transpose(1, 2).reshape(b, t, h * hd)


class DecoderStep(nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration):
        super().__init__()
        dec = model.model.decoder
        self.embed_tokens, self.embed_positions = dec.embed_tokens, dec.embed_positions
        self.layers, self.layer_norm = dec.layers, dec.layer_norm
        self.heads = model.config.decoder_attention_heads
        self.scale = (model.config.d_model // self.heads) ** -0.5
        self.num_layers = len(self.layers)

    def input_names(self):
        names = ["input_ids"]
        names += [f"past.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]
        names += [f"cross.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]
        return names

    def output_names(self):
        return ["logits"] + [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def forward(self, input_ids, *kv):
        n_layers = self.num_layers
        past, cross = kv[: 2 * n_layers], kv[2 * n_layers:]
        n = input_ids.shape[1]
        past_len = past[0].shape[2]
        positions = torch.arange(n, device=input_ids.device) + past_len
        x = self.embed_tokens(input_ids) + self.embed_positions.weight[positions][None]
        # Query i (absolute position past_len + i) sees keys 0..past_len + i.
        keys = torch.arange(past_len + n, device=input_ids.device)
        causal = (keys[None, :] <= positions[:, None])[None, None]
        presents = []
        for i, layer in enumerate(self.layers):
            att = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = _heads(att.q_proj(h) * self.scale, self.heads)
            k = torch.cat([past[2 * i], _heads(att.k_proj(h), self.heads)], dim=2)
            v = torch.cat([past[2 * i + 1], _heads(att.v_proj(h), self.heads)], dim=2)
            presents += [k, v]
            x = x + att.out_proj(_merge(_attend(q, k, v, causal)))
            catt = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = _heads(catt.q_proj(h) * self.scale, self.heads)
            x = x + catt.out_proj(_merge(_attend(q, cross[2 * i], cross[2 * i + 1])))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        x = self.layer_norm(x)
        logits = x @ self.embed_tokens.weight.T
        return (logits, *presents)
