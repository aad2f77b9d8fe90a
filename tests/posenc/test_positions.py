"""Training and inference positions (docs/DESIGN.md 3b, 3c)."""

import pytest
import torch

from lit_rpe.posenc import (
    grid_positions,
    rpe2d_even_positions,
    rpe2d_positions,
    rpe2d_seeded_positions,
    training_positions,
)

# Upper 0.1% point of the chi-square distribution with 15 degrees of freedom.
CHI2_15_P001 = 37.697


def test_grid_positions():
    p = grid_positions(3, 5)
    assert p.shape == (3, 5) and p.dtype == torch.float32
    assert (p == torch.arange(5.0)).all()


def test_rpe2d_sorted_distinct_in_range():
    gen = torch.Generator().manual_seed(0)
    p = rpe2d_positions(500, 16, 64, generator=gen)
    assert p.shape == (500, 16) and p.dtype == torch.float32
    assert (p == p.round()).all() and p.min() >= 0 and p.max() <= 63
    assert (p[:, 1:] > p[:, :-1]).all()  # strictly increasing: sorted and distinct


def test_rpe2d_full_range_is_the_grid():
    p = rpe2d_positions(4, 10, 10, generator=torch.Generator().manual_seed(1))
    assert (p == torch.arange(10.0)).all()


def test_rpe2d_reproducible_from_generator():
    a = rpe2d_positions(8, 5, 20, generator=torch.Generator().manual_seed(7))
    b = rpe2d_positions(8, 5, 20, generator=torch.Generator().manual_seed(7))
    c = rpe2d_positions(8, 5, 20, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rpe2d_uniform_chi_square():
    # Each of the 16 positions is in a draw of 4 with probability 4/16.
    batch, n, max_len = 20000, 4, 16
    p = rpe2d_positions(batch, n, max_len, generator=torch.Generator().manual_seed(123))
    counts = torch.bincount(p.long().flatten(), minlength=max_len).double()
    expected = batch * n / max_len
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < CHI2_15_P001


def test_rpe2d_subsets_uniform():
    # All C(6, 2) = 15 subsets equally likely (15 cells -> 14 degrees of freedom; p=0.001: 36.12).
    batch = 15000
    p = rpe2d_positions(batch, 2, 6, generator=torch.Generator().manual_seed(5)).long()
    codes = p[:, 0] * 6 + p[:, 1]
    counts = torch.bincount(codes, minlength=36).double()
    counts = counts[counts > 0]
    assert counts.numel() == 15
    chi2 = ((counts - batch / 15) ** 2 / (batch / 15)).sum().item()
    assert chi2 < 36.123


def test_rpe2d_independent_across_axes_and_samples():
    gen = torch.Generator().manual_seed(3)
    pos_h, pos_w = training_positions("rpe2d", 4000, (4, 4), max_len=(16, 16), generator=gen)
    assert not torch.equal(pos_h, pos_w)

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).sum() / (a.norm() * b.norm())

    # 4000 samples: |r| of independent variables is below 4/sqrt(4000) ~ 0.063 with p > 0.9999
    assert abs(corr(pos_h[:, 0], pos_w[:, 0])) < 0.063
    assert abs(corr(pos_h[:-1, 0], pos_h[1:, 0])) < 0.063


def test_rpe2d_too_many_positions_raises():
    with pytest.raises(ValueError, match="n <= max_len"):
        rpe2d_positions(1, 17, 16)


def test_rpe2d_even_closed_form():
    p = rpe2d_even_positions(2, 4, 16)
    assert p.shape == (2, 4)
    assert p[0].tolist() == [2.0, 6.0, 10.0, 14.0]
    assert rpe2d_even_positions(1, 16, 16)[0].tolist() == list(range(16))
    with pytest.raises(ValueError, match="rpe2d_even .* needs n <= max_len, got n=80"):
        rpe2d_even_positions(1, 80, 64)


def test_rpe2d_seeded_independent_of_batch():
    h, w = rpe2d_seeded_positions([10, 11, 12], 4, 6, (32, 32))
    h1, w1 = rpe2d_seeded_positions([11], 4, 6, (32, 32))
    assert torch.equal(h[1:2], h1) and torch.equal(w[1:2], w1)
    assert not torch.equal(h[0], h[1])


def test_training_positions_errors():
    with pytest.raises(ValueError, match="valid: grid, rpe2d"):
        training_positions("random", 1, (4, 4))
    with pytest.raises(ValueError, match="need max_len"):
        training_positions("rpe2d", 1, (4, 4))
    with pytest.raises(ValueError, match="at least 1 token"):
        grid_positions(1, 0)
