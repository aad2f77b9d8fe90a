"""DiT's DDPM schedule: closed forms, the respacing rule and values of the official code."""

import math

import numpy as np
import pytest

from lit_rpe.objectives.ddpm import DDPMSchedule, linear_betas, space_timesteps


def test_linear_betas_are_stretched_to_any_length():
    betas = linear_betas(1000)
    assert len(betas) == 1000 and betas.dtype == np.float64
    assert betas[0] == pytest.approx(1e-4, rel=1e-12) and betas[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(betas), (0.02 - 1e-4) / 999)
    half = linear_betas(500)  # scale 1000 / 500 = 2
    assert half[0] == pytest.approx(2e-4) and half[-1] == pytest.approx(0.04)


def test_cumulative_alphas_and_posterior_terms_follow_their_formulas():
    s = DDPMSchedule.linear()
    betas = linear_betas(1000)
    for k in (0, 1, 499, 999):
        direct = 1.0
        for j in range(k + 1):
            direct *= 1 - betas[j]
        assert s.alphas_cumprod[k] == pytest.approx(direct, rel=1e-10)
    # values of the official GaussianDiffusion (create_diffusion("")), read off once
    assert s.alphas_cumprod[499] == pytest.approx(7.85872429e-02, rel=1e-8)
    assert s.alphas_cumprod[999] == pytest.approx(4.03582977e-05, rel=1e-8)
    abar = s.alphas_cumprod
    for k in (1, 500):
        var = betas[k] * (1 - abar[k - 1]) / (1 - abar[k])
        assert s.posterior_variance[k] == pytest.approx(var, rel=1e-10)
        assert s.posterior_log_variance_clipped[k] == pytest.approx(math.log(var), rel=1e-12)
        assert s.posterior_mean_coef1[k] == pytest.approx(
            betas[k] * math.sqrt(abar[k - 1]) / (1 - abar[k]), rel=1e-10
        )
        assert s.posterior_mean_coef2[k] == pytest.approx(
            (1 - abar[k - 1]) * math.sqrt(1 - betas[k]) / (1 - abar[k]), rel=1e-10
        )
    # step 0: the posterior variance is 0, its log is clipped to step 1's
    assert s.posterior_variance[0] == 0
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
    assert s.posterior_mean_coef1[0] == pytest.approx(1.0) and s.posterior_mean_coef2[0] == 0
    assert s.fixed_large_log_variance[0] == s.posterior_log_variance_clipped[1]
    assert np.allclose(s.fixed_large_log_variance[1:], np.log(betas[1:]))


def test_space_timesteps_is_dits_rule():
    kept = space_timesteps(1000, 250)
    assert len(kept) == 250 and kept[:5] == [0, 4, 8, 12, 16] and kept[-2:] == [995, 999]
    # the fractional stride 999 / 249, accumulated and rounded (official output)
    assert kept[120:130] == [481, 485, 489, 493, 497, 502, 506, 510, 514, 518]
    assert set(np.diff(kept).tolist()) == {4, 5}
    assert space_timesteps(1000, "10") == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert space_timesteps(1000, 25)[:7] == [0, 42, 83, 125, 166, 208, 250]
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(10, "3,2") == [0, 2, 4, 5, 9]  # sections of 5 and 5 steps
    assert space_timesteps(1000, 1000) == list(range(1000))
    with pytest.raises(ValueError, match="cannot take 2000 steps"):
        space_timesteps(1000, 2000)
    with pytest.raises(ValueError, match="exactly 999"):
        space_timesteps(1000, "ddim999")


def test_respacing_keeps_the_cumulative_alphas_of_the_kept_steps():
    base = DDPMSchedule.linear()
    short = base.respace(250)
    assert short.num_steps == 250 and short.train_steps == 1000
    assert short.timestep_map == space_timesteps(1000, 250)
    np.testing.assert_allclose(
        short.alphas_cumprod, base.alphas_cumprod[short.timestep_map], rtol=1e-12
    )
    prev = np.append(1.0, short.alphas_cumprod[:-1])
    np.testing.assert_allclose(short.betas, 1 - short.alphas_cumprod / prev, rtol=1e-12)
    # official SpacedDiffusion numbers (create_diffusion("250"))
    assert short.betas[1] == pytest.approx(5.99065564e-04, rel=1e-8)
    assert short.betas[-1] == pytest.approx(0.07751934, rel=1e-7)
    assert short.posterior_log_variance_clipped[0] == pytest.approx(-9.36462816, rel=1e-8)
    assert short.rule_t(249) == 0.999 and short.rule_t(0) == 0.0
    # respacing a respaced chain maps to the original steps
    again = short.respace(10)
    assert again.timestep_map == [short.timestep_map[i] for i in space_timesteps(250, 10)]
    one = base.respace(1)  # a one-step chain: x_0 from the noise at step 0, finite numbers
    assert one.timestep_map == [0] and np.isfinite(one.posterior_log_variance_clipped).all()
