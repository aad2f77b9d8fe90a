"""Classifier-free guidance as the official DiT and SiT ``forward_with_cfg`` apply it.

Both official repositories guide only the first 3 of the 4 latent channels ("for exact
reproducibility"); the remaining output channels (the 4th latent channel and DiT's variance
channels) are those of the conditional pass. Guiding every latent channel is the option
``guided_channels = in_channels``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, float, float], torch.Tensor]
DIT_GUIDED_CHANNELS = 3


def combine_guided(
    cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float, guided_channels: int
) -> torch.Tensor:
    """``uncond + s (cond - uncond)`` on channels ``[:guided_channels]``, ``cond`` elsewhere.

    cond, uncond: (B, C_out, ...) outputs of the conditional and unconditional passes."""
    k = guided_channels
    guided = uncond[:, :k] + cfg_scale * (cond[:, :k] - uncond[:, :k])
    return torch.cat([guided, cond[:, k:]], dim=1)


def guided_net(
    net: Callable[..., torch.Tensor],
    y: torch.Tensor,
    *,
    num_classes: int,
    cfg_scale: float = 1.0,
    guided_channels: int = DIT_GUIDED_CHANNELS,
    interval: tuple[float, float] | None = None,
    **net_kwargs,
) -> Denoiser:
    """Return ``f(x, t_net, rule_t) -> output`` of a class-conditional network, guided.

    net: called as ``net(x, t_vec, y, rule_t=rule_t, **net_kwargs)``; x (B, C, H, W), t_vec (B,)
    filled with ``t_net``, the time in the network's own units (a DDPM timestep for DiT files,
    SiT's t for SiT files). rule_t: the step's time in this suite's convention (1 = noise),
    for DyPE and for ``interval``. y: (B,) labels; the unconditional pass uses ``num_classes``.
    cfg_scale: s; 1 is one conditional pass. guided_channels: output channels that are guided
    (3: DiT/SiT's convention; the latent channel count: all of them). interval: (t_lo, t_hi)
    in rule_t where guidance applies. net_kwargs: per-sample tensors (first dim B, e.g.
    ``pos_h``) are repeated for the doubled batch; other values are passed as they are.
    """
    if not math.isfinite(cfg_scale):
        raise ValueError(f"cfg_scale must be finite, got {cfg_scale}")
    if guided_channels < 1:
        raise ValueError(f"guided_channels must be >= 1, got {guided_channels}")
    if interval is not None and interval[0] > interval[1]:
        raise ValueError(f"guidance interval must have t_lo <= t_hi, got {interval}")
    if y.ndim != 1:
        raise ValueError(f"y must be (B,), got shape {tuple(y.shape)}")
    batch = y.shape[0]
    y_double = torch.cat([y, torch.full_like(y, num_classes)])

    def double(v):
        per_sample = isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == batch
        return torch.cat([v, v]) if per_sample else v

    kwargs_double = {k: double(v) for k, v in net_kwargs.items()}

    def denoise(x: torch.Tensor, t_net: float, rule_t: float) -> torch.Tensor:
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
