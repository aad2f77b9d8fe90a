"""The arithmetic of the GPU check's timings: the fit window, combined rates, sampler cost."""

import pytest
import torch

from bench.gpu.check_callback import window_rate
from bench.gpu.check_eval_cell import heun_evaluations
from bench.gpu.check_lightning import combined_rate
from lit_rpe.objectives.flow import sample_ode

STAMPS = [(1, 0.0), (2, 5.0), (3, 6.0), (4, 7.0), (5, 8.0)]  # step 1: warm-up (compilation)


def test_window_rate_leaves_out_the_warm_up_steps():
    # after 1 warm-up step: steps 3..5 in 3 s, batch 8 -> 24 images / 3 s
    assert window_rate(STAMPS, warmup=1, batch_size=8) == (pytest.approx(8.0), 3)
    assert window_rate(STAMPS, warmup=0, batch_size=8) == (pytest.approx(32 / 8.0), 4)


def test_window_rate_subtracts_only_the_validation_inside_the_window():
    inside, before, after = (6.2, 6.7), (1.0, 2.0), (8.5, 30.0)
    rate, _ = window_rate(STAMPS, warmup=1, batch_size=8, pauses=[inside, before, after])
    assert rate == pytest.approx(24 / 2.5)
    straddling = (7.5, 9.0)  # half of it inside the window
    assert window_rate(STAMPS, 1, 8, [straddling])[0] == pytest.approx(24 / 2.5)


def test_window_rate_needs_two_stamps_after_the_warm_up():
    assert window_rate(STAMPS[:2], warmup=1, batch_size=8) == (None, 0)


def test_combined_rate_is_total_images_over_total_time():
    fits = [
        {"measured_steps": 40, "batch_size": 32, "images_per_s": 320.0},  # 4 s
        {"measured_steps": 40, "batch_size": 32, "images_per_s": 160.0},  # 8 s
        {"measured_steps": 0, "batch_size": 32, "images_per_s": None},
    ]
    assert combined_rate(fits) == pytest.approx(2560 / 12)
    assert combined_rate(fits[2:]) is None


@pytest.mark.parametrize("steps", [1, 2, 50])
def test_heun_cost_counts_the_sampler_evaluations(steps):
    calls = []

    def velocity(x, t):
        calls.append(t)
        return torch.zeros_like(x)

    sample_ode(velocity, torch.zeros(1, 2), steps=steps, method="heun")
    assert heun_evaluations(steps) == len(calls)
