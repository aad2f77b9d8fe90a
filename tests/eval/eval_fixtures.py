"""Shared test inputs: crops of real photographs and a calibrated random Inception.

The photographs ship with scikit-image and scikit-learn (nothing is downloaded); they are used
where random pixels would make a metric meaningless (BatchNorm statistics of the test
Inception, blur sensitivity of SWD).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import skimage.data
import torch
from sklearn.datasets import load_sample_images

from lit_rpe.eval.metrics import InceptionV3Layers, preprocess_uint8
from lit_rpe.eval.metrics.swd import (
    SWDResult,
    laplacian_descriptors,
    pyramid_resolutions,
    swd_from_descriptors,
)


@cache
def _photos() -> tuple[np.ndarray, ...]:
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    photos += list(load_sample_images().images)
    return tuple(np.ascontiguousarray(p[..., :3]) for p in photos)


def photo_crops(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """``count`` uint8 crops (count, 3, size, size) at seeded positions, cycling the photos."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        crops.append(photo[top : top + size, left : left + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def calibrated_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random Inception weights whose BatchNorm statistics are measured on 10 photo crops.

    No real weights exist offline; calibrated BatchNorm keeps every layer's activations in a
    normal range, so the features are informative rather than vanishing or exploding.
    """
    torch.manual_seed(seed)
    layers = InceptionV3Layers()
    for module in layers.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: the statistics of the whole batch
    layers.train()
    with torch.no_grad():
        layers(preprocess_uint8(photo_crops(10, 160, seed=1)))
    return layers.state_dict()


def image_swd(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> SWDResult:
    """SWD between two image batches (N, C, H, W) of the same size: the package's descriptor
    and distance functions composed as ``score_cell`` composes them."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    levels = pyramid_resolutions(*real.shape[-2:])
    return swd_from_descriptors(
        laplacian_descriptors(real, seed=seed),
        laplacian_descriptors(fake, seed=seed),
        levels,
        seed=seed,
    )
