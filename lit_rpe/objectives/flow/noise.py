"""Per-sample seeded Gaussian noise, so that a sample depends on its seed alone."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def seeded_noise(
    seeds: Sequence[int] | torch.Tensor,
    shape: Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard-normal noise of shape (len(seeds), *shape); row i is drawn from seeds[i] alone.

    Each row has its own ``torch.Generator``, so row i is bit-identical whether it is produced
    alone, inside any batch, or on any process of a distributed run (which only has to split
    the seed list). Draws happen on the CPU in float32 and are then moved and cast: CPU and CUDA
    generators give different streams, and drawing in one fixed dtype keeps the noise the same
    for every ``device`` and ``dtype`` (up to the final cast).
    """
    seeds = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
    shape = tuple(int(s) for s in shape)
    if not seeds:
        return torch.empty((0, *shape), device=device, dtype=dtype)
    rows = [
        torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        for seed in seeds
    ]
    return torch.stack(rows).to(device=device, dtype=dtype)
