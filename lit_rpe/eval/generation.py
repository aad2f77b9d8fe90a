"""Seed-indexed generation split across ranks: the images do not depend on the number of GPUs.

Image i follows ``lit_rpe.sampler.seeds_and_labels``: noise seed ``seed + i``, label
``i % num_classes`` (unless labels are given). Images are generated in fixed chunks
``[k B, (k + 1) B)`` and ranks take whole chunks (k mod world_size), so every image is computed
in exactly the same batch whatever the number of processes: batched kernels may round a row
differently when its batch changes, chunks remove that.
Each rank writes its images as ``<out>/<index:06d>.png``; the folder is the gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lit_rpe.distributed import rank_and_world
from lit_rpe.image_io import to_uint8
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampler import Sampler, seeds_and_labels


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
    **sample_kwargs,
) -> list[Path]:
    """Generate this rank's share of images ``0 .. num_images - 1`` as PNGs; returns the paths.

    module: a ``Sampler`` (its ``sample`` method is used, EMA weights by default).
    rank / world_size: default from torch.distributed. skip_existing: a rerun (or a requeued
    job) only generates the images whose file is missing. sample_kwargs go to ``module.sample``
    (steps, method, cfg_scale, guidance_interval, use_ema).
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
        chunk_labels, seeds = seeds_and_labels(chunk, seed=seed, num_classes=module.net.num_classes)
        if labels is not None:
            chunk_labels = [labels[i] for i in chunk]
        images = module.sample(
            chunk_labels,
            seeds,
            resolution=resolution,
            rule=rule,
            **sample_kwargs,
        )
        for path, pixels in zip(paths, to_uint8(images), strict=True):
            Image.fromarray(pixels).save(path)
        written += paths
    return written


def read_images(folder: str | Path, indices) -> np.ndarray:
    """The PNGs ``<i:06d>.png`` of ``indices`` in ``folder`` as uint8 (N, H, W, 3)."""
    folder = Path(folder)
    return np.stack(
        [np.asarray(Image.open(folder / f"{i:06d}.png").convert("RGB")) for i in indices]
    )


def folder_to_npz(folder: str | Path, path: str | Path, num_images: int) -> Path:
    """Stack ``000000.png ..`` into an ADM-evaluator batch: ``arr_0`` uint8 (N, H, W, 3)."""
    folder = Path(folder)
    missing = [i for i in range(num_images) if not (folder / f"{i:06d}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images missing in {folder}, first {missing[:5]}")
    np.savez(path, arr_0=read_images(folder, range(num_images)))
    return Path(path)
