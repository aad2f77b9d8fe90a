"""Frequency scaling pinned to closed forms and invariances (docs/DESIGN.md 3c)."""

import math

import pytest
import torch

from lit_rpe.posenc import (
    FREQUENCY_METHODS,
    TASR_WATERSHED,
    axis_frequencies,
    band_ramp,
    base_frequencies,
    rotation_pair_index,
    scaled_axis_frequencies,
    tasr_interpolates,
)

THETA = 10000.0


def freqs(method, dim=32, train_len=16, test_len=64, t=None):
    return axis_frequencies(method, dim, theta=THETA, train_len=train_len, test_len=test_len, t=t)


def test_base_frequencies_closed_form():
    f = base_frequencies(8, THETA)
    assert f.dtype == torch.float64
    torch.testing.assert_close(
        f, torch.tensor([1.0, 10000**-0.25, 10000**-0.5, 10000**-0.75], dtype=torch.float64)
    )


def test_interpolate_equals_scaled_positions():
    # PI: unscaled frequencies on positions i * L / n == PI frequencies on positions i.
    train_len, test_len = 16, 40
    f_pi, tau = freqs("interpolate", train_len=train_len, test_len=test_len)
    i = torch.arange(test_len, dtype=torch.float64)
    torch.testing.assert_close(
        i[:, None] * f_pi, (i * train_len / test_len)[:, None] * base_frequencies(32, THETA)
    )
    assert tau == 1.0


def test_ntk_base_change():
    d, s = 32, 4.0
    f, tau = freqs("ntk", dim=d, train_len=16, test_len=64)
    new_theta = THETA * s ** (d / (d - 2))
    torch.testing.assert_close(f, new_theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d))
    base = base_frequencies(d, THETA)
    assert f[0] == base[0]  # fastest pair unchanged
    torch.testing.assert_close(f[-1], base[-1] / s)  # slowest pair interpolated exactly
    assert tau == 1.0


def test_rotation_pair_index_closed_form():
    # d = 128, L = 1024, theta = 1e4: index(r) = 128 ln(1024 / (2 pi r)) / (2 ln 1e4)
    assert rotation_pair_index(32, 128, THETA, 1024) == pytest.approx(11.3115, abs=1e-3)
    assert rotation_pair_index(1, 128, THETA, 1024) == pytest.approx(35.3940, abs=1e-3)


def test_yarn_bands_at_thresholds():
    # d = 128, L = 1024: low = floor(11.31) = 11, high = ceil(35.40) = 36.
    d, s = 128, 2.0
    f, tau = freqs("yarn", dim=d, train_len=1024, test_len=2048)
    base = base_frequencies(d, THETA)
    torch.testing.assert_close(f[:12], base[:12])  # fast pairs (>= 32 rotations) keep w
    torch.testing.assert_close(f[36:], base[36:] / s)  # slow pairs (<= 1 rotation) become w / s
    ramp = (20 - 11) / (36 - 11)  # linear over the pair index in between
    torch.testing.assert_close(f[20], ramp * base[20] / s + (1 - ramp) * base[20])
    assert tau == pytest.approx(0.1 * math.log(2) + 1)


def test_yarn_at_small_training_length_keeps_only_fastest_pairs():
    # L = 16, d = 32: index(32) < 0 -> low = 0; index(1) = 1.737 ln(2.546) -> high = 2.
    f, _ = freqs("yarn", dim=32, train_len=16, test_len=64)
    base = base_frequencies(32, THETA)
    assert f[0] == base[0]
    torch.testing.assert_close(f[1], 0.5 * base[1] / 4 + 0.5 * base[1])
    torch.testing.assert_close(f[2:], base[2:] / 4)


def test_ntk_by_parts_three_bands():
    # d = 128, L = 1024: base band (16, 2) rotations -> pairs [16, 31]; PI band (1.25, 0.75)
    # -> pairs [33, 38]. Pairs <= 16 unscaled, 31..33 pure NTK, >= 38 pure PI.
    d, s = 128, 4.0
    f, tau = freqs("ntk_by_parts", dim=d, train_len=1024, test_len=4096)
    base = base_frequencies(d, THETA)
    ntk = base_frequencies(d, THETA * s ** (d / (d - 2)))
    torch.testing.assert_close(f[:17], base[:17])
    torch.testing.assert_close(f[31:34], ntk[31:34])
    torch.testing.assert_close(f[38:], base[38:] / s)
    assert tau == pytest.approx(0.1 * math.log(4) + 1)


