"""Classifier-free guidance: wrap a class-conditional network into a velocity field v(x, t)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def _double_kwargs(kwargs: dict, batch: int) -> dict:
    """Repeat every per-sample tensor (first dim == batch) as [cond; uncond]; keep the rest.

    A tensor whose first dim equals the batch by coincidence but is not per-sample would be
    repeated too; pass such values inside a non-tensor object instead.
    """

    def per_sample(v) -> bool:
        return isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == batch

    return {k: torch.cat([v, v]) if per_sample(v) else v for k, v in kwargs.items()}


def guided_velocity(
    model: Callable[..., torch.Tensor],
    y: torch.Tensor,
    *,
    num_classes: int,
    cfg_scale: float = 1.0,
    interval: tuple[float, float] | None = None,
    **model_kwargs,
) -> Velocity:
    """Return ``velocity(x, t)`` for the ODE samplers, guided on all channels.

    model: called as ``model(x, t_vec, y, rule_t=t, **model_kwargs)`` with x (B, C, H, W),
    t_vec (B,) and y (B,) long; ``rule_t`` is the step's time as a Python float (for
    time-dependent positional encodings such as DyPE).
    y: (B,) class labels; the unconditional pass uses the null label ``num_classes``.
    cfg_scale: s in v = v_u + s (v_c - v_u); s = 1 is plain conditional sampling (one pass).
    interval: (t_lo, t_hi); guidance only where t_lo <= t <= t_hi, elsewhere one conditional
    pass with no batch doubling. None guides at every t.
    model_kwargs: forwarded; tensors with first dim B are repeated [cond; uncond] when the
    batch is doubled, anything else is passed as is.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not math.isfinite(cfg_scale):
        raise ValueError(f"cfg_scale must be finite, got {cfg_scale}")
    if interval is not None:
        lo, hi = interval
        if lo > hi:
            raise ValueError(f"guidance interval must have t_lo <= t_hi, got {interval}")
    if "rule_t" in model_kwargs:
        raise ValueError("rule_t is set by the sampler from the step's t; do not pass it")
    if y.ndim != 1:
        raise ValueError(f"y must be (B,), got shape {tuple(y.shape)}")

    batch = y.shape[0]
    # The doubled labels and kwargs are the same at every step: build them once.
    y_double = torch.cat([y, torch.full_like(y, num_classes)])
    kwargs_double = _double_kwargs(model_kwargs, batch)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        if x.shape[0] != batch:
            raise ValueError(f"x has batch {x.shape[0]} but y has {batch}")
        t = float(t)
        # t in at least float32: a bf16 t would be too coarse for the timestep embedding.
        t_dtype = torch.promote_types(x.dtype, torch.float32)
        guide = cfg_scale != 1.0 and (interval is None or interval[0] <= t <= interval[1])
        if not guide:
            t_vec = torch.full((batch,), t, dtype=t_dtype, device=x.device)
            return model(x, t_vec, y, rule_t=t, **model_kwargs)
        t_vec = torch.full((2 * batch,), t, dtype=t_dtype, device=x.device)
        out = model(torch.cat([x, x]), t_vec, y_double, rule_t=t, **kwargs_double)
        v_cond, v_uncond = out.chunk(2)
        return v_uncond + cfg_scale * (v_cond - v_uncond)

    return velocity
