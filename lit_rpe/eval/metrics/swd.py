"""Sliced Wasserstein distance on Laplacian pyramids (Karras et al. 2018, "Progressive Growing
of GANs", appendix D), a resolution-aware image metric that needs no pretrained network.

Per pyramid level, from the full resolution down to the last level of at least 16 px:
1. build the Laplacian pyramid with the 5x5 binomial filter (cv2's pyrDown / pyrUp, mirrored
   borders); the last level is the low-pass residual;
2. cut ``nhoods_per_image`` random 7 x 7 neighbourhoods per image and level (the descriptors);
3. normalise each colour channel of a set's descriptors by that set's own mean and std;
4. project both sets on random unit directions (``dir_repeats`` x ``dirs_per_repeat``, 4 x 128
   = the paper's 512 projections), sort, and average the absolute differences.
Values are reported x 1e3 per level and averaged over levels, as in the paper's tables.

Normalisation makes the result invariant to a per-channel affine map of the pixel values, so
uint8 images and floats in [-1, 1] or [0, 1] give the same distance (up to rounding).
Everything is deterministic given ``seed``, whatever the batching: image i of either set is
probed at the same positions, so identical sets are at distance exactly 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

NHOOD_SIZE = 7
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    return images.float() if images.dtype == torch.uint8 else images.to(torch.float32)


def _blur(images: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    # Separable 5x5 binomial filter; "reflect" = scipy's "mirror" = cv2's BORDER_REFLECT_101.
    c = images.shape[1]
    k = (_BINOMIAL * gain**0.5).to(images)
    x = F.pad(images, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def pyr_down(images: torch.Tensor) -> torch.Tensor:
    """Blur and keep every second pixel: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return _blur(images)[..., ::2, ::2]


