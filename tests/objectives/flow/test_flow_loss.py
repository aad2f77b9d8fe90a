"""Flow-matching path, training-time t distribution, loss and its per-t-bucket summary."""

import math

import pytest
import torch

from lit_rpe.objectives.flow import (
    FlowMatchingLoss,
    interpolate,
    loss_per_t_bucket,
    sample_t,
    target_velocity,
)

SHAPE = (6, 3, 4, 4)


def test_path_endpoints_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    assert torch.equal(interpolate(x0, eps, torch.zeros(6)), x0)  # t = 0 is data
    assert torch.equal(interpolate(x0, eps, torch.ones(6)), eps)  # t = 1 is noise
    t = torch.rand(6, generator=g)
    h = 1e-3  # x_t is linear in t, so a finite difference gives the velocity
    dx = (interpolate(x0, eps, t + h) - interpolate(x0, eps, t - h)) / (2 * h)
    torch.testing.assert_close(dx, target_velocity(x0, eps), rtol=0, atol=1e-3)


def exact_model(x0, seed, t_sampling="uniform"):
    """A "model" returning the exact target, by replaying the loss's documented draws.

    FlowMatchingLoss draws t first, then eps, from the generator it is given.
    """
    g = torch.Generator().manual_seed(seed)
    t_ref = sample_t(x0.shape[0], t_sampling, generator=g)
    eps_ref = torch.randn(x0.shape, generator=g)

    def model(x_t, t, y, **kwargs):
        assert torch.equal(t, t_ref)
        assert torch.equal(x_t, interpolate(x0, eps_ref, t_ref))
        return target_velocity(x0, eps_ref)

    return model


@pytest.mark.parametrize("t_sampling", ["uniform", "logit_normal"])
def test_exact_model_has_zero_loss(t_sampling):
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    loss_fn = FlowMatchingLoss(t_sampling=t_sampling)
    model = exact_model(x0, seed=7, t_sampling=t_sampling)
    losses, t = loss_fn(
        model, x0, torch.zeros(6, dtype=torch.long), generator=torch.Generator().manual_seed(7)
    )
    assert losses.shape == (6,) and t.shape == (6,)
    assert torch.equal(losses, torch.zeros(6))


def test_zero_model_loss_is_per_sample_mean_of_target_squared():
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    seen = {}

    def zero_model(x_t, t, y, **kwargs):
        seen.update(kwargs, y=y)
        return torch.zeros_like(x_t)

    y = torch.arange(6)
    losses, _ = FlowMatchingLoss()(
        zero_model, x0, y, generator=torch.Generator().manual_seed(3), pos_h=1
    )
    g = torch.Generator().manual_seed(3)
    sample_t(6, generator=g)
    eps = torch.randn(SHAPE, generator=g)
    torch.testing.assert_close(losses, (eps - x0).square().mean(dim=(1, 2, 3)))
    assert seen["pos_h"] == 1 and seen["y"] is y


def test_loss_backpropagates_to_the_model():
    w = torch.zeros((), requires_grad=True)
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    losses, _ = FlowMatchingLoss()(lambda x_t, t, y: w * x_t, x0, torch.zeros(6, dtype=torch.long))
    losses.mean().backward()
    assert w.grad is not None and w.grad != 0


def test_logit_normal_median_and_logit_std():
    g = torch.Generator().manual_seed(0)
    t = sample_t(100_000, "logit_normal", generator=g)
    assert 0 < t.min() and t.max() < 1
    # Loose tolerances: the standard errors are ~0.004 (median) and ~0.002 (std) at 1e5 draws.
    assert abs(t.median().item() - 0.5) < 0.01
    assert abs(torch.logit(t.double()).std().item() - 1.0) < 0.01
    t = sample_t(100_000, "logit_normal", generator=g, logit_mean=1.0, logit_std=0.5)
    assert abs(t.median().item() - 1 / (1 + math.exp(-1.0))) < 0.01
    assert abs(torch.logit(t.double()).std().item() - 0.5) < 0.01


def test_uniform_t_in_unit_interval():
    t = sample_t(100_000, "uniform", generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32 and 0 <= t.min() and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.01


def test_bad_t_sampling_kind_raises():
    with pytest.raises(ValueError, match="uniform, logit_normal"):
        sample_t(4, "beta")
    with pytest.raises(ValueError, match="uniform, logit_normal"):
        FlowMatchingLoss(t_sampling="lognormal")
    with pytest.raises(ValueError, match="logit_std"):
        FlowMatchingLoss(t_sampling="logit_normal", logit_std=0.0)


def test_loss_per_t_bucket_by_hand():
    t = torch.tensor([0.05, 0.2, 0.25, 0.49, 0.8, 1.0])
    losses = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    means, counts = loss_per_t_bucket(losses, t, num_buckets=4)
    # [0, .25): 1, 3 | [.25, .5): 5, 7 | [.5, .75): empty | [.75, 1]: 9, 11 (t = 1 -> last)
    assert counts.tolist() == [2, 2, 0, 2]
    assert means[[0, 1, 3]].tolist() == [2.0, 6.0, 10.0]
    assert math.isnan(means[2].item())


def test_loss_per_t_bucket_is_detached():
    losses = torch.ones(3, requires_grad=True)
    means, _ = loss_per_t_bucket(losses * 2, torch.tensor([0.1, 0.5, 0.9]), 2)
    assert not means.requires_grad
    with pytest.raises(ValueError):
        loss_per_t_bucket(losses, torch.rand(3), 0)
