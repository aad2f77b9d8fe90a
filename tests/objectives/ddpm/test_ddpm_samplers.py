"""DDPM samplers on oracle epsilon models: learned-range variance, ancestral, DDIM, seeds."""

import math

import pytest
import torch

from lit_rpe.objectives.ddpm import (
    DDPMSchedule,
    ddim_sample,
    ddpm_sample,
    noise_generators,
    p_mean_variance,
    step_noise,
)
from lit_rpe.objectives.flow import seeded_noise

SHAPE = (4, 6, 6)


def point_mass_eps(schedule: DDPMSchedule, x0: torch.Tensor, values: float | None = None):
    """The exact epsilon for data that is the single point x0 (per image):
    eps = (x - sqrt(abar) x0) / sqrt(1 - abar); optional constant variance values v."""

    def model(x, index):
        abar = float(schedule.alphas_cumprod[index])
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        return eps if values is None else torch.cat([eps, torch.full_like(eps, values)], 1)

    return model


def test_learned_range_interpolates_log_variance_between_posterior_and_beta():
    s = DDPMSchedule.linear().respace(50)
    x = torch.randn(2, *SHAPE)
    eps = torch.randn(2, *SHAPE)
    k = 20
    lo, hi = s.posterior_log_variance_clipped[k], math.log(s.betas[k])
    for v, expected in ((-1.0, lo), (1.0, hi), (0.0, (lo + hi) / 2)):
        out = torch.cat([eps, torch.full_like(eps, v)], 1)
        _, log_var, _ = p_mean_variance(s, out, x, k)
        torch.testing.assert_close(log_var, torch.full_like(x, expected))
    mean, log_var, x0 = p_mean_variance(s, eps, x, k)  # no variance channels: fixed large
    torch.testing.assert_close(log_var, torch.full_like(x, math.log(s.betas[k])))
    abar = s.alphas_cumprod[k]
    torch.testing.assert_close(x0, (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar))
    expected = s.posterior_mean_coef1[k] * x0 + s.posterior_mean_coef2[k] * x
    torch.testing.assert_close(mean, expected)
    _, _, clipped = p_mean_variance(s, eps, x * 100, k, clip_denoised=True)
    assert clipped.abs().max() <= 1
    with pytest.raises(ValueError, match="expected 4 or 2x"):
        p_mean_variance(s, torch.cat([eps, eps[:, :1]], 1), x, k)


@pytest.mark.parametrize("steps", [10, 250])
def test_ddim_eta0_on_a_point_mass_lands_on_it(steps):
    s = DDPMSchedule.linear().respace(steps)
    x0 = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    noise = seeded_noise([0, 1, 2], SHAPE)
    out = ddim_sample(point_mass_eps(s, x0, values=0.3), noise, s)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_ddim_eta0_on_gaussian_data_gives_its_mean_and_std():
    """Data N(mu, sd^2) per pixel: eps(x) = sqrt(1 - abar) (x - sqrt(abar) mu) / var_t with
    var_t = abar sd^2 + 1 - abar is exact, and DDIM's ODE carries N(0, 1) onto the data (up to
    its discretisation error: 1.8 % in std at 250 steps, 0.5 % at 1000)."""
    s = DDPMSchedule.linear().respace(1000)
    mu, sd = 0.7, 0.3

    def model(x, index):
        abar = float(s.alphas_cumprod[index])
        return math.sqrt(1 - abar) * (x - math.sqrt(abar) * mu) / (abar * sd**2 + 1 - abar)

    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = ddim_sample(model, (noise - noise.mean()) / noise.std(), s)
    assert out.mean().item() == pytest.approx(mu, abs=0.005)
    assert out.std().item() == pytest.approx(sd, abs=0.005)


@pytest.mark.parametrize("values", [None, -1.0, 1.0])
def test_ancestral_ddpm_on_a_point_mass_converges_to_it(values):
    s = DDPMSchedule.linear().respace(50)
    x0 = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(2))
    seen = []
    model = point_mass_eps(s, x0, values)

    def spy(x, index):
        seen.append((x - math.sqrt(float(s.alphas_cumprod[index])) * x0).std().item())
        return model(x, index)

    out = ddpm_sample(spy, seeded_noise([5, 6], SHAPE), s, generators=noise_generators([5, 6]))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)
    assert seen[-1] < seen[len(seen) // 2] < seen[0]  # the spread around the point shrinks


def test_step_noise_is_per_image_and_apart_from_the_initial_noise():
    like = torch.zeros(3, *SHAPE)
    a = step_noise(noise_generators([1, 2, 3]), like)
    b = step_noise(noise_generators([3]), like[:1])
    assert torch.equal(a[2:], b)
    assert not torch.allclose(a[:1], seeded_noise([1], SHAPE))
    with pytest.raises(ValueError, match="one generator per image"):
        step_noise(noise_generators([1]), like)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim_eta1"])
def test_an_image_does_not_depend_on_its_batch(sampler):
    s = DDPMSchedule.linear().respace(20)
    x0 = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(3))
    seeds = [7, 8, 9]

    def run(rows):
        model = point_mass_eps(s, x0[rows] * 0.5, values=0.0)  # a half-way "wrong" oracle
        wrapped = lambda x, i: model(x, i) * 1.1  # noqa: E731
        noise = seeded_noise([seeds[r] for r in rows], SHAPE)
        gens = noise_generators([seeds[r] for r in rows])
        if sampler == "ddpm":
            return ddpm_sample(wrapped, noise, s, generators=gens)
        return ddim_sample(wrapped, noise, s, eta=1.0, generators=gens)

    torch.testing.assert_close(run([0, 1, 2])[1:2], run([1]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="pass one generator per image"):
        ddim_sample(point_mass_eps(s, x0), torch.zeros(3, *SHAPE), s, eta=0.5)
