"""Inference rules and add-ons (docs/DESIGN.md 3c)."""

import math

import pytest
import torch

from lit_rpe.posenc import (
    INFERENCE_RULES,
    InferenceRule,
    addon_axis_taus,
    attention_logit_factor,
    axis_frequencies,
    base_frequencies,
    inference_positions,
    rule_frequencies,
    timestep_shift,
    yarn_tau,
)


def resolve(rule, train=(16, 16), test=(32, 16), t=None, dim=32):
    return rule_frequencies(rule, dim=dim, theta=1e4, train_grid=train, test_grid=test, t=t)


def test_unknown_rule_lists_valid_names():
    with pytest.raises(ValueError, match="valid: extrapolate, interpolate, rpe2d_even"):
        InferenceRule("bilinear")
    with pytest.raises(ValueError, match="valid: decoupled, coupled"):
        InferenceRule("ntk", scaling="both")
    with pytest.raises(ValueError, match="valid: none, yarn, proportional"):
        InferenceRule("ntk", attention_scale="cosine")
    with pytest.raises(ValueError, match="valid: per_axis, max"):
        InferenceRule("yarn", tau_axes="mean")


def test_invalid_combinations_raise():
    with pytest.raises(ValueError, match="apply it twice"):
        InferenceRule("yarn", attention_scale="yarn")
    with pytest.raises(ValueError, match="dype_\\* rules only"):
        InferenceRule("ntk", lambda_s=2.0)
    with pytest.raises(ValueError, match="dype_\\* rules only, not 'tasr'"):
        InferenceRule("tasr", lambda_t=1.0)
    with pytest.raises(ValueError, match="tasr rule only, not 'dype_ntk'"):
        InferenceRule("dype_ntk", watershed=0.5)
    with pytest.raises(ValueError, match="tasr rule only, not 'tasr_static'"):
        InferenceRule("tasr_static", watershed=0.5)
    with pytest.raises(ValueError, match=r"watershed is a time in \[0, 1\]"):
        InferenceRule("tasr", watershed=-0.1)
    with pytest.raises(ValueError, match="timestep_shift"):
        InferenceRule("ntk", timestep_shift=0.0)
    # TASR has no tau of its own: YaRN's attention scale is a valid add-on
    assert InferenceRule("tasr", attention_scale="yarn").attention_scale == "yarn"
    with pytest.raises(ValueError, match="needs the sampling time t"):
        resolve(InferenceRule("tasr"), t=None)


def test_time_dependent_rules_are_dype_and_tasr():
    dependent = {name for name in INFERENCE_RULES if InferenceRule(name).time_dependent}
    assert dependent == {"dype_pi", "dype_ntk", "dype_yarn", "tasr"}
    r = resolve(InferenceRule("tasr_static"))  # no t needed
    torch.testing.assert_close(r.h, base_frequencies(32, 1e4 * 2))  # s_h = 32 / 16
    torch.testing.assert_close(r.w, base_frequencies(32))  # s_w = 1: identity


def test_decoupled_scales_each_axis_coupled_uses_the_larger():
    dec = resolve(InferenceRule("ntk"), test=(32, 16))
    torch.testing.assert_close(dec.h, axis_frequencies("ntk", 32, train_len=16, test_len=32)[0])
    torch.testing.assert_close(dec.w, base_frequencies(32))  # 16 / 16: identity
    cpl = resolve(InferenceRule("ntk", scaling="coupled"), test=(32, 16))
    torch.testing.assert_close(cpl.w, cpl.h)


@pytest.mark.parametrize("name", list(INFERENCE_RULES))
def test_every_rule_resolves_for_both_axes(name):
    r = resolve(InferenceRule(name), test=(48, 24), t=0.5)
    assert r.h.shape == r.w.shape == (16,)
    assert r.tau_h >= 1.0 and r.tau_w >= 1.0 and r.logit_factor == 1.0


def test_rpe2d_rules_use_unscaled_frequencies():
    r = resolve(InferenceRule("rpe2d_even"), test=(64, 64))
    torch.testing.assert_close(r.h, base_frequencies(32))
    assert r.tau_h == r.tau_w == 1.0


def test_resolved_frequencies_are_cached_per_grid_rule_and_t():
    rule = InferenceRule("dype_ntk")
    assert resolve(rule, t=0.5) is resolve(rule, t=0.5)
    assert resolve(rule, t=0.5) is not resolve(rule, t=0.4)


def test_training_frequencies_are_unscaled():
    r = rule_frequencies(None, dim=32, theta=1e4, train_grid=(16, 16), test_grid=(64, 64))
    torch.testing.assert_close(r.h, base_frequencies(32))


