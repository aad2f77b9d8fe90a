"""The study's statistics: closed-form Student-t intervals, bootstrap behaviour, pairing."""

import math

import numpy as np
import pytest

from lit_rpe.study.intervals import (
    bootstrap_difference_intervals,
    bootstrap_intervals,
    paired_difference,
    seed_interval,
)


def test_seed_interval_is_the_student_t_interval():
    ci = seed_interval([1.0, 2.0, 3.0])
    # sd 1, n 3: half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    assert ci.estimate == 2.0 and ci.n == 3
    assert ci.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert not ci.excludes_zero


def test_seed_interval_of_one_seed_or_none_has_no_bounds_and_drops_nan():
    one = seed_interval([0.5])
    assert one.estimate == 0.5 and math.isnan(one.low) and not one.excludes_zero
    assert seed_interval([float("nan"), 2.0, 4.0]).estimate == 3.0
    assert seed_interval([]).n == 0


def test_pairing_removes_what_the_seeds_share():
    # per-seed levels differ a lot, the difference is consistently +0.1
    a = {1: 0.3, 2: 0.8, 3: 0.5}
    b = {1: 0.2, 2: 0.7, 3: 0.4}
    paired = paired_difference(a, b)
    assert paired.estimate == pytest.approx(0.1) and paired.half_width < 1e-9 + 1e-6
    assert paired.excludes_zero
    # unpaired, the same numbers are far from significant
    unpaired_half = seed_interval(list(a.values())).half_width
    assert unpaired_half > 0.5
    # only the seeds both have count
    assert paired_difference({1: 1.0, 2: 2.0}, {2: 1.5, 3: 9.0}).n == 1


def test_bootstrap_of_a_fraction_matches_the_binomial_interval():
    rng = np.random.default_rng(0)
    hits = rng.random(400) < 0.3
    ci = bootstrap_intervals(lambda idx: {"p": hits[idx].mean()}, len(hits), resamples=2000)["p"]
    p = hits.mean()
    wald = 1.96 * math.sqrt(p * (1 - p) / len(hits))
    assert ci.estimate == p
    assert ci.half_width == pytest.approx(wald, rel=0.15)
    constant = bootstrap_intervals(lambda idx: {"c": 1.0}, 10, resamples=50)["c"]
    assert constant.low == constant.high == 1.0


def test_bootstrap_difference_sees_a_real_gap_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300), rng.normal(0, 1, 300)

    def mean_of(x):
        return lambda idx: {"m": float(x[idx].mean())}

    gap = bootstrap_difference_intervals(mean_of(b), 300, mean_of(a), 300, resamples=500)["m"]
    null = bootstrap_difference_intervals(mean_of(c), 300, mean_of(a), 300, resamples=500)["m"]
    assert gap.excludes_zero and gap.low > 0.2
    assert not null.excludes_zero
