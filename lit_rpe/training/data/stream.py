"""``ShardStream``: an IterableDataset of ready batches read from WebDataset shards.

Each DataLoader worker of each rank reads its own contiguous range of the shard stream
(``stream_plan``), shuffles it through a buffer, decodes and crops, and yields whole batches
(use it with ``DataLoader(batch_size=None)``). What a worker yields is a deterministic function of
(seed, epoch, rank, worker): the shard order of every pass comes from (seed, epoch, pass), the
shuffle buffer and every sample's crop from generators seeded with (seed, epoch, rank, worker,
position). ``set_position(epoch, skip_batches)`` selects the epoch and makes the stream start
after the first ``skip_batches`` batches of this rank, exactly as an uninterrupted run would
have continued (used on resume).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from lit_rpe.training.data.decode import CorruptSample
from lit_rpe.training.data.samples import DecodedSample, SampleDecoder, collate
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.stream_plan import (
    batches_before,
    locate_range,
    shard_order,
    slot_ranges,
    worker_batch_sizes,
)
from lit_rpe.training.data.tar_io import RawSample, ShardReadError

log = logging.getLogger(__name__)


class _Unreadable:
    """Stands in the raw stream for the rest of a shard that could not be read: ``missed``
    samples of the slot's range were lost with it."""

    def __init__(self, error: ShardReadError, missed: int):
        self.error, self.missed = error, missed


