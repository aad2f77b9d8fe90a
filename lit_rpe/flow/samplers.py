"""Deterministic ODE samplers (Euler, Heun) from noise at t = 1 to data at t = 0."""

from __future__ import annotations

import numbers

import torch

from lit_rpe.guidance import Velocity
from lit_rpe.posenc.addons import timestep_shift

METHODS = ("euler", "heun")


def time_grid(
    steps: int,
    *,
    shift: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The ``steps + 1`` sampling times, decreasing from exactly 1 to exactly 0.

    A uniform grid linspace(1, 0, steps + 1) passed through the timestep shift
    t' = a t / (1 + (a - 1) t) with a = ``shift`` (a > 1 spends more steps near the noise end;
    a = 1 is the identity). float64 by default so the Python floats handed to the model are
    not rounded twice.
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    steps = int(steps)
    grid = timestep_shift(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)
    # Pin the ends: in floating point a / (1 + (a - 1)) can miss 1 by an ulp, and the last
    # step must land exactly on the data (t = 0).
    grid[0], grid[-1] = 1.0, 0.0
    return grid.to(device=device, dtype=dtype)


@torch.no_grad()
def sample_ode(
    velocity: Velocity,
    noise: torch.Tensor,
    *,
    steps: int,
    method: str = "euler",
    shift: float = 1.0,
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from x(1) = noise down to t = 0 and return x(0).

    velocity: ``velocity(x, t) -> v`` with x shaped like ``noise`` and t a Python float
    (e.g. from ``guided_velocity``). noise: (B, ...) standard normal, e.g. ``seeded_noise``.
    method: ``euler`` (``steps`` evaluations) or ``heun`` (2nd order: Euler predictor, then
    the slopes at both ends averaged). Heun's last step, onto t = 0, is a plain Euler step
    (EDM / SiT practice: no evaluation at t = 0, a point training rarely visits), so it costs
    2 * steps - 1 evaluations; a shift > 1 lengthens that step (it starts at
    a / (steps + a - 1)), so shifted Heun needs more steps for the same accuracy.
    shift: timestep shift factor a of ``time_grid``.
    Runs without autograd. Returns (B, ...) in noise's dtype.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; valid: {', '.join(METHODS)}")
    # Python floats, computed once on the CPU: no device sync inside the loop.
    ts = time_grid(steps, shift=shift).tolist()
    x = noise
    for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
        dt = t_next - t_cur  # negative: we integrate towards the data
        d_cur = velocity(x, t_cur)
        x_euler = x + dt * d_cur
        if method == "euler" or t_next == 0.0:
            x = x_euler
        else:
            d_next = velocity(x_euler, t_next)
            x = x + dt * 0.5 * (d_cur + d_next)
    return x
