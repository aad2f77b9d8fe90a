"""Seed-indexed generation split across ranks: the images do not depend on the number of GPUs.

Image i follows ``lit_rpe.sampling.sampler.seeds_and_labels``: noise seed ``seed + i``, label
``i % num_classes`` (unless labels are given). Images are generated in fixed chunks
``[k B, (k + 1) B)`` and ranks take whole chunks (k mod world_size), so every image is computed
in exactly the same batch whatever the number of processes: batched kernels may round a row
differently when its batch changes, chunks remove that.
Images leave as this rank's ``ImageChunk``s (indices and uint8 pixels): sampled in memory
(``generate_chunks``, the training callback), or written as ``<out>/<index:06d>.png``
(``generate_to_folder``, the eval grid; the folder is the gather) and read back
(``read_chunks``). PNG is lossless, so both paths score the same pixels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lit_rpe.distributed import rank_and_world
from lit_rpe.image_io import quantize_uint8
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.sampler import Sampler, seeds_and_labels


def chunks_of_rank(num_images: int, batch_size: int, rank: int, world_size: int) -> list[range]:
    """The index ranges (fixed chunks of ``batch_size``) that ``rank`` generates."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    starts = range(0, num_images, batch_size)
    return [
        range(s, min(s + batch_size, num_images))
        for k, s in enumerate(starts)
        if k % world_size == rank
    ]


# A chunk of a seed-indexed image set: its global indices and uint8 (B, 3, H, W) pixels.
ImageChunk = tuple[range, torch.Tensor]


@torch.no_grad()
def sample_chunk(
    module: Sampler,
    chunk: range,
    *,
    resolution: int | tuple[int, int],
    rule: InferenceRule | None = None,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    autocast_dtype: torch.dtype | None = None,
    **sample_kwargs,
) -> torch.Tensor:
    """Images ``chunk`` of the seed-indexed set as uint8 (B, 3, H, W) on the module's device.

    labels: all the set's labels (default ``i % num_classes``). autocast_dtype: sample under
    autocast (bf16) or None for the module's dtype. sample_kwargs go to ``module.sample``.
    """
    chunk_labels, seeds = seeds_and_labels(chunk, seed=seed, num_classes=module.net.num_classes)
    if labels is not None:
        chunk_labels = [labels[i] for i in chunk]
    # No autocast context without a dtype: a disabled one would switch off an enclosing one.
    precision = (
        torch.autocast(module.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with precision:
        images = module.sample(
            chunk_labels, seeds, resolution=resolution, rule=rule, **sample_kwargs
        )
    return quantize_uint8(images)


def generate_chunks(
    module: Sampler,
    *,
    num_images: int,
    batch_size: int,
    rank: int | None = None,
    world_size: int | None = None,
    **sample_kwargs,
) -> Iterator[ImageChunk]:
    """This rank's chunks of images ``0 .. num_images - 1``, sampled in memory one at a time;
    sample_kwargs go to ``sample_chunk`` (resolution, rule, seed, labels, autocast_dtype, ...)."""
    default_rank, default_world = rank_and_world()
    rank = default_rank if rank is None else rank
    world_size = default_world if world_size is None else world_size
    for chunk in chunks_of_rank(num_images, batch_size, rank, world_size):
        yield chunk, sample_chunk(module, chunk, **sample_kwargs)


def read_chunks(folder: str | Path, *, num_images: int, batch_size: int) -> Iterator[ImageChunk]:
    """This rank's chunks of ``folder``'s PNGs (as ``generate_to_folder`` wrote them)."""
    rank, world = rank_and_world()
    for chunk in chunks_of_rank(num_images, batch_size, rank, world):
        pixels = torch.from_numpy(read_images(folder, chunk))
        yield chunk, pixels.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def generate_to_folder(
    module: Sampler,
    out_dir: str | Path,
    *,
    num_images: int,
    resolution: int | tuple[int, int],
    rule: InferenceRule | None = None,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    batch_size: int = 32,
    rank: int | None = None,
    world_size: int | None = None,
    skip_existing: bool = True,
    **kwargs,
) -> list[Path]:
    """Generate this rank's share of images ``0 .. num_images - 1`` as PNGs; returns the paths.

    module: a ``Sampler`` (its ``sample`` method is used, EMA weights by default).
    rank / world_size: default from torch.distributed. skip_existing: a rerun (or a requeued
    job) only generates the images whose file is missing. kwargs go to ``sample_chunk``
    (autocast_dtype) and ``module.sample`` (steps, method, cfg_scale, guidance_interval, use_ema).
    """
    if labels is not None and len(labels) != num_images:
        raise ValueError(f"got {len(labels)} labels for {num_images} images")
    default_rank, default_world = rank_and_world()
    rank = default_rank if rank is None else rank
    world_size = default_world if world_size is None else world_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for chunk in chunks_of_rank(num_images, batch_size, rank, world_size):
        paths = [out / f"{i:06d}.png" for i in chunk]
        if skip_existing and all(p.is_file() for p in paths):
            written += paths
            continue
        images = sample_chunk(
            module,
            chunk,
            resolution=resolution,
            rule=rule,
            seed=seed,
            labels=labels,
            **kwargs,
        )
        for path, pixels in zip(paths, images.permute(0, 2, 3, 1).cpu().numpy(), strict=True):
            Image.fromarray(pixels).save(path)
        written += paths
    return written


def read_images(folder: str | Path, indices) -> np.ndarray:
    """The PNGs ``<i:06d>.png`` of ``indices`` in ``folder`` as uint8 (N, H, W, 3)."""
    folder = Path(folder)
    return np.stack(
        [np.asarray(Image.open(folder / f"{i:06d}.png").convert("RGB")) for i in indices]
    )
