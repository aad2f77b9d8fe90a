"""One guidance function for every objective; DiT's and SiT's convention (3 latent channels
guided) is its guided_channels option."""

import pytest
import torch

from lit_rpe.guidance import OFFICIAL_GUIDED_CHANNELS, combine_guided, guided_denoiser


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
