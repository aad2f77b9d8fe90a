"""DDPM samplers of the official DiT files: ancestral sampling (learned or fixed variance), DDIM.

A model here is ``model(x, index) -> output``: x (B, C, H, W) at chain step ``index`` (a Python
int; ``schedule.timestep_map[index]`` is the training step the network should see) and output
(B, C, H, W) epsilon, or (B, 2C, H, W) epsilon plus DiT's variance values v in [-1, 1] with
learned variance. The chain runs from index N-1 (noise) to 0; per-step noise comes from one
generator per image, so an image does not depend on the batch it is sampled in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lit_rpe.objectives.ddpm.schedule import DDPMSchedule

EpsModel = Callable[[torch.Tensor, int], torch.Tensor]
# Per-step noise draws from (seed, NOISE_STREAM): a stream apart from the initial noise
# (``seeded_noise(seed)``) so that the two are not the same draws.
NOISE_STREAM = 7


def noise_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image for the per-step noise, derived from the image's seed."""
    gens = []
    for seed in seeds:
        state = np.random.SeedSequence([int(seed), NOISE_STREAM]).generate_state(1, np.uint64)
        gens.append(torch.Generator().manual_seed(int(state[0])))
    return gens


def step_noise(generators: Sequence[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like ``like`` (B, ...), row i from ``generators[i]`` (drawn
    on the CPU in float32, then moved and cast, as ``seeded_noise``)."""
    if len(generators) != like.shape[0]:
        raise ValueError(f"need one generator per image: {len(generators)} for {like.shape[0]}")
    rows = [torch.randn(like.shape[1:], generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=like.device, dtype=like.dtype)


def split_output(output: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, C or 2C, ...) -> (eps (B, C, ...), variance values (B, C, ...) or None)."""
    if output.shape[1] == channels:
        return output, None
    if output.shape[1] == 2 * channels:
        return output[:, :channels], output[:, channels:]
    raise ValueError(f"model output has {output.shape[1]} channels; expected {channels} or 2x")


def predict_x0(schedule: DDPMSchedule, x: torch.Tensor, eps: torch.Tensor, index: int):
    """x_0 = sqrt(1 / abar) x - sqrt(1 / abar - 1) eps at chain step ``index``."""
    return (
        float(schedule.sqrt_recip_alphas_cumprod[index]) * x
        - float(schedule.sqrt_recipm1_alphas_cumprod[index]) * eps
    )


def p_mean_variance(
    schedule: DDPMSchedule,
    output: torch.Tensor,
    x: torch.Tensor,
    index: int,
    *,
    clip_denoised: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, log-variance and x_0 prediction of p(x_{i-1} | x_i), each shaped like x.

    output: the model's (B, C) epsilon, or (B, 2C) epsilon + variance values v; with v the
    log-variance interpolates in log space between the clipped posterior log-variance (v = -1)
    and log beta_i (v = +1) (IDDPM's learned range, DiT's learn_sigma); without v it is DDPM's
    fixed-large log-variance. clip_denoised: clamp the x_0 prediction to [-1, 1] (DiT samples
    latents with False).
    """
    eps, values = split_output(output.to(x.dtype), x.shape[1])
    if values is None:
        log_var = torch.full_like(x, float(schedule.fixed_large_log_variance[index]))
    else:
        min_log = float(schedule.posterior_log_variance_clipped[index])
        max_log = math.log(float(schedule.betas[index]))
        frac = (values + 1) / 2
        log_var = frac * max_log + (1 - frac) * min_log
    x0 = predict_x0(schedule, x, eps, index)
    if clip_denoised:
        x0 = x0.clamp(-1, 1)
    mean = (
        float(schedule.posterior_mean_coef1[index]) * x0
        + float(schedule.posterior_mean_coef2[index]) * x
    )
    return mean, log_var, x0


@torch.no_grad()
def ddpm_sample(
    model: EpsModel,
    noise: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    generators: Sequence[torch.Generator],
    clip_denoised: bool = False,
) -> torch.Tensor:
    """Ancestral sampling: ``x_{i-1} = mean + exp(log_var / 2) z`` for i = N-1 .. 1 and the mean
    alone at step 0. noise: (B, C, H, W) x_{N-1}; generators: one per image (see
    ``noise_generators``). Returns x_0, (B, C, H, W) in noise's dtype."""
    x = noise
    for index in reversed(range(schedule.num_steps)):
        mean, log_var, _ = p_mean_variance(
            schedule, model(x, index), x, index, clip_denoised=clip_denoised
        )
        x = mean + torch.exp(0.5 * log_var) * step_noise(generators, x) if index > 0 else mean
    return x


@torch.no_grad()
def ddim_sample(
    model: EpsModel,
    noise: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    eta: float = 0.0,
    generators: Sequence[torch.Generator] | None = None,
    clip_denoised: bool = False,
) -> torch.Tensor:
    """DDIM (Song et al., eq. 12): ``x_{i-1} = sqrt(abar_{i-1}) x0 + sqrt(1 - abar_{i-1} -
    sigma^2) eps + sigma z`` with ``sigma = eta sqrt((1 - abar_{i-1}) / (1 - abar_i))
    sqrt(1 - abar_i / abar_{i-1})``. eta = 0 is deterministic (no generators needed); the
    variance channels of a learned-sigma output are ignored. Returns x_0 like ``noise``."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0 and generators is None:
        raise ValueError("DDIM with eta > 0 draws noise: pass one generator per image")
    x = noise
    for index in reversed(range(schedule.num_steps)):
        eps, _ = split_output(model(x, index).to(x.dtype), x.shape[1])
        x0 = predict_x0(schedule, x, eps, index)
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
            eps = (float(schedule.sqrt_recip_alphas_cumprod[index]) * x - x0) / float(
                schedule.sqrt_recipm1_alphas_cumprod[index]
            )
        abar = float(schedule.alphas_cumprod[index])
        abar_prev = float(schedule.alphas_cumprod_prev[index])
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
        x = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
        if sigma > 0 and index > 0:
            x = x + sigma * step_noise(generators, x)
    return x
