"""Who reads what: the pure arithmetic behind splitting a shard stream over ranks and workers.

The samples of all shards, in a per-pass shard order, form one long stream. Every (rank, worker)
pair (a *slot*, ``rank * num_workers + worker``) reads one contiguous range of it, sized in
proportion to how many samples the slot must deliver. Ranges never overlap, so slots read
disjoint samples, and a range can start or end inside a shard, so this works with fewer shards
than slots. A slot that needs more samples than its range holds goes on with its range of the
next pass (a new shard order), so every rank delivers exactly its number of batches.

The DataLoader asks its workers for batches in turn (batch ``j`` of an epoch comes from worker
``j % num_workers``); the batch lists below follow that order, which is what makes "skip the
first k batches of this rank" a per-worker count.
"""

from __future__ import annotations

import numpy as np


def rank_batch_sizes(samples_per_rank: int, batch_size: int, drop_last: bool) -> list[int]:
    """Sizes of the batches one rank yields per epoch: full batches, plus a smaller last one
    unless ``drop_last`` (the training stream drops it, validation keeps it)."""
    full, rest = divmod(samples_per_rank, batch_size)
    return [batch_size] * full + ([rest] if rest and not drop_last else [])


def worker_batch_sizes(batch_sizes: list[int], num_workers: int, worker: int) -> list[int]:
    """The batches of a rank that worker ``worker`` produces (every ``num_workers``-th)."""
    return batch_sizes[worker::num_workers]


def batches_before(consumed: int, num_workers: int, worker: int) -> int:
    """How many of the first ``consumed`` batches of a rank came from worker ``worker``."""
    return max(0, (consumed - worker + num_workers - 1) // num_workers)


def slot_ranges(span: int, quotas: list[int]) -> list[tuple[int, int]]:
    """Split ``[0, span)`` into contiguous ranges proportional to ``quotas`` (one per slot).

    Integer arithmetic, so every process computes identical boundaries."""
    total = sum(quotas)
    if total == 0:
        return [(0, 0)] * len(quotas)
    ranges, cumulative = [], 0
    for quota in quotas:
        start = span * cumulative // total
        cumulative += quota
        ranges.append((start, span * cumulative // total))
    return ranges


def shard_order(
    num_shards: int, seed: int, epoch: int, pass_index: int, shuffle: bool
) -> list[int]:
    """Shard order of one pass: a permutation drawn from (seed, epoch, pass), or the identity."""
    if not shuffle:
        return list(range(num_shards))
    rng = np.random.default_rng([seed, epoch, pass_index, 0x5EED])
    return [int(i) for i in rng.permutation(num_shards)]


def locate_range(counts: list[int], start: int, stop: int) -> list[tuple[int, int, int]]:
    """``[start, stop)`` of the concatenation of shards with ``counts`` (in stream order) as
    ``(position in that order, first sample, end sample)`` pieces, one per shard touched."""
    pieces, offset = [], 0
    for position, count in enumerate(counts):
        lo, hi = max(start, offset), min(stop, offset + count)
        if lo < hi:
            pieces.append((position, lo - offset, hi - offset))
        offset += count
        if offset >= stop:
            break
    return pieces
