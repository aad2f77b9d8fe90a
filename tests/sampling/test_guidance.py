"""One guidance function for every objective; DiT's and SiT's convention (3 latent channels
guided) is its guided_channels option."""

import pytest
import torch

from lit_rpe.sampling.guidance import (
    OFFICIAL_GUIDED_CHANNELS,
    combine_guided,
    guided_channel_count,
    guided_denoiser,
    guided_velocity,
)


def fake_net(calls):
    """Output (B, 8, h, w) that depends on the label (null = 10) and records the call."""

    def net(x, t, y, *, rule_t, **kwargs):
        shapes = {k: getattr(v, "shape", v) for k, v in kwargs.items()}
        calls.append((x.shape[0], t.tolist(), rule_t, shapes))
        scale = (y.float() + 1).view(-1, 1, 1, 1)
        return torch.cat([x * scale, x + scale], dim=1)

    return net


def test_dit_three_channel_guidance_equals_the_formula():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 8, 3, 3, generator=g), torch.randn(2, 8, 3, 3, generator=g)
    s = 4.0
    out = combine_guided(cond, uncond, s, 3)
    torch.testing.assert_close(out[:, :3], uncond[:, :3] + s * (cond[:, :3] - uncond[:, :3]))
    torch.testing.assert_close(out[:, 3:], cond[:, 3:])  # 4th latent + variance: conditional
    every = combine_guided(cond, uncond, s, 4)
    torch.testing.assert_close(every[:, :4], uncond[:, :4] + s * (cond[:, :4] - uncond[:, :4]))
    torch.testing.assert_close(every[:, 4:], cond[:, 4:])
    torch.testing.assert_close(combine_guided(cond, uncond, s), uncond + s * (cond - uncond))


def test_guided_denoiser_doubles_the_batch_with_the_null_class_and_passes_times():
    calls = []
    x = torch.randn(2, 4, 3, 3)
    y = torch.tensor([1, 2])
    pos_h = torch.zeros(2, 3)
    f = guided_denoiser(
        fake_net(calls),
        y,
        num_classes=10,
        cfg_scale=2.0,
        guided_channels=OFFICIAL_GUIDED_CHANNELS,
        pos_h=pos_h,
        rule="r",
    )
    out = f(x, 999.0, 0.999)
    assert calls[-1] == (4, [999.0] * 4, 0.999, {"pos_h": (4, 3), "rule": "r"})
    net = fake_net([])
    t = torch.zeros(2)
    cond, uncond = net(x, t, y, rule_t=0), net(x, t, torch.tensor([10, 10]), rule_t=0)
    torch.testing.assert_close(out, combine_guided(cond, uncond, 2.0, 3))
    # outside the interval, or with scale 1: one conditional pass
    f = guided_denoiser(
        fake_net(calls), y, num_classes=10, cfg_scale=2.0, guided_channels=3, interval=(0.0, 0.5)
    )
    torch.testing.assert_close(f(x, 999.0, 0.999), cond)
    assert calls[-1][0] == 2
    f(x, 100.0, 0.1)
    assert calls[-1][0] == 4
    with pytest.raises(ValueError, match="t_lo <= t_hi"):
        guided_denoiser(net, y, num_classes=10, interval=(0.6, 0.5))
    with pytest.raises(ValueError, match="finite"):
        guided_denoiser(net, y, num_classes=10, cfg_scale=float("nan"))


# guided_velocity: the flow samplers' form (formula, interval, batch doubling, kwargs, rule_t)
NUM_CLASSES = 10
B = 3