def test_ntk_by_parts_ends_at_small_training_length():
    f, _ = freqs("ntk_by_parts", dim=32, train_len=16, test_len=64)
    base = base_frequencies(32, THETA)
    assert f[0] == base[0]  # fastest pair extrapolates
    torch.testing.assert_close(f[-1], base[-1] / 4)  # slowest pair interpolates


@pytest.mark.parametrize("t", [1.0])
def test_dype_equals_static_counterpart_at_t1(t):
    d, train_len, test_len = 32, 16, 48
    s = test_len / train_len
    pi, _ = freqs("interpolate", d, train_len, test_len)
    torch.testing.assert_close(freqs("dype_pi", d, train_len, test_len, t=t)[0], pi)
    # dype_ntk: defaults (lambda_s = 2) give static NTK at s^2; lambda_s = 1 gives NTK at s.
    ntk_s2, _ = scaled_axis_frequencies("ntk", d, train_len=train_len, scale=s**2)
    torch.testing.assert_close(freqs("dype_ntk", d, train_len, test_len, t=t)[0], ntk_s2)
    ntk_s, _ = freqs("ntk", d, train_len, test_len)
    dype_ntk_1, _ = scaled_axis_frequencies(
        "dype_ntk", d, train_len=train_len, scale=s, t=t, lambda_s=1.0
    )
    torch.testing.assert_close(dype_ntk_1, ntk_s)
    nbp, nbp_tau = freqs("ntk_by_parts", 128, 1024, 3072)
    dy, dy_tau = freqs("dype_yarn", 128, 1024, 3072, t=t)
    torch.testing.assert_close(dy, nbp)
    assert dy_tau == nbp_tau


@pytest.mark.parametrize("method", ["dype_pi", "dype_ntk", "dype_yarn"])
@pytest.mark.parametrize("dim,train_len", [(32, 16), (128, 1024)])
def test_dype_tends_to_base_as_t_goes_to_zero(method, dim, train_len):
    base = base_frequencies(dim, THETA)
    f0, _ = freqs(method, dim, train_len, 4 * train_len, t=0.0)
    torch.testing.assert_close(f0, base)
    # and continuously so: every step of a fine schedule moves towards the base
    errors = [
        (freqs(method, dim, train_len, 4 * train_len, t=t)[0] - base).abs().max().item()
        for t in (0.5, 0.1, 0.01, 1e-3, 1e-4)
    ]
    assert errors[-1] < 1e-6 * base[0].item() + 1e-9 or errors[-1] == 0.0
    assert all(a >= b for a, b in zip(errors, errors[1:], strict=False))


def test_dype_yarn_tau_independent_of_t():
    taus = {freqs("dype_yarn", t=t)[1] for t in (1.0, 0.5, 0.01)}
    assert taus == {0.1 * math.log(4) + 1}


@pytest.mark.parametrize("method", FREQUENCY_METHODS)
@pytest.mark.parametrize("test_len", [4, 15, 16])
def test_identity_when_test_len_not_above_train_len(method, test_len):
    f, tau = freqs(method, train_len=16, test_len=test_len, t=0.7)
    torch.testing.assert_close(f, base_frequencies(32, THETA))
    assert tau == 1.0


@pytest.mark.parametrize("method", FREQUENCY_METHODS)
def test_frequencies_positive_and_never_above_base(method):
    # No method speeds a pair up: extrapolation is the fastest any pair gets.
    f, _ = freqs(method, dim=64, train_len=16, test_len=40, t=0.3)
    assert (f > 0).all()
    assert (f <= base_frequencies(64, THETA) * (1 + 1e-12)).all()