def pyr_up(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insert to twice the size, blur with gain 4, crop to ``size`` (odd sizes)."""
    n, c, h, w = images.shape
    up = images.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = images
    return _blur(up, gain=4.0)[..., : size[0], : size[1]]


def pyramid_resolutions(height: int, width: int, min_resolution: int = 16) -> list[tuple[int, int]]:
    """(h, w) of each level: halve (rounding up) while the shorter side is >= min_resolution."""
    if min_resolution < NHOOD_SIZE:
        raise ValueError(f"min_resolution must be >= {NHOOD_SIZE}, the neighbourhood size")
    sizes = []
    while min(height, width) >= min_resolution:
        sizes.append((height, width))
        height, width = (height + 1) // 2, (width + 1) // 2
    if not sizes:
        raise ValueError(f"images of {height}x{width} are below min_resolution={min_resolution}")
    return sizes


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Levels finest first: band-pass differences, then the low-pass residual (float32)."""
    gaussian = [_as_float(images)]
    for _ in range(num_levels - 1):
        gaussian.append(pyr_down(gaussian[-1]))
    bands = [
        g - pyr_up(g_next, g.shape[-2:]) for g, g_next in zip(gaussian, gaussian[1:], strict=False)
    ]
    return bands + [gaussian[-1]]


def patch_corners(
    shapes: list[tuple[int, int]], image_indices: range, nhoods_per_image: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-left corners of the 7 x 7 neighbourhoods: per level, rows and columns (N, nhoods).

    Image i (a global index) gets its own generator seeded with (seed, 0, i), which draws level
    by level the rows, then the columns, uniformly over the positions where a patch fits (the
    paper's centres in [3, size - 3)). So positions do not depend on batching or ranks, and
    image i of two sets is probed at the same places.
    """
    size = (len(image_indices), nhoods_per_image)
    corners = [(np.empty(size, np.int64), np.empty(size, np.int64)) for _ in shapes]
    for row, index in enumerate(image_indices):
        rng = np.random.default_rng([seed, 0, index])
        for (ys, xs), (h, w) in zip(corners, shapes, strict=True):
            ys[row] = rng.integers(0, h - NHOOD_SIZE + 1, size=nhoods_per_image)
            xs[row] = rng.integers(0, w - NHOOD_SIZE + 1, size=nhoods_per_image)
    return corners


def sample_descriptors(level: torch.Tensor, ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
    """The neighbourhoods of a level (N, C, H, W) at corners (N, P) -> (N * P, C, 7, 7)."""
    n, c = level.shape[:2]
    offsets = torch.arange(NHOOD_SIZE)
    rows = (torch.from_numpy(ys)[..., None] + offsets).to(level.device)  # (N, P, 7)
    cols = (torch.from_numpy(xs)[..., None] + offsets).to(level.device)
    image = torch.arange(n, device=level.device)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[image, rows[..., :, None], cols[..., None, :]]
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, c, NHOOD_SIZE, NHOOD_SIZE)


def laplacian_descriptors(
    images: torch.Tensor,
    nhoods_per_image: int = 128,
    seed: int = 0,
    first_index: int = 0,
    min_resolution: int = 16,
) -> list[torch.Tensor]:
    """Unnormalised descriptors (N * nhoods, C, 7, 7) of each pyramid level, finest first.

    ``first_index`` is the global index of ``images[0]``: for streaming, call once per batch
    and concatenate the per-level lists; the result equals one call on all images.
    Normalisation happens in ``swd_from_descriptors``.
    """
    shapes = pyramid_resolutions(*images.shape[-2:], min_resolution=min_resolution)
    pyramid = laplacian_pyramid(images, len(shapes))
    indices = range(first_index, first_index + images.shape[0])
    corners = patch_corners(shapes, indices, nhoods_per_image, seed)
    return [
        sample_descriptors(level, ys, xs) for level, (ys, xs) in zip(pyramid, corners, strict=True)
    ]


def descriptor_row_width(
    resolution: tuple[int, int],
    nhoods_per_image: int = 128,
    channels: int = 3,
    min_resolution: int = 16,
) -> int:
    """Floats per image of ``descriptor_rows`` at ``resolution`` (H, W)."""
    levels = len(pyramid_resolutions(*resolution, min_resolution=min_resolution))
    return levels * nhoods_per_image * channels * NHOOD_SIZE**2


def descriptor_rows(levels: list[torch.Tensor], num_images: int) -> torch.Tensor:
    """Per-level descriptors of ``num_images`` images (``laplacian_descriptors``) as one row
    per image, (N, levels x nhoods x C x 7 x 7), to travel with other per-image data."""
    return torch.cat([level.reshape(num_images, -1) for level in levels], 1)


def rows_to_descriptors(
    rows: torch.Tensor,
    resolution: tuple[int, int],
    nhoods_per_image: int = 128,
    channels: int = 3,
    min_resolution: int = 16,
) -> list[torch.Tensor]:
    """The inverse of ``descriptor_rows``: (N, width) -> per level (N * nhoods, C, 7, 7)."""
    levels = len(pyramid_resolutions(*resolution, min_resolution=min_resolution))
    parts = rows.split(nhoods_per_image * channels * NHOOD_SIZE**2, dim=1)
    if len(parts) != levels:
        raise ValueError(
            f"rows of width {rows.shape[1]} do not hold {levels} levels at {resolution}"
        )
    return [p.reshape(-1, channels, NHOOD_SIZE, NHOOD_SIZE) for p in parts]


def normalize_descriptors(descriptors: torch.Tensor) -> torch.Tensor:
    """(M, C, 7, 7) -> (M, C * 49): per channel, zero mean and unit (population) std."""
    d = descriptors.double()
    mean = d.mean(dim=(0, 2, 3), keepdim=True)
    std = d.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
    return ((d - mean) / std).float().flatten(1)


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    rng: np.random.Generator | None = None,
) -> float:
    """Sliced 1-Wasserstein distance between equal-sized point sets a, b of shape (M, D).

    Projects on ``dirs_per_repeat`` random unit directions per repeat, sorts, averages |a - b|
    over points and directions, then over repeats.
    """
    if a.shape != b.shape:
        raise ValueError(f"point sets must have equal shapes, got {a.shape} and {b.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    results = []
    for _ in range(dir_repeats):
        dirs = torch.from_numpy(rng.standard_normal((a.shape[1], dirs_per_repeat)))
        dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(a)
        # (directions, points): sorting along contiguous rows is much faster than along dim 0.
        proj_a = (dirs.T @ a.T).sort(dim=1).values
        proj_b = (dirs.T @ b.T).sort(dim=1).values
        results.append((proj_a - proj_b).abs().mean().item())
    return float(np.mean(results))


class SWDResult(NamedTuple):
    """SWD x 1e3 per level (finest first) with each level's (h, w), and their average."""

    per_level: list[float]
    resolutions: list[tuple[int, int]]
    average: float


def swd_from_descriptors(
    real: list[torch.Tensor],
    fake: list[torch.Tensor],
    resolutions: list[tuple[int, int]],
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    seed: int = 0,
) -> SWDResult:
    """SWD from per-level descriptor lists (as ``laplacian_descriptors`` returns them).

    Sets of different sizes are compared on a seeded random subset of the larger one, since
    the sorted-projection distance needs equally many points.
    """
    if len(real) != len(fake) or len(real) != len(resolutions):
        raise ValueError("real, fake and resolutions need one entry per pyramid level")
    rng = np.random.default_rng([seed, 1])  # apart from the positions' streams (seed, 0, i)
    distances = []
    for desc_real, desc_fake in zip(real, fake, strict=True):
        m = min(desc_real.shape[0], desc_fake.shape[0])
        desc_real, desc_fake = (
            d if d.shape[0] == m else d[torch.from_numpy(rng.permutation(d.shape[0])[:m])]
            for d in (desc_real, desc_fake)
        )
        a, b = normalize_descriptors(desc_real), normalize_descriptors(desc_fake)
        distances.append(sliced_wasserstein(a, b, dir_repeats, dirs_per_repeat, rng) * 1e3)
    return SWDResult(distances, list(resolutions), float(np.mean(distances)))
