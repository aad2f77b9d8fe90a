"""Image crops that report where they came from.

Every transform returns the crop and its box ``(top, left, height, width)`` normalised to the
resized image the crop was cut from, so ``crop == resized[top*Hr : top*Hr + h*Hr,
left*Wr : left*Wr + w*Wr]`` (``Hr, Wr``: resized height and width). When a crop is flipped
horizontally the box describes the flipped resized image (``left`` becomes ``1 - left - width``),
so the identity above still holds for what the model sees.

- ``RandomResizedCropWithBox``: RPE-2D's training augmentation (docs/DESIGN.md 4). Scale the
  image so both sides cover the target, times ``u ~ U[1, max_zoom]`` (for a square target of side
  R the short side becomes ``R * u``), take a uniformly placed target-sized crop, flip with
  p = 1/2.
- ``adm_center_crop`` / ``CenterCropWithBox``: the ADM evaluation protocol (guided-diffusion's
  centre crop, also DiT's training crop): halve with a box filter while the image is at least
  twice the target, resize with bicubic so it covers the target, cut the centre.

Sizes: targets are ``(height, width)`` in pixels; PIL sizes are ``(width, height)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lit_rpe.resolution import as_height_width
from lit_rpe.training.data.decode import (
    ceil_size,
    cover_scale,
    covering_size,
    load_rgb,
    open_image,
    to_uint8_array,
)


@dataclass(frozen=True)
class CropPlan:
    """Where a crop sits: the resized image is ``resized`` = (width, height) pixels, the crop is
    ``size`` = (height, width) pixels at offset (``top``, ``left``), mirrored if ``flip``."""

    resized: tuple[int, int]
    top: int
    left: int
    size: tuple[int, int]
    flip: bool = False

    def box(self) -> np.ndarray:
        """(4,) float32 ``(top, left, height, width)`` normalised to the (flipped) resized image."""
        width, height = self.resized
        crop_h, crop_w = self.size
        left = width - self.left - crop_w if self.flip else self.left
        return np.array(
            [self.top / height, left / width, crop_h / height, crop_w / width], dtype=np.float32
        )


def plan_random_resized_crop(
    image_size: tuple[int, int],
    target: tuple[int, int],
    max_zoom: float,
    hflip: bool,
    rng: np.random.Generator,
) -> CropPlan:
    """Draw RPE-2D's zoom, crop offset and flip for an image of ``image_size`` (width, height)."""
    zoom = rng.uniform(1.0, max_zoom) if max_zoom > 1.0 else 1.0
    resized = covering_size(image_size, cover_scale(image_size, target) * zoom, target)
    top = int(rng.integers(0, resized[1] - target[0] + 1))
    left = int(rng.integers(0, resized[0] - target[1] + 1))
    flip = bool(rng.random() < 0.5) if hflip else False
    return CropPlan(resized, top, left, target, flip)


def resample_window(image: Image.Image, extent: tuple[float, float], plan: CropPlan) -> Image.Image:
    """The crop of ``plan`` (flipped if the plan flips) resampled from a decoded image.

    Only the crop window is resampled (PIL resize with a source box): each output pixel is
    filtered from the same source positions as the pixel of the whole resized image it stands
    for, so this equals resizing everything and cropping (exactly in float images; within the
    8-bit fixed-point rounding, at most 2 grey levels, in RGB ones) without paying for the part
    that is thrown away. ``extent``: the original image's (width, height) in decoded pixels
    (smaller than the original after JPEG draft decoding)."""
    width, height = plan.resized
    crop_h, crop_w = plan.size
    sx, sy = extent[0] / width, extent[1] / height
    source = (plan.left * sx, plan.top * sy, (plan.left + crop_w) * sx, (plan.top + crop_h) * sy)
    crop = image.resize((crop_w, crop_h), Image.Resampling.BICUBIC, box=source)
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if plan.flip else crop


