"""Token positions along one axis: training draws and inference layouts (docs/DESIGN.md 3b, 3c).

Positions are per-sample data, shape (B, n), float32; token (i, j) of an image sits at
``(pos_h[b, i], pos_w[b, j])``. Nothing here is stored in a module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TRAINING_POSITIONS = ("grid", "rpe2d")


def grid_positions(batch: int, n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """``0, 1, ..., n - 1`` for every sample: (batch, n) float32."""
    _check_count(n)
    return torch.arange(n, dtype=torch.float32, device=device).expand(batch, n)


def rpe2d_positions(
    batch: int,
    n: int,
    max_len: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RPE-2D draw: per sample, ``n`` distinct integers uniform from ``[0, max_len)``, sorted.

    Drawing the ``n`` largest of ``max_len`` i.i.d. uniforms picks every n-subset with equal
    probability. Draws happen on the generator's device (CPU by default) so that a seeded run is
    reproducible on any accelerator. Returns (batch, n) float32 on ``device``.
    """
    _check_count(n)
    if n > max_len:
        raise ValueError(
            f"rpe2d needs n <= max_len distinct positions per axis, got n={n} > max_len={max_len}"
        )
    gen_device = generator.device if generator is not None else "cpu"
    scores = torch.rand(batch, max_len, generator=generator, device=gen_device)
    chosen = scores.topk(n, dim=1, sorted=False).indices.sort(dim=1).values.float()
    # non_blocking: a host-to-device copy that does not wait for the device (no sync per step)
    return chosen.to(device=device, non_blocking=True)


def rpe2d_even_positions(
    batch: int, n: int, max_len: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Evenly spread over the trained range: ``floor((i + 0.5) * max_len / n)``; (batch, n)."""
    _check_count(n)
    if n > max_len:
        raise ValueError(
            f"rpe2d_even spreads n positions over max_len={max_len} trained ones and needs "
            f"n <= max_len, got n={n}; evaluate a smaller grid or train with a larger max_len"
        )
    i = torch.arange(n, dtype=torch.float64, device=device)
    return torch.floor((i + 0.5) * max_len / n).to(torch.float32).expand(batch, n)


def rpe2d_seeded_positions(
    seeds: Sequence[int],
    n_h: int,
    n_w: int,
    max_len: tuple[int, int],
    *,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rpe2d_random`` at inference: image b draws rows then columns from its own seed.

    The draw of image b depends on ``seeds[b]`` only, not on the batch it is generated in.
    Returns (pos_h (B, n_h), pos_w (B, n_w)).
    """
    rows, cols = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        rows.append(rpe2d_positions(1, n_h, max_len[0], generator=gen))
        cols.append(rpe2d_positions(1, n_w, max_len[1], generator=gen))
    return torch.cat(rows).to(device), torch.cat(cols).to(device)


def training_positions(
    kind: str,
    batch: int,
    grid: tuple[int, int],
    *,
    max_len: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of a training batch: ``grid`` (DiT) or ``rpe2d`` (independent per axis/sample).

    grid: (h, w) tokens; max_len: (rows, cols) range of the rpe2d draws.
    Returns (pos_h (B, h), pos_w (B, w)) float32.
    """
    if kind not in TRAINING_POSITIONS:
        raise ValueError(
            f"unknown training positions {kind!r}; valid: {', '.join(TRAINING_POSITIONS)}"
        )
    h, w = grid
    if kind == "grid":
        return grid_positions(batch, h, device=device), grid_positions(batch, w, device=device)
    if max_len is None:
        raise ValueError("rpe2d training positions need max_len=(rows, cols)")
    return (
        rpe2d_positions(batch, h, max_len[0], generator=generator, device=device),
        rpe2d_positions(batch, w, max_len[1], generator=generator, device=device),
    )


def _check_count(n: int) -> None:
    if n < 1:
        raise ValueError(f"an axis needs at least 1 token, got {n}")
