"""Deterministic ODE samplers from noise at t = 1 to data at t = 0: fixed-step Euler and Heun,
and the adaptive Dormand-Prince 5(4) solver of SiT / FiTv2's published numbers (torchdiffeq's
``dopri5``, with their tolerances ``ADAPTIVE_TOLERANCES``)."""

from __future__ import annotations

import numbers

import torch

from lit_rpe.posenc.addons import timestep_shift
from lit_rpe.sampling.guidance import Velocity

METHODS = ("euler", "heun", "dopri5")
ADAPTIVE_METHODS = ("dopri5",)
# (atol, rtol) of SiT's and FiT's ODE sampler (their --atol / --rtol defaults and configs)
ADAPTIVE_TOLERANCES = (1e-6, 1e-3)


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
    tolerances: tuple[float, float] = ADAPTIVE_TOLERANCES,
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
    ``dopri5``: the adaptive solver (``sample_ode_adaptive``), ``steps`` its output times; a
    shift is refused (it moves a fixed grid; the adaptive solver places its own steps).
    tolerances: (atol, rtol) of the adaptive solver.
    Runs without autograd. Returns (B, ...) in noise's dtype.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; valid: {', '.join(METHODS)}")
    if method in ADAPTIVE_METHODS:
        if shift != 1.0:
            raise ValueError(
                f"a timestep shift ({shift}) moves a fixed step grid; {method} places its own "
                "steps: use euler or heun with timestep_shift"
            )
        return sample_ode_adaptive(
            velocity, noise, steps=steps, method=method, tolerances=tolerances
        )
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


@torch.no_grad()
def sample_ode_adaptive(
    velocity: Velocity,
    noise: torch.Tensor,
    *,
    steps: int = 250,
    method: str = "dopri5",
    tolerances: tuple[float, float] = ADAPTIVE_TOLERANCES,
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 1 to 0 with torchdiffeq's adaptive ``method``.

    The solver runs in the variable ``u = 1 - t`` from 0 to 1 (dx/du = -velocity), the
    direction in which SiT and FiTv2 integrate their own time, with their output times
    ``linspace(0, 1, steps)`` (their ``num_steps``, 250 in FiT's commands; float32 as theirs).
    The output times do not move the solution in exact arithmetic, but torchdiffeq's step
    control sees them (measured: the same run ends 1e-3 apart with 2 or 250 output times), so
    keeping theirs keeps their steps. The error norm (RMS) is taken over the whole batch, as
    theirs: an image's steps, hence its result up to the tolerance, depend on its batch.
    tolerances: (atol, rtol). Returns x(t = 0), (B, ...) in noise's dtype.
    """
    from torchdiffeq import odeint

    atol, rtol = tolerances
    if not (atol > 0 and rtol > 0):
        raise ValueError(f"tolerances must be > 0, got atol={atol}, rtol={rtol}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"an adaptive solver needs steps >= 2 output times, got {steps!r}")

    def slope(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -velocity(x, 1.0 - float(u))

    times = torch.linspace(0.0, 1.0, int(steps), device=noise.device)
    # One-element lists, as SiT/FiT pass them: torchdiffeq then holds (1,)-shaped float64
    # tolerances, which promote its error ratio to float64 (scalars keep float32 and change
    # borderline step decisions: measured 1e-3 apart at the end).
    return odeint(slope, noise, times, method=method, atol=[atol], rtol=[rtol])[-1]
