"""``StreamLoader``: a DataLoader over a ``ShardStream`` that learns its epoch when iterated.

Lightning iterates the train loader once per epoch (whether or not it rebuilds it with
``reload_dataloaders_every_n_epochs``). Asking for (epoch, batches to skip) at that moment, rather
than when the loader is built, keeps the shuffle changing every epoch either way; workers are not
persistent, so each epoch's workers receive the stream with the new position.

Workers start from a fork server rather than by forking the training process. Forking a process
whose other threads are alive (the queue feeder threads of the previous iterator, exiting while the
next iterator starts its workers; gloo's threads under DDP) can leave the child waiting forever on
an interpreter lock a vanished thread held, and the rank then hangs at an epoch boundary. The fork
server is single-threaded and has imported what a worker runs (``WORKER_MODULES``: torch, the
stream, the transforms) once, so starting a worker stays cheap.

Resuming. The train loader has Lightning's stateful-loader interface (``state_dict`` /
``load_state_dict``): Lightning saves its state in the checkpoint and, on a mid-epoch resume,
restores it before iterating, so it knows the loader continues the interrupted epoch exactly.
The state is the data module's (epoch and batches consumed); restoring it twice, from the data
module's own entry of the checkpoint and from the loader's, is the same.

Skipped samples. Every batch counts the samples its worker skipped (``corrupt``); the train
loader adds them up per epoch and stops with ``TooManySkippedSamples`` once they exceed the
epoch's budget (``ShardReadConfig.max_skipped_fraction``), instead of training on a fraction of
the data.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from torch.utils.data import DataLoader

from lit_rpe.training.data.read_config import TooManySkippedSamples
from lit_rpe.training.data.stream import ShardStream
from lit_rpe.training.data.worker_lifetime import (
    ignore_stop_signals_and_die_with_parent,
    start_resource_tracker,
)

# What a worker unpickles and runs: the stream (torch, numpy, the tar reader, the decoders) and
# the crop transforms of its SampleDecoder. lit_rpe.training.data itself imports nothing (lazy
# exports).
# forkserver_init first: the server ignores stop signals and dies with its parent
# (worker_lifetime) before it spends time importing the rest.
WORKER_MODULES = [
    "lit_rpe.training.data.forkserver_init",
    "lit_rpe.training.data.stream",
    "lit_rpe.training.data.transforms",
    "lit_rpe.training.data.latent_transforms",
]


def worker_context() -> BaseContext:
    """The multiprocessing context of the loader workers: a fork server that preloads
    ``WORKER_MODULES`` (spawn where the platform has no fork server)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)  # no effect once the server runs
    return context


class StreamState(Protocol):
    """Where a train stream stands (the data module): saved and restored with a checkpoint."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


class StreamLoader(DataLoader):
    """DataLoader of ready batches (``batch_size=None``) from a ``ShardStream``.

    ``position(num_batches)`` returns ``(epoch, skip_batches)`` and is called at every ``iter()``;
    ``on_batch()`` is called for every batch handed out (the data module counts consumed
    batches with it when no trainer tracks them). ``state``: the train stream's position, which
    ``state_dict`` / ``load_state_dict`` read and restore (None: a stream that always starts
    at its beginning, such as validation; its state is empty). ``skip_budget``: samples an
    epoch may skip before ``TooManySkippedSamples`` (``None``: no limit)."""

    def __init__(
        self,
        dataset: ShardStream,
        position: Callable[[int], tuple[int, int]] | None = None,
        on_batch: Callable[[], None] | None = None,
        state: StreamState | None = None,
        skip_budget: int | None = None,
        **kwargs: Any,
    ):
        if kwargs.get("num_workers", 0) > 0:
            kwargs.setdefault("multiprocessing_context", worker_context())
            kwargs.setdefault("worker_init_fn", ignore_stop_signals_and_die_with_parent)
            start_resource_tracker()
        super().__init__(dataset, batch_size=None, **kwargs)
        self.position = position
        self.on_batch = on_batch
        self.state = state
        self.skip_budget = skip_budget

    def state_dict(self) -> dict[str, Any]:
        """The stream position (epoch, batches consumed and what the stream depends on)."""
        return self.state.state_dict() if self.state is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a saved position at the next ``iter()``."""
        if self.state is not None and state_dict:
            self.state.load_state_dict(state_dict)

    def __iter__(self) -> Iterator[Any]:
        if self.position is not None:
            self.dataset.set_position(*self.position(len(self.dataset)))
        iterator = super().__iter__()
        if self.on_batch is None and self.skip_budget is None:
            return iterator
        return self._counted(iterator)

    def _counted(self, iterator: Iterator[Any]) -> Iterator[Any]:
        skipped = 0
        for batch in iterator:
            skipped += int(batch["corrupt"].sum())
            if self.skip_budget is not None and skipped > self.skip_budget:
                stream = self.dataset
                raise TooManySkippedSamples(
                    f"{skipped} samples skipped in epoch {stream.epoch} on rank {stream.rank}, "
                    f"more than read.max_skipped_fraction allows ({self.skip_budget} of "
                    f"{sum(stream.batch_sizes)}); the warnings above name the shards and samples"
                )
            if self.on_batch is not None:
                self.on_batch()
            yield batch
