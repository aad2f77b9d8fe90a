"""From a raw sample to a batch entry: label check, decode, crop, and collation.

A batch is the dict every consumer of the data module relies on:
``image`` (B, C, H, W) float32 (pixels in [-1, 1], or latents), ``label`` (B,) int64,
``box`` (B, 4) float32 crop box, ``key`` list of B sample keys, ``corrupt`` (B,) int64: how many
corrupt or unlabeled samples the producing worker skipped just before each sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from lit_rpe.training.data.decode import image_field, parse_label
from lit_rpe.training.data.tar_io import RawSample


class CropTransform(Protocol):
    """What the stream needs from a transform: an expensive ``decode`` (replayed when a resumed
    stream skips batches) and a ``render`` returning (array, (4,) box)."""

    def decode(self, data: Any, rng: np.random.Generator | None) -> Any: ...

    def render(self, decoded: Any) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class DecodedSample:
    """A sample that decoded: the transform's state, its label and key, and how many corrupt
    samples were skipped right before it."""

    decoded: Any
    label: int
    key: str
    corrupt_before: int


class SampleDecoder:
    """Applies a crop transform to raw samples. ``latent=True``: the transform reads the whole
    field dict (latent shards); otherwise it gets the encoded image bytes."""

    def __init__(self, transform: CropTransform, num_classes: int | None, latent: bool = False):
        self.transform = transform
        self.num_classes = num_classes
        self.latent = latent

    def decode(self, raw: RawSample, rng: np.random.Generator | None) -> tuple[Any, int]:
        """Label first (cheap), then the transform's decode; raises ``CorruptSample``."""
        label = parse_label(raw.fields, self.num_classes)
        data = raw.fields if self.latent else image_field(raw.fields)
        return self.transform.decode(data, rng), label

    def render(self, decoded: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.transform.render(decoded)


def collate(
    arrays: Sequence[np.ndarray],
    samples: Sequence[DecodedSample],
    boxes: Sequence[np.ndarray],
    latent: bool,
) -> dict[str, Any]:
    """Stack rendered samples into a batch dict.

    Pixels arrive as (H, W, 3) uint8 and become (B, 3, H, W) float32 in [-1, 1] (x / 127.5 - 1);
    latents arrive as (C, h, w) float32 and are stacked as they are."""
    stacked = np.stack(arrays)
    if latent:
        image = torch.from_numpy(stacked)
    else:
        # transpose the uint8 array (4x cheaper than the float one), then convert
        image = torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))
        image = image.to(torch.float32).div_(127.5).sub_(1.0)
    return {
        "image": image,
        "label": torch.tensor([s.label for s in samples], dtype=torch.int64),
        "box": torch.from_numpy(np.stack(boxes).astype(np.float32, copy=False)),
        "key": [s.key for s in samples],
        "corrupt": torch.tensor([s.corrupt_before for s in samples], dtype=torch.int64),
    }
