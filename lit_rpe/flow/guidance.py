"""Classifier-free guidance as a velocity field v(x, t) for the ODE samplers."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lit_rpe.guidance import guided_denoiser

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def guided_velocity(
    model: Callable[..., torch.Tensor],
    y: torch.Tensor,
    *,
    num_classes: int,
    cfg_scale: float = 1.0,
    interval: tuple[float, float] | None = None,
    **model_kwargs,
) -> Velocity:
    """``velocity(x, t)`` guided on every channel: ``guided_denoiser`` with the network seeing
    the step's t itself (a flow-matching network's time is the suite's t).

    model: called as ``model(x, t_vec, y, rule_t=t, **model_kwargs)``; the other arguments
    are those of ``lit_rpe.guidance.guided_denoiser``.
    """
    denoise = guided_denoiser(
        model, y, num_classes=num_classes, cfg_scale=cfg_scale, interval=interval, **model_kwargs
    )

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return denoise(x, t, t)

    return velocity
