"""Crops of precomputed VAE latents (the optional latent-shard path, see data/README.md).

A latent sample stores ``latent.npy``: (C, h, w) float16, the scaled VAE latent of the image
resized once (``precompute_latents``), and optionally ``latent_flip.npy``, the latent of the
mirrored image. Crops are cut in latent space at whole-latent offsets; the box is normalised to
the stored latent grid, which is the resized image, so it means what it means for pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lit_rpe.resolution import as_height_width
from lit_rpe.training.data.decode import CorruptSample
from lit_rpe.training.data.transforms import CropPlan, center_offsets

LATENT_FIELD = "latent.npy"
FLIPPED_LATENT_FIELD = "latent_flip.npy"


def load_latent(data: bytes, name: str) -> np.ndarray:
    """A (C, h, w) array from ``.npy`` bytes (no pickles)."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:
        raise CorruptSample(f"cannot read {name}: {type(err).__name__}: {err}") from None
    if array.ndim != 3:
        raise CorruptSample(f"{name} has shape {array.shape}, expected (C, h, w)")
    return array


@dataclass
class DecodedLatent:
    latent: np.ndarray
    flipped: np.ndarray | None
    plan: CropPlan


class LatentCropWithBox:
    """Crop ``size`` latent cells ((h, w) or int) from a latent sample, at a uniform random
    offset (``random=True``, the training crop) or in the centre; flip with p = 1/2 if ``hflip``.

    A flip uses the stored latent of the mirrored image when the sample has one, otherwise it
    mirrors the latent itself, which the SD VAE only approximately commutes with."""

    def __init__(self, size: int | Sequence[int], random: bool, hflip: bool):
        self.size = as_height_width(size)
        self.random = random
        self.hflip = hflip

    def decode(self, fields: dict[str, bytes], rng: np.random.Generator | None) -> DecodedLatent:
        if LATENT_FIELD not in fields:
            raise CorruptSample(f"no {LATENT_FIELD} field (is this a latent shard?)")
        latent = load_latent(fields[LATENT_FIELD], LATENT_FIELD)
        _, height, width = latent.shape
        if height < self.size[0] or width < self.size[1]:
            raise CorruptSample(f"latent {height}x{width} is smaller than the crop {self.size}")
        if self.random and rng is not None:
            top = int(rng.integers(0, height - self.size[0] + 1))
            left = int(rng.integers(0, width - self.size[1] + 1))
        else:
            top, left = center_offsets((width, height), self.size)
        flip = bool(rng.random() < 0.5) if self.hflip and rng is not None else False
        flipped = None
        if flip and FLIPPED_LATENT_FIELD in fields:
            flipped = load_latent(fields[FLIPPED_LATENT_FIELD], FLIPPED_LATENT_FIELD)
            if flipped.shape != latent.shape:
                raise CorruptSample(f"{FLIPPED_LATENT_FIELD} shape differs from {LATENT_FIELD}")
        return DecodedLatent(latent, flipped, CropPlan((width, height), top, left, self.size, flip))

    def render(self, decoded: DecodedLatent) -> tuple[np.ndarray, np.ndarray]:
        """(C, h, w) float32 crop and its (4,) float32 box."""
        plan = decoded.plan
        (crop_h, crop_w), width = plan.size, plan.resized[0]
        rows = slice(plan.top, plan.top + crop_h)
        if decoded.flipped is not None:  # the window of the mirrored image, mirrored offset
            left = width - plan.left - crop_w
            crop = decoded.flipped[:, rows, left : left + crop_w]
        else:
            crop = decoded.latent[:, rows, plan.left : plan.left + crop_w]
            if plan.flip:
                crop = crop[:, :, ::-1]
        return np.ascontiguousarray(crop, dtype=np.float32), plan.box()
