"""Classifier-free guidance for every objective: flow velocities and DDPM epsilons alike.

A guided output is ``uncond + s (cond - uncond)`` on the first ``guided_channels`` output
channels and the conditional output on the others. ``None`` guides every channel (the suite's
flow matching, docs/DESIGN.md 6). The official DiT and SiT repositories guide only the first
3 of the 4 latent channels in their ``forward_with_cfg``; the 4th latent channel and DiT's
variance channels come from the conditional pass (``OFFICIAL_GUIDED_CHANNELS``; the sampler
setting ``cfg_channels: dit``, ``guided_channel_count``).

``guided_denoiser`` serves every objective; ``guided_velocity`` is it as the velocity field
``v(x, t)`` of the ODE samplers, for networks whose time is the suite's t.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, float, float], torch.Tensor]
Velocity = Callable[[torch.Tensor, float], torch.Tensor]
OFFICIAL_GUIDED_CHANNELS = 3


def guided_channel_count(cfg_channels: str) -> int | None:
    """The ``guided_channels`` of a ``cfg_channels`` sampler setting: ``dit`` ->
    ``OFFICIAL_GUIDED_CHANNELS``, ``all`` -> None (every channel)."""
    if cfg_channels not in ("all", "dit"):
        raise ValueError(f"unknown cfg_channels {cfg_channels!r}; valid: all, dit")
    return OFFICIAL_GUIDED_CHANNELS if cfg_channels == "dit" else None


def combine_guided(
    cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float, guided_channels: int | None = None
) -> torch.Tensor:
    """``uncond + s (cond - uncond)`` on channels ``[:guided_channels]`` (all when None),
    ``cond`` elsewhere. cond, uncond: (B, C_out, ...) outputs of the two passes."""
    if guided_channels is None or guided_channels >= cond.shape[1]:
        return uncond + cfg_scale * (cond - uncond)
    k = guided_channels
    guided = uncond[:, :k] + cfg_scale * (cond[:, :k] - uncond[:, :k])
    return torch.cat([guided, cond[:, k:]], dim=1)


def guided_denoiser(
    net: Callable[..., torch.Tensor],
    y: torch.Tensor,
    *,
    num_classes: int,
    cfg_scale: float = 1.0,
    guided_channels: int | None = None,
    interval: tuple[float, float] | None = None,
    **net_kwargs,
) -> Denoiser:
    """Return ``f(x, t_net, rule_t) -> output`` of a class-conditional network, guided.

    net: called as ``net(x, t_vec, y, rule_t=rule_t, **net_kwargs)`` with x (B, C, H, W) and
    t_vec (B,) filled with ``t_net``, the time in the network's own units (the suite's t for
    flow matching, the DDPM timestep for DiT files, SiT's t for SiT files). rule_t: the step's
    time in the suite's convention (1 = noise), a Python float, for time-dependent encodings
    (DyPE) and for ``interval``. y: (B,) labels; the unconditional pass uses the null label
    ``num_classes``. cfg_scale: s; s = 1 is one conditional pass. guided_channels: see the
    module docstring. interval: (t_lo, t_hi) in rule_t, bounds included, where guidance applies;
    elsewhere one conditional pass, no batch doubling. net_kwargs: per-sample tensors (first
    dim B, e.g. ``pos_h``) are repeated [cond; uncond] for the doubled batch, other values are
    passed as they are (put a tensor whose first dim is B by coincidence in another object).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not math.isfinite(cfg_scale):
        raise ValueError(f"cfg_scale must be finite, got {cfg_scale}")
    if guided_channels is not None and guided_channels < 1:
        raise ValueError(f"guided_channels must be >= 1, got {guided_channels}")
    if interval is not None and interval[0] > interval[1]:
        raise ValueError(f"guidance interval must have t_lo <= t_hi, got {interval}")
    if "rule_t" in net_kwargs:
        raise ValueError("rule_t is set by the sampler from the step's t; do not pass it")
    if y.ndim != 1:
        raise ValueError(f"y must be (B,), got shape {tuple(y.shape)}")
    batch = y.shape[0]
    # The doubled labels and kwargs are the same at every step: build them once.
    y_double = torch.cat([y, torch.full_like(y, num_classes)])

    def double(v):
        per_sample = isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == batch
        return torch.cat([v, v]) if per_sample else v

    kwargs_double = {k: double(v) for k, v in net_kwargs.items()}

    def denoise(x: torch.Tensor, t_net: float, rule_t: float) -> torch.Tensor:
        if x.shape[0] != batch:
            raise ValueError(f"x has batch {x.shape[0]} but y has {batch}")
        # Adaptive solvers (dopri5) evaluate stages slightly past the last time and interpolate
        # back; time-dependent encodings are defined on [0, 1], so their t is clamped there.
        rule_t = min(max(float(rule_t), 0.0), 1.0)
        # t in at least float32: a bf16 t would be too coarse for the timestep embedding.
        t_dtype = torch.promote_types(x.dtype, torch.float32)
        guide = cfg_scale != 1.0 and (interval is None or interval[0] <= rule_t <= interval[1])
        if not guide:
            t_vec = torch.full((batch,), float(t_net), dtype=t_dtype, device=x.device)
            return net(x, t_vec, y, rule_t=rule_t, **net_kwargs)
        t_vec = torch.full((2 * batch,), float(t_net), dtype=t_dtype, device=x.device)
        out = net(torch.cat([x, x]), t_vec, y_double, rule_t=rule_t, **kwargs_double)
        cond, uncond = out.chunk(2)
        return combine_guided(cond, uncond, cfg_scale, guided_channels)

    return denoise


def guided_velocity(
    model: Callable[..., torch.Tensor],
    y: torch.Tensor,
    *,
    num_classes: int,
    cfg_scale: float = 1.0,
    guided_channels: int | None = None,
    interval: tuple[float, float] | None = None,
    **model_kwargs,
) -> Velocity:
    """``velocity(x, t)``: ``guided_denoiser`` with the network seeing the step's t itself (a
    flow-matching network's time is the suite's t). model: called as
    ``model(x, t_vec, y, rule_t=t, **model_kwargs)``; the other arguments are
    ``guided_denoiser``'s."""
    denoise = guided_denoiser(
        model,
        y,
        num_classes=num_classes,
        cfg_scale=cfg_scale,
        guided_channels=guided_channels,
        interval=interval,
        **model_kwargs,
    )

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return denoise(x, t, t)

    return velocity
