"""Validation images: the ADM centre crop (no flip), in shard order, split over ranks.

The data module's validation loader and the evaluation (reference images and statistics, the
validation loss of the eval grid) read validation shards the same way: the first N samples of
the concatenated shards, each rank taking a contiguous share of ``N // world_size`` in batches
of at most ``batch_size``. ``validation_stream`` builds that stream from counted shards;
``validation_batches`` is the entry point for code outside a training run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lit_rpe.distributed import rank_and_world
from lit_rpe.training.data.loader import StreamLoader
from lit_rpe.training.data.samples import SampleDecoder
from lit_rpe.training.data.shard_list import expand_shards, read_classes, shard_sample_counts
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.stream import ShardStream
from lit_rpe.training.data.stream_plan import rank_batch_sizes
from lit_rpe.training.data.transforms import CenterCropWithBox


def validation_stream(
    shards: list[str],
    counts: list[int],
    decoder: SampleDecoder,
    *,
    num_samples: int,
    batch_size: int,
    rank: int,
    world_size: int,
    num_workers: int,
    seed: int,
    source: ShardSource | None = None,
) -> ShardStream:
    """The unshuffled stream of this rank's share of the first ``num_samples`` samples."""
    per_rank = num_samples // world_size
    if per_rank == 0:
        raise ValueError(
            f"{num_samples} validation samples cannot be split over {world_size} ranks"
        )
    return ShardStream(
        shards,
        counts,
        decoder,
        rank_batch_sizes(per_rank, batch_size, drop_last=False),
        span=per_rank * world_size,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        seed=seed,
        shuffle=False,
        source=source,
    )


def validation_batches(
    shards: str | Sequence[str],
    resolution: int | tuple[int, int],
    num_images: int,
    *,
    batch_size: int = 64,
    num_classes: int | None = None,
    num_workers: int = 0,
) -> StreamLoader:
    """Batches of the first ``num_images`` validation images, centre-cropped to ``resolution``.

    Each batch is the data pipeline's dict: ``image`` (B, 3, H, W) float32 in [-1, 1], ``label``
    (B,) int64, ``key`` (B sample keys), ``box``, ``corrupt``. Under torch.distributed each rank
    iterates its own share. num_classes: labels are checked against it (default: the size of the
    shards' ``classes.json``). Raises ``ValueError`` when the shards hold fewer images.
    """
    paths = expand_shards(shards)
    counts = shard_sample_counts(paths)
    if sum(counts) < num_images:
        raise ValueError(f"{shards} holds {sum(counts)} images, fewer than the {num_images} asked")
    classes = num_classes if num_classes is not None else len(read_classes(paths))
    decoder = SampleDecoder(CenterCropWithBox(resolution, hflip=False), classes)
    rank, world = rank_and_world()
    stream = validation_stream(
        paths,
        counts,
        decoder,
        num_samples=num_images,
        batch_size=batch_size,
        rank=rank,
        world_size=world,
        num_workers=num_workers,
        seed=0,
    )
    return StreamLoader(stream, num_workers=num_workers, pin_memory=torch.cuda.is_available())