def test_inference_positions_layouts_and_errors():
    h, w = inference_positions(InferenceRule("ntk"), batch=2, test_grid=(3, 5), max_len=(4, 4))
    assert h.shape == (2, 3) and w[0].tolist() == [0, 1, 2, 3, 4]
    h, w = inference_positions(
        InferenceRule("rpe2d_even"), batch=1, test_grid=(2, 4), max_len=(8, 8)
    )
    assert h[0].tolist() == [2, 6] and w[0].tolist() == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="max_len=64"):
        inference_positions(
            InferenceRule("rpe2d_even"), batch=1, test_grid=(80, 80), max_len=(64, 64)
        )
    with pytest.raises(ValueError, match="one seed per image"):
        inference_positions(
            InferenceRule("rpe2d_random"), batch=2, test_grid=(4, 4), max_len=(8, 8)
        )
    a = inference_positions(
        InferenceRule("rpe2d_random"), batch=2, test_grid=(4, 4), max_len=(8, 8), seeds=[1, 2]
    )
    b = inference_positions(
        InferenceRule("rpe2d_random"), batch=1, test_grid=(4, 4), max_len=(8, 8), seeds=[2]
    )
    assert torch.equal(a[0][1:], b[0]) and torch.equal(a[1][1:], b[1])


def test_attention_logit_factors_closed_form():
    assert attention_logit_factor("none", train_tokens=256, test_tokens=1024) == 1.0
    assert attention_logit_factor(
        "proportional", train_tokens=256, test_tokens=1024
    ) == pytest.approx(math.sqrt(10 / 8))
    # yarn acts through cos and sin, per axis, not on the logits directly
    assert attention_logit_factor("yarn", train_tokens=256, test_tokens=1024) == 1.0
    assert addon_axis_taus("yarn", 2.0, 4.0) == pytest.approx(
        (0.1 * math.log(2) + 1, 0.1 * math.log(4) + 1)
    )
    assert addon_axis_taus("proportional", 2.0, 4.0) == (1.0, 1.0)
    r = resolve(InferenceRule("ntk", attention_scale="proportional"), train=(16, 16), test=(32, 32))
    assert r.logit_factor == pytest.approx(math.sqrt(math.log(1024) / math.log(256)))


def test_timestep_shift_closed_form():
    assert timestep_shift(0.5, 3.0) == pytest.approx(0.75)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    s = timestep_shift(t, 2.0)
    assert s[0] == 0 and s[-1] == 1 and (s[1:] > s[:-1]).all() and (s >= t).all()
    torch.testing.assert_close(timestep_shift(t, 1.0), t)
    rule = InferenceRule("ntk", timestep_shift="auto")
    assert rule.shift_factor(train_tokens=256, test_tokens=1024) == pytest.approx(2.0)
    assert (
        InferenceRule("ntk", timestep_shift=3.0).shift_factor(train_tokens=1, test_tokens=1) == 3.0
    )
    with pytest.raises(ValueError, match="> 0"):
        timestep_shift(0.5, 0.0)


# Per-axis tau on non-square grids: a 16x16 training grid at 16x32 and 32x64 (and 32x32).
NON_SQUARE = [((16, 32), (1.0, 2.0)), ((32, 64), (2.0, 4.0))]


@pytest.mark.parametrize("test,scales", NON_SQUARE)
@pytest.mark.parametrize(
    "rule", [InferenceRule("yarn"), InferenceRule("ntk", attention_scale="yarn")]
)
def test_tau_is_per_axis_by_default_and_the_larger_when_max(rule, test, scales):
    per_axis = resolve(rule, train=(16, 16), test=test)
    assert (per_axis.tau_h, per_axis.tau_w) == pytest.approx(
        (1 + 0.1 * math.log(scales[0]), 1 + 0.1 * math.log(scales[1]))
    )
    coupled = resolve(
        InferenceRule(rule.name, attention_scale=rule.attention_scale, tau_axes="max"),
        train=(16, 16),
        test=test,
    )
    assert coupled.tau_h == coupled.tau_w == pytest.approx(1 + 0.1 * math.log(scales[1]))
    # the frequencies do not depend on the tau mode
    torch.testing.assert_close(coupled.h, per_axis.h)
    torch.testing.assert_close(coupled.w, per_axis.w)
    assert per_axis.logit_factor == coupled.logit_factor == 1.0


@pytest.mark.parametrize("name", ["yarn", "ntk_by_parts", "dype_yarn"])
def test_square_grids_give_one_tau_in_both_modes(name):
    a = resolve(InferenceRule(name), train=(16, 16), test=(32, 32), t=0.5)
    b = resolve(InferenceRule(name, tau_axes="max"), train=(16, 16), test=(32, 32), t=0.5)
    assert a.tau_h == a.tau_w == b.tau_h == b.tau_w == pytest.approx(yarn_tau(2.0))
    torch.testing.assert_close(a.h, b.h)


def test_coupled_scaling_gives_one_tau_in_both_modes():
    r = resolve(InferenceRule("yarn", scaling="coupled"), train=(16, 16), test=(16, 32))
    assert r.tau_h == r.tau_w == pytest.approx(yarn_tau(2.0))
