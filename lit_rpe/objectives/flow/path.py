"""The flow-matching probability path and its training-time t distribution.

Convention (docs/DESIGN.md 2): x_t = (1 - t) x_0 + t eps, with t = 0 the data and t = 1 noise.
The network regresses the velocity dx_t/dt = eps - x_0, which does not depend on t.
"""

from __future__ import annotations

import torch

T_SAMPLINGS = ("uniform", "logit_normal")


def _per_sample(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """t as a tensor shaped (B, 1, ..., 1) (or 0-dim for a scalar) that broadcasts against like."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 1:
        if t.shape[0] != like.shape[0]:
            raise ValueError(f"t has {t.shape[0]} entries but the batch has {like.shape[0]}")
        t = t.reshape(-1, *([1] * (like.ndim - 1)))
    elif t.ndim != 0:
        raise ValueError(f"t must be a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
    return t


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The point x_t = (1 - t) x0 + t eps on the straight path from data to noise.

    x0, eps: (B, ...) data and standard-normal noise of the same shape.
    t: (B,) per-sample times in [0, 1], or a scalar; cast to x0's dtype.
    Returns (B, ...), x0's dtype.
    """
    if x0.shape != eps.shape:
        raise ValueError(f"x0 and eps shapes differ: {tuple(x0.shape)} vs {tuple(eps.shape)}")
    t = _per_sample(t, x0)
    return (1 - t) * x0 + t * eps


def target_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The regression target v = dx_t/dt = eps - x0, shape (B, ...)."""
    return eps - x0


def sample_t(
    batch: int,
    kind: str = "uniform",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> torch.Tensor:
    """Draw training times t, shape (batch,), float32, on ``device``.

    kind: ``uniform`` -> t ~ U[0, 1); ``logit_normal`` -> t = sigmoid(n), n ~ N(logit_mean,
    logit_std^2), which concentrates training on mid-range t (median sigmoid(logit_mean)).
    The draw happens on the generator's device (when one is given) and is then moved, so a
    seeded CPU generator gives the same t whatever ``device`` is.
    """
    if kind not in T_SAMPLINGS:
        raise ValueError(f"unknown t sampling {kind!r}; valid: {', '.join(T_SAMPLINGS)}")
    if logit_std <= 0:
        raise ValueError(f"logit_std must be > 0, got {logit_std}")
    draw_device = generator.device if generator is not None else device
    if kind == "uniform":
        t = torch.rand(batch, generator=generator, device=draw_device)
    else:
        n = torch.randn(batch, generator=generator, device=draw_device)
        t = torch.sigmoid(n * logit_std + logit_mean)
    return t.to(device) if device is not None else t
