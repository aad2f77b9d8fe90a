"""Splitting the shard stream over ranks and workers: disjoint, covering, balanced."""

from __future__ import annotations

import itertools

import pytest

from lit_rpe.training.data.stream_plan import (
    batches_before,
    locate_range,
    rank_batch_sizes,
    shard_order,
    slot_ranges,
    worker_batch_sizes,
)


@pytest.mark.parametrize("span", [1, 7, 96, 1001])
@pytest.mark.parametrize("quotas", [[4], [8, 8, 8, 8], [12, 8, 12, 8, 12, 8], [5, 0, 3]])
def test_slot_ranges_tile_the_span_in_proportion(span, quotas):
    ranges = slot_ranges(span, quotas)
    assert ranges[0][0] == 0 and ranges[-1][1] == span
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    for (start, stop), quota in zip(ranges, quotas, strict=True):
        assert abs((stop - start) - span * quota / sum(quotas)) < 1
    assert slot_ranges(10, [0, 0]) == [(0, 0), (0, 0)]


def test_rank_batches_and_worker_round_robin():
    assert rank_batch_sizes(70, 16, drop_last=True) == [16] * 4
    assert rank_batch_sizes(70, 16, drop_last=False) == [16] * 4 + [6]
    sizes = [16] * 4 + [6]
    assert worker_batch_sizes(sizes, 2, 0) == [16, 16, 6]
    assert worker_batch_sizes(sizes, 2, 1) == [16, 16]
    # batch j of a rank comes from worker j % n: count per worker among the first k batches
    for n, k in itertools.product([1, 2, 3, 5], range(12)):
        expected = [sum(1 for j in range(k) if j % n == w) for w in range(n)]
        assert [batches_before(k, n, w) for w in range(n)] == expected


def test_locate_range_across_shard_boundaries():
    counts = [5, 3, 4]
    assert locate_range(counts, 0, 12) == [(0, 0, 5), (1, 0, 3), (2, 0, 4)]
    assert locate_range(counts, 4, 9) == [(0, 4, 5), (1, 0, 3), (2, 0, 1)]
    assert locate_range(counts, 6, 7) == [(1, 1, 2)]
    assert locate_range(counts, 3, 3) == []


def test_shard_order_depends_on_seed_epoch_and_pass_only():
    base = shard_order(50, seed=1, epoch=0, pass_index=0, shuffle=True)
    assert sorted(base) == list(range(50))
    assert base == shard_order(50, seed=1, epoch=0, pass_index=0, shuffle=True)
    assert base != shard_order(50, seed=1, epoch=1, pass_index=0, shuffle=True)
    assert base != shard_order(50, seed=1, epoch=0, pass_index=1, shuffle=True)
    assert base != shard_order(50, seed=2, epoch=0, pass_index=0, shuffle=True)
    assert shard_order(5, seed=1, epoch=3, pass_index=2, shuffle=False) == [0, 1, 2, 3, 4]