class Recorder:
    """A toy conditional model whose output depends on y; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, y, **kwargs):
        self.calls.append({"x": x, "t": t, "y": y, **kwargs})
        # Nonlinear in y so that guidance changes the output.
        return x * (y.float() ** 2 + 1).view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)


@pytest.fixture
def x():
    return torch.randn(B, 2, 4, 4, generator=torch.Generator().manual_seed(0))


Y = torch.tensor([1, 4, 9])
NULL = torch.full_like(Y, NUM_CLASSES)


def test_guided_velocity_is_uncond_plus_scale_times_difference(x):
    model = Recorder()
    v = guided_velocity(model, Y, num_classes=NUM_CLASSES, cfg_scale=4.0)(x, 0.3)
    v_cond = model(x, torch.full((B,), 0.3), Y)
    v_uncond = model(x, torch.full((B,), 0.3), NULL)
    assert torch.equal(v, v_uncond + 4.0 * (v_cond - v_uncond))
    (call, *_) = model.calls
    assert call["x"].shape[0] == 2 * B
    assert torch.equal(call["y"], torch.cat([Y, NULL]))  # cond first, then the null label


def test_scale_one_is_a_single_conditional_pass(x):
    model = Recorder()
    v = guided_velocity(model, Y, num_classes=NUM_CLASSES)(x, 0.5)
    assert len(model.calls) == 1 and model.calls[0]["x"].shape[0] == B
    assert torch.equal(model.calls[0]["y"], Y)
    assert torch.equal(v, model(x, torch.full((B,), 0.5), Y))


@pytest.mark.parametrize(
    ("t", "guided"),
    [(0.9, False), (0.61, False), (0.6, True), (0.4, True), (0.2, True), (0.1, False)],
)
def test_interval_bounds_inclusive_and_one_pass_outside(x, t, guided):
    model = Recorder()
    v = guided_velocity(model, Y, num_classes=NUM_CLASSES, cfg_scale=3.0, interval=(0.2, 0.6))(x, t)
    assert [c["x"].shape[0] for c in model.calls] == [2 * B if guided else B]
    if not guided:
        assert torch.equal(v, model(x, torch.full((B,), t), Y))


def test_tensor_kwargs_doubled_others_passed_and_rule_t_is_step_t(x):
    model = Recorder()
    pos_h = torch.arange(B * 5.0).view(B, 5)
    box = torch.rand(B, 4)
    shared = torch.arange(7.0)  # not per-sample: first dim != B
    rule = object()
    velocity = guided_velocity(
        model,
        Y,
        num_classes=NUM_CLASSES,
        cfg_scale=2.0,
        interval=(0.0, 0.5),
        pos_h=pos_h,
        box=box,
        shared=shared,
        rule=rule,
    )
    velocity(x, 0.25)  # guided: doubled batch
    velocity(x, 0.75)  # outside the interval: plain batch
    doubled, plain = model.calls
    assert torch.equal(doubled["pos_h"], torch.cat([pos_h, pos_h]))
    assert torch.equal(doubled["box"], torch.cat([box, box]))
    assert plain["pos_h"] is pos_h and plain["box"] is box
    for call in (doubled, plain):
        assert call["shared"] is shared and call["rule"] is rule
    assert doubled["rule_t"] == 0.25 and plain["rule_t"] == 0.75
    assert type(doubled["rule_t"]) is float
    assert torch.equal(doubled["t"], torch.full((2 * B,), 0.25))
    assert plain["t"].dtype == torch.float32


def test_rejects_bad_arguments(x):
    with pytest.raises(ValueError, match="rule_t"):
        guided_velocity(Recorder(), Y, num_classes=NUM_CLASSES, rule_t=0.5)
    with pytest.raises(ValueError, match="interval"):
        guided_velocity(Recorder(), Y, num_classes=NUM_CLASSES, cfg_scale=2.0, interval=(0.8, 0.2))
    with pytest.raises(ValueError, match="batch"):
        guided_velocity(Recorder(), Y[:2], num_classes=NUM_CLASSES)(x, 0.5)


def test_cfg_channels_setting_names_the_guided_channels():
    assert guided_channel_count("dit") == OFFICIAL_GUIDED_CHANNELS == 3
    assert guided_channel_count("all") is None
    with pytest.raises(ValueError, match="valid: all, dit"):
        guided_channel_count("first3")