def shuffle_buffer(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Yield ``items`` through a buffer of ``size``: each output is a uniform pick among the
    buffered items, replaced by the next input (``size <= 1``: unchanged order)."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(size))
        yield buffer[i]
        buffer[i] = item
    order = rng.permutation(len(buffer))
    yield from (buffer[i] for i in order)


class ShardStream(IterableDataset):
    """Batches for one rank: ``len()`` is the number of batches per epoch (equal on all ranks).

    Args:
        shards, counts: shard paths and their sample counts (``shard_list``).
        decoder: turns raw samples into crops (``SampleDecoder``).
        batch_sizes: sizes of this rank's batches, in order (``rank_batch_sizes``).
        span: how much of the concatenated stream the slots share per pass (all samples for
            training, the first ``world_size * samples_per_rank`` for validation).
        rank, world_size: this process and the number of processes.
        num_workers: DataLoader workers per rank (0 counts as 1).
        seed: base seed of every random choice.
        shuffle: new shard order every pass and a shuffle buffer (training); otherwise the
            range is read in order, repeated from its start if corrupt samples left it short.
        shuffle_buffer: samples held in the buffer (raw bytes, not decoded images).
        source: how shards are opened and read (URLs, pipes, retries, cache).
    """

    def __init__(
        self,
        shards: list[str],
        counts: list[int],
        decoder: SampleDecoder,
        batch_sizes: list[int],
        span: int,
        rank: int,
        world_size: int,
        num_workers: int,
        seed: int,
        shuffle: bool,
        shuffle_buffer: int = 0,
        source: ShardSource | None = None,
    ):
        super().__init__()
        self.source = source or ShardSource()
        self.shards, self.counts = list(shards), list(counts)
        self.decoder = decoder
        self.batch_sizes = list(batch_sizes)
        self.rank, self.world_size = rank, world_size
        self.num_workers = max(1, num_workers)
        self.seed, self.shuffle, self.buffer_size = seed, shuffle, shuffle_buffer
        self.epoch, self.skip_batches = 0, 0
        quotas = [
            sum(worker_batch_sizes(self.batch_sizes, self.num_workers, w))
            for w in range(self.num_workers)
        ] * world_size
        self.ranges = slot_ranges(span, quotas)
        for slot, ((start, stop), quota) in enumerate(zip(self.ranges, quotas, strict=True)):
            if quota and start == stop:
                raise ValueError(
                    f"{span} samples cannot feed {len(quotas)} readers (world size {world_size} x "
                    f"{self.num_workers} workers): slot {slot} gets none; use fewer workers"
                )

    def __len__(self) -> int:
        return len(self.batch_sizes)

    def set_position(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch and skip the first ``skip_batches`` batches of it (for resuming)."""
        if not 0 <= skip_batches <= len(self.batch_sizes):
            raise ValueError(f"skip_batches={skip_batches} outside [0, {len(self.batch_sizes)}]")
        self.epoch, self.skip_batches = int(epoch), int(skip_batches)

    def _read(self, pieces: list[tuple[str, int, int]]) -> Iterator[RawSample | _Unreadable]:
        """Samples ``[first, end)`` of each ``(shard, first, end)`` piece, in order."""
        for shard, first, end in pieces:
            delivered = 0
            try:
                for sample in self.source.samples(shard, first, end):
                    delivered += 1
                    yield sample
            except ShardReadError as err:
                yield _Unreadable(err, missed=end - first - delivered)

    def _raw(self, slot: int, worker: int) -> Iterator[RawSample | _Unreadable]:
        """The slot's samples, pass after pass (each pass: its range of a new shard order).

        With ``shuffle`` each pass goes through the shuffle buffer, which is drained at the end
        of the pass: a slot delivers its whole range before it touches the next pass, so within
        an epoch of at most one pass no two slots deliver the same sample."""
        start, stop = self.ranges[slot]
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 0xB0FF])
        for pass_index in itertools.count():
            order = shard_order(len(self.shards), self.seed, self.epoch, pass_index, self.shuffle)
            pieces = locate_range([self.counts[i] for i in order], start, stop)
            samples = self._read([(self.shards[order[p]], a, b) for p, a, b in pieces])
            if self.shuffle:
                samples = shuffle_buffer(samples, self.buffer_size, rng)
            yield from samples

    def _decoded(self, raw: Iterator[Any], slot: int, worker: int) -> Iterator[DecodedSample]:
        """Decode samples in stream order, skipping (logging, counting) corrupt ones."""
        start, stop = self.ranges[slot]
        give_up = 2 * (stop - start) + 16  # a whole pass without one good sample
        corrupt, failures = 0, 0  # samples skipped / reads without a good sample, in a row
        for position, item in enumerate(raw):
            failures += 1
            if isinstance(item, _Unreadable):
                log.warning(
                    "skipped the rest of an unreadable shard (%d sample(s)): %s",
                    item.missed,
                    item.error,
                )
                corrupt += item.missed
            else:
                rng = None
                if self.shuffle:
                    rng = np.random.default_rng(
                        [self.seed, self.epoch, self.rank, worker, position]
                    )
                try:
                    decoded, label = self.decoder.decode(item, rng)
                except CorruptSample as err:
                    log.warning(
                        "skipped corrupt sample %r in shard %s: %s", item.key, item.shard, err
                    )
                    corrupt += 1
                else:
                    yield DecodedSample(decoded, label, item.key, corrupt)
                    corrupt = failures = 0
                    continue
            if failures >= give_up:
                raise RuntimeError(
                    f"no decodable sample in {failures} consecutive reads of samples "
                    f"[{start}, {stop}) of {len(self.shards)} shard(s) starting {self.shards[0]}"
                )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        loader_workers, loader_id = (info.num_workers, info.id) if info is not None else (1, 0)
        if loader_workers != self.num_workers:
            raise RuntimeError(
                f"ShardStream was planned for {self.num_workers} worker(s) but the DataLoader "
                f"runs {loader_workers}; build the DataLoader with the same num_workers"
            )
        # The loader takes batch j from its worker j % n. After skipping k batches, loader
        # worker i must therefore produce what worker (i + k) % n of the full epoch would have.
        worker = (loader_id + self.skip_batches) % self.num_workers
        sizes = worker_batch_sizes(self.batch_sizes, self.num_workers, worker)
        skipped = batches_before(self.skip_batches, self.num_workers, worker)
        if skipped >= len(sizes):
            return
        slot = self.rank * self.num_workers + worker
        samples = self._decoded(self._raw(slot, worker), slot, worker)
        for _ in range(sum(sizes[:skipped])):  # replay decodes: corrupt samples shift positions
            next(samples)
        corrupt = 0
        for size in sizes[skipped:]:
            batch = [next(samples) for _ in range(size)]
            corrupt += sum(s.corrupt_before for s in batch)
            rendered = [self.decoder.render(s.decoded) for s in batch]
            yield collate(
                [r[0] for r in rendered], batch, [r[1] for r in rendered], self.decoder.latent
            )
        if corrupt:
            log.warning(
                "rank %d worker %d skipped %d corrupt or unlabeled sample(s) (unreadable shards' "
                "included) in epoch %d",
                self.rank,
                worker,
                corrupt,
                self.epoch,
            )
