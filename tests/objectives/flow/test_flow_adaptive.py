"""The adaptive ODE solver (dopri5 through torchdiffeq) of SiT's / FiTv2's published numbers."""

import math

import pytest
import torch
from test_flow_samplers import MU, SIGMA, gaussian_velocity, transport_error

from lit_rpe.objectives.flow import sample_ode, seeded_noise
from lit_rpe.objectives.flow.samplers import ADAPTIVE_TOLERANCES, sample_ode_adaptive


def test_official_tolerances():
    assert ADAPTIVE_TOLERANCES == (1e-6, 1e-3)  # SiT's and FiT's --atol / --rtol


def test_dopri5_recovers_the_gaussian_transport():
    eps = seeded_noise(range(2000), (MU.numel(),), dtype=torch.float64)
    x = sample_ode(gaussian_velocity, eps, steps=250, method="dopri5")
    assert transport_error(x, eps) < 0.03  # worst of 2000 samples, rtol 1e-3 [observed 0.016]
    tight = sample_ode(gaussian_velocity, eps, steps=2, method="dopri5", tolerances=(1e-9, 1e-7))
    assert transport_error(tight, eps) < 1e-5
    assert ((x.mean(0) - MU) / SIGMA).abs().max() < 0.1


def test_dopri5_of_an_exponential_is_closed_form():
    """dx/dt = x from t = 1 to 0: x(0) = x(1) / e, to the solver's rtol."""
    x = sample_ode(lambda x, t: x, torch.ones(3, 2, dtype=torch.float64), steps=10, method="dopri5")
    torch.testing.assert_close(x, torch.full_like(x, math.exp(-1)), rtol=1e-3, atol=0)


def test_the_velocity_gets_python_float_times_in_the_suites_direction():
    seen = []

    def velocity(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    sample_ode_adaptive(velocity, torch.zeros(1, 2), steps=3)
    assert all(isinstance(t, float) for t in seen) and seen[0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 4, "method": "dopri5", "shift": 2.0}, "use euler or heun with timestep_shift"),
        ({"steps": 1, "method": "dopri5"}, "steps >= 2 output times"),
        ({"steps": 4, "method": "dopri5", "tolerances": (0.0, 1e-3)}, "tolerances must be > 0"),
    ],
)
def test_bad_adaptive_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_ode(lambda x, t: x, torch.zeros(1, 1), **kwargs)
