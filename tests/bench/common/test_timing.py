"""The one timing helper of the benchmarks: round-robin medians and synchronised timing."""

import itertools

import pytest

from bench.common.timing import interleaved_medians, spread, timed


def test_interleaved_medians_rotate_the_order_and_time_each_sample():
    ticks = itertools.count()
    calls = []
    variants = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times = interleaved_medians(variants, warmup=1, repeats=3, clock=lambda: next(ticks))
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert times == {k: [1.0, 1.0, 1.0] for k in "abc"}  # one clock tick per timed call


def test_inner_calls_divide_the_sample():
    ticks = itertools.count(step=2)
    times = interleaved_medians({"x": lambda: None}, warmup=0, repeats=2, inner=4,
                                clock=lambda: next(ticks))  # fmt: skip
    assert times["x"] == [0.5, 0.5]


def test_spread_is_half_the_interquartile_range_in_percent():
    assert spread([1.0, 2.0, 3.0]) != spread([1.0, 2.0, 3.0])  # nan under 4 samples
    assert spread([10.0, 10.0, 10.0, 10.0]) == pytest.approx(0.0)


def test_timed_runs_warmup_then_iterations():
    calls = []
    seconds = timed(lambda: calls.append(1), "cpu", warmup=2, iters=3)
    assert len(calls) == 5 and seconds >= 0
