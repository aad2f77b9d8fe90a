"""The study's statistics: 95 % intervals across training seeds (Student t) and over generated
images (percentile bootstrap), for one cell and for the difference of two cells.

Across seeds is the interval that matters for "is strategy A better than B": it includes the
variation between training runs. With 3 seeds it is wide (t = 4.30 for 2 degrees of freedom),
which is the honest price of a 2-hour study. The bootstrap over the pooled images only says how
precisely the images of these particular models pin a per-image measure down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval; low = high = NaN when it cannot be computed
    (one seed, a metric missing)."""

    estimate: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0 (NaN bounds: False)."""
        return bool(self.low > 0 or self.high < 0)


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of per-seed values with the Student-t interval mean +- t_{(1+c)/2, n-1} s / sqrt(n);
    NaN values (a cell a seed could not compute) are dropped."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return Interval(mean, mean - half, mean + half, len(x))


def paired_difference(a: dict[int, float], b: dict[int, float], confidence: float = 0.95):
    """Interval of the mean of a[seed] - b[seed] over the seeds both have: the two cells share
    each seed's training data order, so pairing removes the variation they have in common."""
    seeds = sorted(set(a) & set(b))
    return seed_interval([a[s] - b[s] for s in seeds], confidence)


Statistic = Callable[[np.ndarray], dict[str, float]]


def bootstrap_intervals(
    statistic: Statistic,
    num_items: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Percentile-bootstrap intervals of every value ``statistic(indices)`` returns, resampling
    ``num_items`` items with replacement; the estimate is the statistic of all items."""
    return bootstrap_difference_intervals(
        statistic, num_items, None, 0, resamples=resamples, seed=seed, confidence=confidence
    )


def bootstrap_difference_intervals(
    statistic_a: Statistic,
    num_a: int,
    statistic_b: Statistic | None,
    num_b: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Bootstrap intervals of ``statistic_a - statistic_b`` (each side resampled on its own;
    ``statistic_b`` None: of ``statistic_a`` alone), for every key both return."""
    rng = np.random.default_rng(seed)

    def value(idx_a, idx_b) -> dict[str, float]:
        out = statistic_a(idx_a)
        if statistic_b is None:
            return out
        other = statistic_b(idx_b)
        return {k: out[k] - other[k] for k in out if k in other}

    estimate = value(np.arange(num_a), np.arange(num_b))
    draws: dict[str, list[float]] = {k: [] for k in estimate}
    for _ in range(resamples):
        idx_a = rng.integers(0, num_a, num_a)
        idx_b = rng.integers(0, num_b, num_b) if statistic_b is not None else None
        for k, v in value(idx_a, idx_b).items():
            draws[k].append(v)
    tail = 100 * (1 - confidence) / 2
    out = {}
    for k, v in estimate.items():
        finite = np.asarray([d for d in draws[k] if math.isfinite(d)])
        if len(finite) < resamples // 2 or not math.isfinite(v):
            out[k] = Interval(v, math.nan, math.nan, num_a)
            continue
        low, high = np.percentile(finite, [tail, 100 - tail])
        out[k] = Interval(float(v), float(low), float(high), num_a)
    return out
