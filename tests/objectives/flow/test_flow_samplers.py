"""ODE samplers against a Gaussian target whose exact velocity field and transport are known."""

import math

import pytest
import torch

from lit_rpe.objectives.flow import sample_ode, seeded_noise, time_grid
from lit_rpe.posenc.addons import timestep_shift

MU = torch.tensor([2.0, -1.0, 0.5, 0.0], dtype=torch.float64)
SIGMA = torch.tensor([0.5, 2.0, 1.0, 0.7], dtype=torch.float64)
N_SAMPLES = 20_000

# Monte Carlo slack of the moment checks (4 standard errors at N_SAMPLES): the sample mean of
# N(mu, sigma^2) has sd sigma/sqrt(N), the sample sd has relative sd ~ 1/sqrt(2N).
MEAN_MC_TOL = 4 / math.sqrt(N_SAMPLES)  # in units of sigma, ~0.028
STD_MC_TOL = 4 / math.sqrt(2 * N_SAMPLES)  # relative, ~0.020

# Integration error allowed, in units of sigma, on every sample against the exact transport
# mu + sigma * eps (observed maxima in brackets, float64). Heun's last step onto t = 0 is an
# Euler step, and a shift a > 1 lengthens it (t_1 = a / (steps + a - 1)), so shifted Heun
# needs more steps for the same accuracy.
CASES = [
    # method, steps, shift, tolerance
    ("euler", 500, 1.0, 0.03),  # [0.014]
    ("euler", 500, 3.0, 0.04),  # [0.023]
    ("heun", 20, 1.0, 0.025),  # [0.017]
    ("heun", 20, 0.5, 0.01),  # [0.006]
    ("heun", 40, 3.0, 0.06),  # [0.045]
]


def gaussian_velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    """E[eps - x0 | x_t = x] for x0 ~ N(MU, SIGMA^2) per dim (exact, closed form)."""
    var = SIGMA**2
    gain = (t - (1 - t) * var) / ((1 - t) ** 2 * var + t**2)
    return -MU + gain * (x - (1 - t) * MU)


@pytest.fixture(scope="module")
def eps() -> torch.Tensor:
    return seeded_noise(range(N_SAMPLES), (MU.numel(),), dtype=torch.float64)


def transport_error(x: torch.Tensor, eps: torch.Tensor) -> float:
    """Worst per-sample error, in units of sigma, against the exact flow map mu + sigma * eps.

    The ODE of this linear field maps N(0, 1) to N(mu, sigma^2) by that affine map, so the
    comparison measures integration error alone, free of Monte Carlo noise.
    """
    return ((x - (MU + SIGMA * eps)).abs() / SIGMA).max().item()


@pytest.mark.parametrize(("method", "steps", "shift", "tol"), CASES)
def test_recovers_gaussian(eps, method, steps, shift, tol):
    x = sample_ode(gaussian_velocity, eps, steps=steps, method=method, shift=shift)
    assert transport_error(x, eps) < tol
    # The moments a user would check; the transport error bounds their integration error.
    mean_err = ((x.mean(0) - MU) / SIGMA).abs().max().item()
    std_err = (x.std(0) / SIGMA - 1).abs().max().item()
    assert mean_err < MEAN_MC_TOL + tol
    assert std_err < STD_MC_TOL + tol


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [10, 20])
def test_heun_beats_euler_at_equal_steps(eps, steps, shift):
    errors = {
        m: transport_error(
            sample_ode(gaussian_velocity, eps, steps=steps, method=m, shift=shift), eps
        )
        for m in ("euler", "heun")
    }
    # Margins seen: ~20x at shift 1, only ~1.7x at (10 steps, shift 3) where Heun's final
    # Euler step spans t in [0, 0.25]; assert the ordering, not a ratio.
    assert errors["heun"] < errors["euler"], errors


@pytest.mark.parametrize("shift", [1.0, 0.1, 1 / 3, 3.0, 7.5])
@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_time_grid_endpoints_monotone_and_shifted(steps, shift):
    grid = time_grid(steps, shift=shift)
    assert grid.shape == (steps + 1,)
    assert grid[0].item() == 1.0 and grid[-1].item() == 0.0  # exactly
    assert (grid[1:] < grid[:-1]).all()
    base = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    torch.testing.assert_close(grid, timestep_shift(base, shift), rtol=0, atol=1e-12)


def test_time_grid_device_dtype():
    grid = time_grid(4, dtype=torch.float32, device="cpu")
    assert grid.dtype == torch.float32
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize(("method", "expected_calls"), [("euler", 5), ("heun", 9)])
def test_velocity_gets_python_float_times_and_never_t0_for_heun(method, expected_calls):
    seen = []

    def velocity(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    sample_ode(velocity, torch.zeros(2, 3), steps=5, method=method, shift=2.0)
    assert len(seen) == expected_calls  # Heun: 2 * steps - 1, no corrector at t = 0
    assert all(type(t) is float for t in seen)
    grid = time_grid(5, shift=2.0).tolist()
    assert seen[0] == 1.0 and 0.0 not in seen
    assert sorted(set(seen), reverse=True) == grid[:-1]


def test_one_euler_step_is_x_minus_v():
    noise = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    x = sample_ode(lambda x, t: 2 * x + 1, noise, steps=1)
    torch.testing.assert_close(x, noise - (2 * noise + 1))


def test_runs_without_autograd():
    w = torch.ones((), requires_grad=True)
    x = sample_ode(lambda x, t: w * x, torch.ones(2, 2), steps=3, method="heun")
    assert not x.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.0}, "steps"),
        ({"steps": 4, "method": "rk4"}, "euler, heun, dopri5"),
        ({"steps": 4, "shift": 0.0}, "shift"),
    ],
)
def test_sample_ode_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_ode(lambda x, t: x, torch.zeros(1, 1), **kwargs)