def lumina_reference(dim, theta, scale, lumina_t, watershed):
    """Lumina-Next's frequencies written from its definition: Lumina's time runs 0 = noise to
    1 = data; before ``watershed`` positions are divided by the scale, after it the base is
    multiplied by it; exponents 4j / head_dim = 2j / dim over one axis's dim = head_dim / 2."""
    if lumina_t < watershed:
        return [theta ** (-2 * j / dim) / scale for j in range(dim // 2)]
    return [(theta * scale) ** (-2 * j / dim) for j in range(dim // 2)]


def test_tasr_closed_form_at_first_and_last_step():
    d, train_len, test_len = 32, 16, 48
    s, base = 3.0, base_frequencies(32, THETA)
    first, tau = freqs("tasr", d, train_len, test_len, t=1.0)  # noise: PI
    torch.testing.assert_close(first, base / s)
    assert tau == 1.0
    last, tau = freqs("tasr", d, train_len, test_len, t=0.0)  # data: the base becomes theta * s
    ratio = s ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # w_i' / w_i = s^(-2i/d)
    torch.testing.assert_close(last, base * ratio)
    assert last[0] == base[0]  # the fastest pair keeps its frequency
    torch.testing.assert_close(last[-1], base[-1] * s ** (-(d - 2) / d))  # not quite PI
    assert last[-1] > base[-1] / s
    assert tau == 1.0
    static, _ = freqs("tasr_static", d, train_len, test_len)  # needs no t
    torch.testing.assert_close(static, last)


def test_tasr_switches_at_the_watershed():
    # Lumina's time 1 - t below the watershed interpolates; the boundary itself does not.
    kw = dict(theta=THETA, train_len=16, scale=4.0)
    pi, ntk = base_frequencies(32, THETA) / 4, base_frequencies(32, THETA * 4)
    for watershed, before, at in ((0.25, 0.75 + 1e-12, 0.75), (0.5, 0.5 + 1e-12, 0.5)):
        f, _ = scaled_axis_frequencies("tasr", 32, t=before, watershed=watershed, **kw)
        torch.testing.assert_close(f, pi)
        f, _ = scaled_axis_frequencies("tasr", 32, t=at, watershed=watershed, **kw)
        torch.testing.assert_close(f, ntk)
    assert TASR_WATERSHED == 0.3  # Lumina-Next's sample.py default
    assert tasr_interpolates(0.71) and not tasr_interpolates(0.69)
    # watershed 0: the time-aware rule is its static form at every step
    for t in (1.0, 0.5, 0.0):
        f, _ = scaled_axis_frequencies("tasr", 32, t=t, watershed=0.0, **kw)
        torch.testing.assert_close(f, ntk)


@pytest.mark.parametrize("dim,scale", [(32, 2.0), (64, 3.5)])
def test_tasr_matches_lumina_next_along_its_sampling_schedule(dim, scale):
    # Lumina's 30 Euler steps on its time 0 -> 1 with its time shift a = 4, mapped to ours.
    a = 4.0
    for k in range(30):
        lumina_t = k / 30
        lumina_t = lumina_t / (lumina_t + a - a * lumina_t)
        ours, _ = scaled_axis_frequencies(
            "tasr", dim, theta=THETA, train_len=16, scale=scale, t=1.0 - lumina_t
        )
        expected = lumina_reference(dim, THETA, scale, lumina_t, TASR_WATERSHED)
        torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float64))


def test_tasr_limits_in_t():
    near_noise, _ = freqs("tasr", t=1.0 - 1e-9)
    near_data, _ = freqs("tasr", t=1e-9)
    torch.testing.assert_close(near_noise, freqs("interpolate")[0])  # t -> 1: PI
    torch.testing.assert_close(near_data, freqs("tasr_static")[0])  # t -> 0: theta * s, not base
    assert (near_data < base_frequencies(32, THETA))[1:].all()


def test_band_ramp_is_monotone_from_zero_to_one():
    r = band_ramp(32, 1, 128, THETA, 1024, high_max=127)
    assert r[0] == 0 and r[-1] == 1
    assert (r[1:] >= r[:-1]).all()


def test_errors_name_valid_choices():
    with pytest.raises(ValueError, match="valid: extrapolate, interpolate, ntk"):
        freqs("linear")
    with pytest.raises(ValueError, match="dype_ntk needs the sampling time t"):
        freqs("dype_ntk", t=None)
    with pytest.raises(ValueError, match=r"t in \[0, 1\]"):
        freqs("dype_pi", t=1.5)
    with pytest.raises(ValueError, match="tasr needs the sampling time t"):
        freqs("tasr", t=None)
    with pytest.raises(ValueError, match=r"watershed is a time in \[0, 1\]"):
        scaled_axis_frequencies("tasr", 32, train_len=16, scale=2.0, t=0.5, watershed=1.5)
    with pytest.raises(ValueError, match="test_len must be >= 1"):
        freqs("ntk", test_len=0)
    with pytest.raises(ValueError, match="even and >= 4"):
        freqs("ntk", dim=6 + 1)
