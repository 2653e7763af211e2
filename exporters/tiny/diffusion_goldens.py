"""Diffusion goldens computed with diffusers (the reference the Rust scheduler and generator match).

Layout of ``tests/golden/any_to_any.json``:

* ``signal``: the signal tokens and ids, the chosen ``alpha`` (see
  :mod:`exporters.tiny.signal_tokens`) and the golden requests (``emits_signal``,
  prompt/output ids, text, the hidden states of each complete run [runs, k, d_llm]
  and their conditioning [runs, n_cond, d_cond] from the PyTorch output projector);
* ``alphas_cumprod``: per ``beta_schedule``, diffusers' float32 ``alphas_cumprod`` [1000];
* ``schedules``: for DDIM and Euler discrete, every ``timestep_spacing`` and
  several step counts: ``timesteps`` (and for Euler ``sigmas`` and
  ``init_noise_sigma``) exactly as ``set_timesteps`` leaves them;
* ``denoise``: per case (scheduler, steps, guidance), the fixed initial noise
  [1, c, h, w], per step the timestep, the sample entering ``scheduler.step``,
  the guided model output and the sample leaving it, the final latents and the
  RGB pixels [H, W, 3] of ``StableDiffusionPipeline(..., output_type="pil")``
  (the real diffusers pipeline, fed ``prompt_embeds`` = the conditioning and
  ``negative_prompt_embeds`` = zeros, ``latents`` = the noise).

Floats are written as the exact float64 value of each float32.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline

from ..common.manifest import Scheduler

#: The bundle's scheduler (Stable Diffusion 1.x's DDIM configuration).
DDIM_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
}
#: Euler discrete, Stable Diffusion betas.
EULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
SCHEDULERS = {"ddim": (DDIMScheduler, DDIM_CONFIG), "euler_discrete": (EulerDiscreteScheduler, EULER_CONFIG)}
#: The bundle's generation defaults (and the end-to-end golden's settings).
DEFAULT_STEPS = 10
DEFAULT_GUIDANCE = 4.0
#: Denoise goldens: (name, scheduler kind, steps, guidance scale).
DENOISE_CASES = (
    ("ddim", "ddim", DEFAULT_STEPS, 1.0),
    ("ddim_cfg", "ddim", DEFAULT_STEPS, DEFAULT_GUIDANCE),
    ("euler", "euler_discrete", 8, 1.0),
    ("euler_cfg", "euler_discrete", 8, DEFAULT_GUIDANCE),
)
NOISE_SEED = 97


def _flat(t) -> list[float]:
    return [float(v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def make_scheduler(kind: str, overrides: dict | None = None):
    cls, config = SCHEDULERS[kind]
    return cls(**{**config, **(overrides or {})})


def manifest_scheduler(kind: str) -> Scheduler:
    """The ``scheduler`` object of the manifest: the diffusers config keys the runtime reads, tagged by kind."""
    return Scheduler(kind=kind, config=dict(SCHEDULERS[kind][1]))


def schedule_goldens() -> dict:
    """``alphas_cumprod`` per beta schedule and ``schedules`` over spacings and step counts."""
    alphas = {}
    for beta_schedule in ("linear", "scaled_linear", "squaredcos_cap_v2"):
        s = make_scheduler("ddim", {"beta_schedule": beta_schedule, "beta_start": 0.0001, "beta_end": 0.02}
                           if beta_schedule == "linear" else {"beta_schedule": beta_schedule})
        alphas[beta_schedule] = _flat(s.alphas_cumprod)
    schedules = []
    for kind in ("ddim", "euler_discrete"):
        for spacing in ("leading", "trailing", "linspace"):
            for beta_schedule in ("scaled_linear", "squaredcos_cap_v2"):
                for steps in (1, 3, 7, 10, 25, 50):
                    overrides = {"timestep_spacing": spacing, "beta_schedule": beta_schedule,
                                 "steps_offset": 1 if spacing == "leading" else 0}
                    s = make_scheduler(kind, overrides)
                    s.set_timesteps(steps)
                    entry = {
                        "scheduler": {**manifest_scheduler(kind).to_dict(), **overrides},
                        "steps": steps,
                        "timesteps": [float(t) for t in s.timesteps.tolist()],
                    }
                    if kind == "euler_discrete":
                        entry["sigmas"] = _flat(s.sigmas)
                        entry["init_noise_sigma"] = float(np.float32(s.init_noise_sigma))
                    schedules.append(entry)
    return {"alphas_cumprod": alphas, "schedules": schedules}


def initial_noise(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(NOISE_SEED), dtype=torch.float32)


def build_pipeline(unet, vae, scheduler) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def denoise_golden(unet, vae, conditioning: torch.Tensor, kind: str, steps: int, guidance: float, image_size: int) -> dict:
    """Run the diffusers pipeline on ``conditioning`` [1, n_cond, d_cond] and record every scheduler step."""
    scheduler = make_scheduler(kind)
    pipe = build_pipeline(unet, vae, scheduler)
    channels, size = unet.config.in_channels, unet.config.sample_size
    noise = initial_noise((1, channels, size, size))
    records = []
    original_step = scheduler.step

    def recording_step(model_output, timestep, sample, *args, **kwargs):
        out = original_step(model_output, timestep, sample, *args, **kwargs)
        records.append(
            {
                "timestep": float(timestep),
                "sample": _flat(sample),
                "model_output": _flat(model_output),
                "prev_sample": _flat(out[0] if isinstance(out, tuple) else out.prev_sample),
            }
        )
        return out

    scheduler.step = recording_step
    final = {}

    def on_end(pipeline, i, t, kwargs):
        final["latents"] = kwargs["latents"].clone()
        return kwargs

    result = pipe(
        prompt_embeds=conditioning,
        negative_prompt_embeds=torch.zeros_like(conditioning),
        latents=noise.clone(),
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=image_size,
        width=image_size,
        output_type="pil",
        callback_on_step_end=on_end,
        callback_on_step_end_tensor_inputs=["latents"],
    )
    pixels = np.asarray(result.images[0].convert("RGB"), dtype=np.uint8)
    return {
        "scheduler": manifest_scheduler(kind).to_dict(),
        "steps": steps,
        "guidance_scale": guidance,
        "noise_shape": list(noise.shape),
        "noise": _flat(noise),
        "init_noise_sigma": float(np.float32(scheduler.init_noise_sigma)),
        "steps_log": records,
        "latents": _flat(final["latents"]),
        "image_shape": list(pixels.shape),
        "pixels": [int(v) for v in pixels.reshape(-1)],
    }