def adm_resize_to_cover(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """ADM's resize: box-filter halvings while the image is at least twice the target on both
    sides, then one bicubic resize so that it covers ``target`` (height, width).
    For a square target this is exactly guided-diffusion's ``center_crop_arr`` resize."""
    while image.width >= 2 * target[1] and image.height >= 2 * target[0]:
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)
    size = covering_size(image.size, cover_scale(image.size, target), target)
    return image.resize(size, Image.Resampling.BICUBIC)


def center_offsets(resized: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a centred ``target`` (height, width) crop of a (width, height) image."""
    return (resized[1] - target[0]) // 2, (resized[0] - target[1]) // 2


def adm_center_crop(image: Image.Image, size: int | Sequence[int]) -> Image.Image:
    """ADM evaluation crop of an RGB image to ``size`` (int or (height, width)): resize so the
    image covers the target (short side = R for a square one), cut the centre."""
    target = as_height_width(size)
    resized = adm_resize_to_cover(image, target)
    top, left = center_offsets(resized.size, target)
    return resized.crop((left, top, left + target[1], top + target[0]))


@dataclass
class DecodedImage:
    """A decoded image, the original's extent in decoded pixels, and the drawn parameters."""

    image: Image.Image
    extent: tuple[float, float]
    plan: CropPlan | None = None
    flip: bool = False


class RandomResizedCropWithBox:
    """RPE-2D's random resize-and-crop (+ horizontal flip) of encoded image bytes.

    ``decode(data, rng)`` draws the parameters and decodes (the expensive part, also what a
    resumed stream replays to find corrupt samples); ``render`` returns the (H, W, 3) uint8
    crop and its (4,) float32 box. ``fast_decode`` lets JPEGs decode at a reduced DCT scale
    that still covers the resized image."""

    def __init__(
        self,
        size: int | Sequence[int],
        max_zoom: float = 1.0,
        hflip: bool = True,
        fast_decode: bool = True,
    ):
        if max_zoom < 1.0:
            raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
        self.size = as_height_width(size)
        self.max_zoom = float(max_zoom)
        self.hflip = hflip
        self.fast_decode = fast_decode

    def decode(self, data: bytes, rng: np.random.Generator) -> DecodedImage:
        image = open_image(data)
        plan = plan_random_resized_crop(image.size, self.size, self.max_zoom, self.hflip, rng)
        draft = plan.resized if self.fast_decode else None
        decoded, extent = load_rgb(image, draft)
        return DecodedImage(decoded, extent, plan)

    def render(self, decoded: DecodedImage) -> tuple[np.ndarray, np.ndarray]:
        assert decoded.plan is not None
        crop = resample_window(decoded.image, decoded.extent, decoded.plan)
        return to_uint8_array(crop), decoded.plan.box()

    def __call__(self, data: bytes, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.render(self.decode(data, rng))


class CenterCropWithBox:
    """ADM centre crop of encoded image bytes, optionally with a random horizontal flip (DiT's
    training augmentation); ``hflip=False`` is the evaluation transform. Same interface as
    ``RandomResizedCropWithBox``."""

    def __init__(self, size: int | Sequence[int], hflip: bool = False, fast_decode: bool = True):
        self.size = as_height_width(size)
        self.hflip = hflip
        self.fast_decode = fast_decode

    def decode(self, data: bytes, rng: np.random.Generator | None) -> DecodedImage:
        image = open_image(data)
        flip = bool(rng.random() < 0.5) if self.hflip and rng is not None else False
        draft = (
            ceil_size(image.size, cover_scale(image.size, self.size)) if self.fast_decode else None
        )
        decoded, extent = load_rgb(image, draft)
        return DecodedImage(decoded, extent, flip=flip)

    def render(self, decoded: DecodedImage) -> tuple[np.ndarray, np.ndarray]:
        resized = adm_resize_to_cover(decoded.image, self.size)
        top, left = center_offsets(resized.size, self.size)
        plan = CropPlan(resized.size, top, left, self.size, decoded.flip)
        crop = resized.crop((left, top, left + self.size[1], top + self.size[0]))
        if plan.flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_uint8_array(crop), plan.box()

    def __call__(
        self, data: bytes, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.render(self.decode(data, rng))
