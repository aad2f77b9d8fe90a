"""Decoding the fields of a raw sample: the image (with JPEG draft mode) and the class label.

Anything that cannot be decoded raises ``CorruptSample`` with the reason; the stream catches it,
logs the shard and key, counts the sample and goes on with the next one.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm")
LABEL_FIELD = "cls"


class CorruptSample(Exception):
    """A sample that cannot be used: undecodable image, missing or invalid label, missing field."""


def image_field(fields: dict[str, bytes]) -> bytes:
    """The encoded image of a sample (first of ``IMAGE_FIELDS`` present)."""
    for name in IMAGE_FIELDS:
        if name in fields:
            return fields[name]
    raise CorruptSample(f"no image field (has: {', '.join(sorted(fields)) or 'nothing'})")


def parse_label(fields: dict[str, bytes], num_classes: int | None) -> int:
    """The integer class of a sample from its ``.cls`` field (ASCII digits)."""
    if LABEL_FIELD not in fields:
        raise CorruptSample("no label (.cls field missing)")
    text = fields[LABEL_FIELD].decode("utf-8", errors="replace").strip()
    try:
        label = int(text)
    except ValueError:
        raise CorruptSample(f"label {text[:20]!r} is not an integer") from None
    if label < 0 or (num_classes is not None and label >= num_classes):
        raise CorruptSample(f"label {label} outside [0, {num_classes})")
    return label


def open_image(data: bytes) -> Image.Image:
    """Open an encoded image lazily (header only); its ``size`` is known, pixels are not."""
    try:
        return Image.open(io.BytesIO(data))
    except Exception as err:  # PIL raises many types for garbage input
        raise CorruptSample(f"cannot open image: {type(err).__name__}: {err}") from None


def load_rgb(
    image: Image.Image, min_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[float, float]]:
    """Decode ``image`` to RGB, letting JPEG skip resolution it does not need.

    ``min_size`` is the (width, height) the caller will resample to; a JPEG is then decoded at
    the smallest 1/1, 1/2, 1/4 or 1/8 scale that still covers it (libjpeg's DCT scaling, PIL's
    draft mode), which is several times faster for large photographs and differs from a full
    decode only by the resampling filter. Returns the image and the extent of the original
    image in decoded pixels, (width, height): a crop box given in original-image fractions maps
    to decoded pixels through it. ``min_size=None`` decodes at full size."""
    extent = (float(image.width), float(image.height))
    try:
        if min_size is not None and image.format == "JPEG":
            drafted = image.draft("RGB", (max(1, min_size[0]), max(1, min_size[1])))
            if drafted is not None:
                extent = (float(drafted[1][2]), float(drafted[1][3]))
        image.load()
        if image.mode != "RGB":
            image = image.convert("RGB")
    except Exception as err:
        raise CorruptSample(f"cannot decode image: {type(err).__name__}: {err}") from None
    return image, extent


def cover_scale(size: tuple[int, int], target: tuple[int, int]) -> float:
    """Scale that makes an image of ``size`` (width, height) cover ``target`` (height, width)."""
    width, height = size
    return max(target[0] / height, target[1] / width)


def covering_size(size: tuple[int, int], scale: float, target: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of ``size`` scaled by ``scale``, rounded, never below ``target``."""
    width, height = size
    return max(target[1], round(width * scale)), max(target[0], round(height * scale))


def ceil_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(width, height)`` of ``size`` scaled by ``scale``, rounded up (a draft-mode request)."""
    return math.ceil(size[0] * scale), math.ceil(size[1] * scale)


def to_uint8_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array of an RGB image."""
    return np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, 3)
