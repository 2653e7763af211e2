"""The output side of the tiny any-to-any model: output projector and diffusion generator.

All random-weight, from real PyTorch / diffusers modules with fixed seeds:

* :class:`OutputProjector` — NExT-GPT's ``TextFcLayer`` in ``transformer`` mode,
  shrunk: ``Linear(d_llm -> d_model)``, a ``torch.nn.Transformer`` (1 encoder +
  1 decoder layer, pre-norm, no dropout) whose decoder attends from
  ``n_cond`` learned queries to the projected signal hidden states, then
  ``Linear(d_model -> d_cond)``. ``hidden_states`` [b, k, d_llm] ->
  ``conditioning`` [b, n_cond, d_cond].
* denoiser: ``diffusers.UNet2DConditionModel`` (two resolutions, cross-attention
  to the conditioning in the down and up blocks). Graph wrapper
  :class:`Denoiser`: ``latents`` [b, 4, 8, 8], ``timestep`` float32 [b],
  ``conditioning`` [b, n_cond, d_cond] -> ``noise_pred`` [b, 4, 8, 8].
* decoder: the decoder half of ``diffusers.AutoencoderKL`` (three blocks, 8x8
  latents -> 32x32 RGB). Graph wrapper :class:`LatentDecoder`: ``latents``
  [b, 4, 8, 8] -> ``image`` [b, 3, 32, 32] in [-1, 1] (unclamped); the VAE
  scaling factor is applied inside the graph (``latents / scaling_factor``,
  as diffusers' pipelines do before ``vae.decode``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

GENERATOR_SEED = 2468


@dataclass(frozen=True)
class GeneratorDims:
    """Sizes of the output side."""

    d_llm: int = 64
    signal_tokens: int = 4
    projector_width: int = 32
    projector_heads: int = 4
    n_cond: int = 8
    d_cond: int = 32
    latent_channels: int = 4
    latent_size: int = 8
    image_size: int = 32


class OutputProjector(torch.nn.Module):
    """Signal-token hidden states -> generator conditioning, with learned queries (NExT-GPT ``TextFcLayer``)."""

    def __init__(self, dims: GeneratorDims):
        super().__init__()
        d = dims.projector_width
        self.fc = torch.nn.Linear(dims.d_llm, d)
        self.tfm = torch.nn.Transformer(
            d_model=d,
            nhead=dims.projector_heads,
            num_encoder_layers=1,
            num_decoder_layers=1,
            dim_feedforward=2 * d,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.out = torch.nn.Linear(d, dims.d_cond)
        self.query_embs = torch.nn.Parameter(torch.randn(1, dims.n_cond, d))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[b, k, d_llm] -> [b, n_cond, d_cond]."""
        x = self.fc(hidden_states)
        queries = self.query_embs.expand(x.shape[0], -1, -1)
        return self.out(self.tfm(x, queries))


def build_output_projector(dims: GeneratorDims) -> OutputProjector:
    torch.manual_seed(GENERATOR_SEED)
    return OutputProjector(dims).eval()


def build_unet(dims: GeneratorDims) -> UNet2DConditionModel:
    torch.manual_seed(GENERATOR_SEED + 1)
    unet = UNet2DConditionModel(
        sample_size=dims.latent_size,
        in_channels=dims.latent_channels,
        out_channels=dims.latent_channels,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=dims.d_cond,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    # diffusers zero-initialises nothing here, but its default init gives a
    # near-identity network; redraw conv/linear weights so the prediction depends
    # visibly on latents, timestep and conditioning.
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "norm" in name:
                continue
            if name.endswith("weight") and param.dim() > 1:
                fan_in = param[0].numel()
                param.normal_(0.0, 1.0 / fan_in**0.5)
    return unet.eval()


def build_vae(dims: GeneratorDims) -> AutoencoderKL:
    torch.manual_seed(GENERATOR_SEED + 2)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=dims.latent_channels,
        norm_num_groups=8,
        sample_size=dims.image_size,
    )
    return vae.eval()


class Denoiser(torch.nn.Module):
    """``latents`` [b, c, h, w], ``timestep`` float32 [b], ``conditioning`` [b, n, d] -> ``noise_pred`` [b, c, h, w]."""

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timestep, encoder_hidden_states=conditioning, return_dict=False)[0]


class LatentDecoder(torch.nn.Module):
    """``latents`` [b, c, h, w] -> ``image`` [b, 3, H, W] in [-1, 1] (VAE scaling applied inside)."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scaling_factor, return_dict=False)[0]
