"""FiT's sampling options as rules (issue 25), held to FiT's rope.py formulas on closed cases.

FiT (whlzy/FiT fit/model/rope.py), per-axis dim d = head_dim / 2, L = ori_max_pe_len, scale
s = max(1, n / L) per axis with --decouple, else the longer axis's on both:
- linear: w / s; ntk-aware: base theta s^(d / (d - 2)); no magnitude factor for either, nor
  for ntk-by-parts.
- yarn: cos and sin times 0.1 ln(s_max) + 1, s_max from the longer axis even with --decouple.
- ntk-aware-pro1 / pro2: ntk-aware frequencies; cos and sin times
  sqrt(ln(2 n) / ln(n_train)) when 2 n > n_train, with n the longer side (pro1) or the token
  count (pro2) and n_train = L (pro1) or L^2 (pro2).
"""

from __future__ import annotations

import math

import pytest
import torch

from lit_rpe.posenc import FIT_INTERPOLATIONS, InferenceRule, fit_proportion, fit_rule
from lit_rpe.posenc import rule_frequencies as rf

D, THETA, L = 36, 10000.0, 16  # FiT-XL: head_dim 72


def freqs(name, grid, decouple=True):
    return rf(
        fit_rule(name, decouple=decouple), dim=D, theta=THETA, train_grid=(L, L), test_grid=grid
    )


def powers(theta):
    return theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)


def test_linear_and_dynntk_follow_fit_per_axis_or_by_the_longer_axis():
    f = freqs("linear", (20, 40))
    torch.testing.assert_close(f.h, powers(THETA) / 1.25)
    torch.testing.assert_close(f.w, powers(THETA) / 2.5)
    coupled = freqs("linear", (20, 40), decouple=False)
    torch.testing.assert_close(coupled.h, powers(THETA) / 2.5)
    f = freqs("dynntk", (16, 32))
    torch.testing.assert_close(f.h, powers(THETA))
    torch.testing.assert_close(f.w, powers(THETA * 2 ** (D / (D - 2))))
    assert (f.tau_h, f.tau_w, f.logit_factor) == (1.0, 1.0, 1.0)


def test_yarn_takes_the_tau_of_the_longer_axis_on_both_halves():
    f = freqs("yarn", (16, 32))
    assert f.tau_h == f.tau_w == pytest.approx(0.1 * math.log(2) + 1)


def test_partntk_has_no_magnitude_factor():
    f = freqs("partntk", (32, 32))
    assert (f.tau_h, f.tau_w) == (1.0, 1.0)
    suite = rf(
        InferenceRule("ntk_by_parts"), dim=D, theta=THETA, train_grid=(L, L), test_grid=(32, 32)
    )
    torch.testing.assert_close(f.h, suite.h)
    assert suite.tau_h > 1.0  # the suite's own ntk_by_parts keeps YaRN's tau


@pytest.mark.parametrize(
    "name, grid, tau",
    [
        ("ntkpro1", (20, 20), math.sqrt(math.log(40) / math.log(16))),  # FiT's 320 px
        ("ntkpro1", (10, 20), math.sqrt(math.log(40) / math.log(16))),
        ("ntkpro2", (20, 20), math.sqrt(math.log(800) / math.log(256))),
        ("ntkpro2", (10, 20), math.sqrt(math.log(400) / math.log(256))),
        ("ntkpro2", (16, 16), math.sqrt(math.log(512) / math.log(256))),  # > 1 at the train size
        ("ntkpro2", (8, 8), 1.0),  # 2 * 64 <= 256
    ],
)
def test_ntkpro_factors_are_fits_proportions(name, grid, tau):
    f = freqs(name, grid)
    assert f.tau_h == pytest.approx(tau) and f.tau_w == pytest.approx(tau)
    ntk = freqs("dynntk", grid)
    torch.testing.assert_close(f.h, ntk.h)
    torch.testing.assert_close(f.w, ntk.w)


def test_fit_proportion_closed_values():
    assert fit_proportion(8, 16) == 1.0
    assert fit_proportion(16, 16) == pytest.approx(math.sqrt(1.25))
    with pytest.raises(ValueError, match="train_len >= 2"):
        fit_proportion(4, 1)


def test_every_option_has_a_rule_and_unknown_names_are_refused():
    assert set(FIT_INTERPOLATIONS) == {
        "no", "linear", "dynntk", "partntk", "yarn", "ntkpro1", "ntkpro2",
    }  # fmt: skip
    assert fit_rule("no") == InferenceRule("extrapolate", scaling="coupled")
    with pytest.raises(ValueError, match="unknown FiT interpolation 'ntk'; valid: no, linear"):
        fit_rule("ntk")


def test_a_second_magnitude_factor_is_refused():
    with pytest.raises(ValueError, match="attention_scale='fit_pro2' would apply it twice"):
        InferenceRule("yarn", attention_scale="fit_pro2")
    InferenceRule("yarn", attention_scale="fit_pro2", tau_axes="none")  # its own tau dropped
