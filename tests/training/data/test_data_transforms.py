"""Crops and their boxes: the box names exactly the resized-image pixels the crop holds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from data_fixtures import encode, smooth_image
from PIL import Image

from lit_rpe.training.data.decode import CorruptSample
from lit_rpe.training.data.transforms import (
    CenterCropWithBox,
    RandomResizedCropWithBox,
    adm_center_crop,
    plan_random_resized_crop,
    resample_window,
)


def window(reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    height, width = reference.shape[:2]
    top, left = round(box[0] * height), round(box[1] * width)
    rows, cols = round(box[2] * height), round(box[3] * width)
    return reference[top : top + rows, left : left + cols]


@pytest.mark.parametrize("target", [(32, 32), (24, 40), (40, 16)])
@pytest.mark.parametrize("image_size", [(90, 70), (50, 120)])
def test_random_crop_box_identifies_the_resized_pixels(target, image_size):
    image = smooth_image(np.random.default_rng(1), *image_size)
    data = encode(image, "PNG")
    red = image.getchannel(0).convert("F")  # float image: no 8-bit rounding in the comparison
    transform = RandomResizedCropWithBox(target, max_zoom=2.0, hflip=True, fast_decode=False)
    flips = set()
    for seed in range(12):
        decoded = transform.decode(data, np.random.default_rng(seed))
        crop, box = transform.render(decoded)
        plan = decoded.plan
        flips.add(plan.flip)
        assert crop.shape == (*target, 3) and crop.dtype == np.uint8
        assert box.dtype == np.float32 and np.all(box >= 0) and np.all(box[:2] + box[2:] <= 1)
        # the box, read in the whole resized (and flipped) image, holds exactly the crop
        reference = red.resize(plan.resized, Image.Resampling.BICUBIC)
        if plan.flip:
            reference = reference.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        reference = np.asarray(reference)
        held = window(reference, box)
        assert held.shape == target
        float_crop = np.asarray(resample_window(red, decoded.extent, plan))
        assert np.abs(held - float_crop).max() < 1e-3
        # a window one pixel off is clearly different
        top, left = round(box[0] * reference.shape[0]), round(box[1] * reference.shape[1])
        for dy, dx in [(1, 0), (0, 1), (-1, 0), (0, -1)]:
            y, x = top + dy, left + dx
            if (
                0 <= y <= reference.shape[0] - target[0]
                and 0 <= x <= reference.shape[1] - target[1]
            ):
                shifted = reference[y : y + target[0], x : x + target[1]]
                assert np.abs(shifted - float_crop).mean() > 1.0
        # the RGB crop the pipeline delivers: the same up to 8-bit fixed-point rounding
        rgb = np.asarray(image.resize(plan.resized, Image.Resampling.BICUBIC)).astype(int)
        rgb = rgb[:, ::-1] if plan.flip else rgb
        assert np.abs(window(rgb, box) - crop).max() <= 2
    assert flips == {True, False}


def test_zoom_covers_the_target_and_follows_max_zoom():
    rng = np.random.default_rng(0)
    shorts = []
    for _ in range(300):
        plan = plan_random_resized_crop((400, 300), (64, 64), 1.5, False, rng)
        width, height = plan.resized
        assert height >= 64 and width >= 64 and plan.flip is False
        assert 0 <= plan.top <= height - 64 and 0 <= plan.left <= width - 64
        shorts.append(height)  # the short side is the height here
    assert min(shorts) >= 64 and max(shorts) <= 96
    assert min(shorts) < 70 and max(shorts) > 90  # u spans [1, 1.5]
    fixed = plan_random_resized_crop((400, 300), (64, 64), 1.0, False, rng)
    assert fixed.resized == (85, 64)
    wide = plan_random_resized_crop((300, 300), (32, 96), 1.0, False, rng)
    assert wide.resized == (96, 96) and wide.left == 0  # both sides cover a non-square target


def test_adm_center_crop_square_and_non_square():
    image = smooth_image(np.random.default_rng(3), 300, 200)
    crop = adm_center_crop(image, 64)
    assert crop.size == (64, 64)
    # ADM: halve while the short side >= 2R (200 -> 100), bicubic to short side R, centre crop
    halved = image.resize((150, 100), Image.Resampling.BOX)
    resized = halved.resize((96, 64), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(crop), np.asarray(resized)[:, 16:80])
    wide = adm_center_crop(image, (32, 80))
    assert wide.size == (80, 32)
    # one halving (150 < 2 * 80 stops it), then the width binds: 150 -> 80, 100 -> 53; rows 10..42
    reference = image.resize((150, 100), Image.Resampling.BOX)
    reference = reference.resize((80, 53), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(wide), np.asarray(reference)[10:42])


def test_center_crop_transform_box_and_flip():
    data = encode(smooth_image(np.random.default_rng(4), 120, 60), "PNG")
    crop, box = CenterCropWithBox(48, hflip=False, fast_decode=False)(data)
    assert np.allclose(box, [0.0, 24 / 96, 1.0, 0.5])  # 120x60 -> 96x48, centre 48x48
    assert np.array_equal(
        crop,
        np.asarray(adm_center_crop(Image.open(io.BytesIO(data)).convert("RGB"), 48)),
    )
    transform = CenterCropWithBox(48, hflip=True, fast_decode=False)
    outputs = [transform(data, np.random.default_rng(s)) for s in range(8)]
    flipped = [c for c, _ in outputs if not np.array_equal(c, crop)]
    assert flipped and all(np.array_equal(c, crop[:, ::-1]) for c in flipped)


def test_draft_decoding_matches_full_decoding_up_to_resampling():
    """Large JPEG: decoding at a reduced DCT scale gives the same crop up to filtering."""
    rng = np.random.default_rng(5)
    data = encode(smooth_image(rng, 1600, 1200), "JPEG")
    for make in (
        lambda fast: RandomResizedCropWithBox(128, 1.3, True, fast),
        lambda fast: CenterCropWithBox(128, False, fast),
    ):
        for seed in range(3):
            fast, fast_box = make(True)(data, np.random.default_rng(seed))
            full, full_box = make(False)(data, np.random.default_rng(seed))
            assert np.array_equal(fast_box, full_box)
            difference = np.abs(fast.astype(int) - full.astype(int))
            assert difference.mean() < 2.0 and np.percentile(difference, 99) < 10
    image = Image.open(io.BytesIO(data))
    assert image.draft("RGB", (150, 150)) is not None and image.size == (200, 150)


def test_garbage_bytes_are_a_corrupt_sample():
    with pytest.raises(CorruptSample, match="cannot open image"):
        RandomResizedCropWithBox(16)(b"definitely not an image", np.random.default_rng(0))
    whole = encode(smooth_image(np.random.default_rng(6), 64, 64), "JPEG")
    with pytest.raises(CorruptSample, match="cannot decode"):
        CenterCropWithBox(16)(whole[: len(whole) // 2])
    with pytest.raises(CorruptSample, match="cannot open"):
        CenterCropWithBox(16)(whole[:300])
