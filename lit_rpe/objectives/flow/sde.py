"""SiT's SDE sampler (willisma/SiT, also in whlzy/FiT ``transport``): Euler-Maruyama on the
linear interpolant with diffusion ``w(s) = norm (1 - s)`` (their ``diffusion_form="sigma"``) and
a last deterministic "Mean" step, the setting of SiT's published FID-50K.

In SiT's time s (0 = noise, 1 = data; this suite's t is ``1 - s``) with velocity v, the
interpolant's score is ``(s v - x) / ((1 - s)^2 + s (1 - s))`` and the SDE
``dx = (v + w score) ds + sqrt(2 w) dW``. The grid is SiT's: ``linspace(0, 1 - last, steps)``,
an Euler-Maruyama step from each point but the last, then ``x + drift * last`` at ``1 - last``
(no noise). Each image's step noise comes from its own generator (``step_noise``), so an image
does not depend on its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lit_rpe.sampling.guidance import Velocity

SDE_LAST_STEP = 0.04  # SiT's --last-step-size (the stride of 250 steps over [0, 1])


@torch.no_grad()
def sample_sde(
    velocity: Velocity,
    noise: torch.Tensor,
    *,
    steps: int = 250,
    step_noise: Callable[[torch.Tensor], torch.Tensor],
    last_step: float = SDE_LAST_STEP,
    diffusion_norm: float = 1.0,
    shift: float = 1.0,
) -> torch.Tensor:
    """x at SiT's s = 1 from ``noise`` at s = 0. velocity: this suite's ``velocity(x, t)``
    (t = 1 - s, v = -v_SiT). step_noise: ``like -> standard normal noise shaped like it``.
    steps: SiT's ``num_steps`` (its default 250). Returns (B, ...) in noise's dtype."""
    if shift != 1.0:
        raise ValueError(f"a timestep shift ({shift}) is not defined for the SDE sampler")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"the SDE sampler needs steps >= 2, got {steps!r}")
    if not 0.0 < last_step < 1.0 or diffusion_norm < 0:
        raise ValueError(f"need 0 < last_step < 1 and diffusion_norm >= 0, got {last_step}")
    # SiT's float32 grid, read back as Python floats
    grid = torch.linspace(0.0, 1.0 - last_step, steps).tolist()
    ds = grid[1] - grid[0]

    def drift(x: torch.Tensor, s: float) -> torch.Tensor:
        v = -velocity(x, 1.0 - s)
        score = (s * v - x) / ((1 - s) ** 2 + s * (1 - s))
        return v + diffusion_norm * (1 - s) * score

    x = noise
    for s in grid[:-1]:
        w = step_noise(x)
        x = x + drift(x, s) * ds + math.sqrt(2 * diffusion_norm * (1 - s)) * math.sqrt(ds) * w
    return x + drift(x, grid[-1]) * last_step
