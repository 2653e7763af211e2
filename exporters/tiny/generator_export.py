"""Export the output side (output projector, denoiser, latent decoder) to ONNX and check it in onnxruntime.

Graphs (fp32, opset :data:`exporters.common.onnx_export.OPSET`, batch dimension dynamic):

* ``output_projector.onnx``: ``hidden_states`` [b, k, d_llm] -> ``conditioning`` [b, n_cond, d_cond]
* ``generator_denoiser.onnx``: ``latents`` [b, c, h, w], ``timestep`` float32 [b],
  ``conditioning`` [b, n_cond, d_cond] -> ``noise_pred`` [b, c, h, w]
* ``generator_decoder.onnx``: ``latents`` [b, c, h, w] -> ``image`` [b, 3, H, W]

:func:`ort_denoise` reruns a denoise golden with the graphs in onnxruntime and
the diffusers scheduler, the way the Rust generator runs them (classifier-free
guidance as one batch of two: unconditional first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.export import Dim

from . import diffusion_goldens
from .generator_model import Denoiser, GeneratorDims, LatentDecoder, OutputProjector
from ..common.onnx_export import export_module

GRAPHS = {
    "output_projector": "output_projector.onnx",
    "generator_denoiser": "generator_denoiser.onnx",
    "generator_decoder": "generator_decoder.onnx",
}


def export_all(projector: OutputProjector, unet, vae, dims: GeneratorDims, out_dir: Path) -> None:
    g = torch.Generator().manual_seed(0)
    batch = Dim("batch")
    export_module(
        projector,
        (torch.randn(2, dims.signal_tokens, dims.d_llm, generator=g),),
        out_dir / GRAPHS["output_projector"],
        ["hidden_states"],
        ["conditioning"],
        {"hidden_states": {0: batch}},
    )
    c, s = dims.latent_channels, dims.latent_size
    export_module(
        Denoiser(unet),
        (
            torch.randn(2, c, s, s, generator=g),
            torch.tensor([999.0, 10.5]),
            torch.randn(2, dims.n_cond, dims.d_cond, generator=g),
        ),
        out_dir / GRAPHS["generator_denoiser"],
        ["latents", "timestep", "conditioning"],
        ["noise_pred"],
        {"latents": {0: batch}, "timestep": {0: batch}, "conditioning": {0: batch}},
    )
    export_module(
        LatentDecoder(vae),
        (torch.randn(2, c, s, s, generator=g),),
        out_dir / GRAPHS["generator_decoder"],
        ["latents"],
        ["image"],
        {"latents": {0: batch}},
    )


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_project(bundle_dir: Path, hidden: np.ndarray) -> np.ndarray:
    """[b, k, d_llm] -> [b, n_cond, d_cond] with the exported output projector."""
    (out,) = _session(bundle_dir / GRAPHS["output_projector"]).run(["conditioning"], {"hidden_states": hidden})
    return out


def ort_denoise(bundle_dir: Path, conditioning: np.ndarray, golden: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rerun a denoise golden with the graphs: returns (final latents, RGB u8 pixels [H, W, 3])."""
    denoiser = _session(bundle_dir / GRAPHS["generator_denoiser"])
    decoder = _session(bundle_dir / GRAPHS["generator_decoder"])
    scheduler = diffusion_goldens.make_scheduler(golden["scheduler"]["kind"])
    scheduler.set_timesteps(golden["steps"])
    guidance = golden["guidance_scale"]
    cfg = guidance > 1.0
    latents = torch.tensor(golden["noise"], dtype=torch.float32).reshape(golden["noise_shape"])
    latents = latents * scheduler.init_noise_sigma
    cond = np.concatenate([np.zeros_like(conditioning), conditioning]) if cfg else conditioning
    for t in scheduler.timesteps:
        model_in = torch.cat([latents] * 2) if cfg else latents
        model_in = scheduler.scale_model_input(model_in, t)
        timestep = np.full((model_in.shape[0],), float(t), dtype=np.float32)
        (pred,) = denoiser.run(["noise_pred"], {"latents": model_in.numpy(), "timestep": timestep, "conditioning": cond})
        pred = torch.from_numpy(pred)
        if cfg:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance * (text - uncond)
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
    (image,) = decoder.run(["image"], {"latents": latents.numpy()})
    pixels = np.clip(image[0] / 2 + 0.5, 0, 1).transpose(1, 2, 0)
    return latents.numpy(), (pixels * 255).round().astype(np.uint8)
