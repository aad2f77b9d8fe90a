"""Image and latent geometry shared by the data, the models and the samplers.

Sizes are ``(height, width)`` in pixels everywhere. With the SD-VAE an image of H x W pixels is a
latent of ``LATENT_CHANNELS`` x H/8 x W/8; in pixel space the factor is 1 and there are 3 channels.
"""

from __future__ import annotations

from collections.abc import Sequence

LATENT_FACTOR = 8  # pixels per latent cell of the SD-VAE (stabilityai/sd-vae-ft-ema / -mse)
LATENT_CHANNELS = 4  # channels of an SD-VAE latent
PIXEL_CHANNELS = 3


def as_height_width(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``256 -> (256, 256)``; ``(192, 256) -> (192, 256)`` (height, width); checks positivity."""
    hw = (int(resolution), int(resolution)) if isinstance(resolution, int) else tuple(resolution)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"resolution must be a positive int or (height, width), got {resolution}")
    return int(hw[0]), int(hw[1])
