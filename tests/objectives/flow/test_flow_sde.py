"""SiT's SDE sampler against a Gaussian target whose exact velocity field is known."""

import pytest
import torch
from test_flow_samplers import MU, SIGMA, gaussian_velocity

from lit_rpe.objectives.ddpm.samplers import noise_generators, step_noise
from lit_rpe.objectives.flow import seeded_noise
from lit_rpe.objectives.flow.sde import sample_sde


def test_sde_samples_have_the_targets_moments():
    n = 4000
    eps = seeded_noise(range(n), (MU.numel(),), dtype=torch.float64)
    gens = noise_generators(range(n))
    x = sample_sde(
        gaussian_velocity, eps, steps=250, step_noise=lambda like: step_noise(gens, like)
    )
    # Monte Carlo: 4 standard errors of the mean (sigma / sqrt(n)) and of the sd
    assert ((x.mean(0) - MU) / SIGMA).abs().max() < 4 / n**0.5 + 0.02
    assert ((x.std(0) / SIGMA) - 1).abs().max() < 4 / (2 * n) ** 0.5 + 0.03
    # stochastic: not the ODE's transport of the same noise
    assert ((x - (MU + SIGMA * eps)).abs() / SIGMA).max() > 0.1


def test_an_image_does_not_depend_on_its_batch():
    eps = seeded_noise(range(3), (4,), dtype=torch.float64)

    def run(rows):
        gens = noise_generators([int(r) for r in rows])
        return sample_sde(
            gaussian_velocity, eps[rows], steps=10, step_noise=lambda like: step_noise(gens, like)
        )

    torch.testing.assert_close(run(torch.tensor([0, 1, 2]))[2], run(torch.tensor([2]))[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 1}, "steps >= 2"),
        ({"steps": 4, "shift": 2.0}, "timestep shift"),
        ({"steps": 4, "last_step": 0.0}, "0 < last_step < 1"),
    ],
)
def test_bad_sde_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_sde(lambda x, t: x, torch.zeros(1, 1), step_noise=torch.randn_like, **kwargs)
