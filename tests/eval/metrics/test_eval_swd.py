"""Sliced Wasserstein distance on Laplacian pyramids: pyramid, descriptors, distance."""

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from eval_fixtures import image_swd, photo_crops

from lit_rpe.eval.metrics import laplacian_descriptors, laplacian_pyramid
from lit_rpe.eval.metrics.swd import (
    patch_corners,
    pyr_down,
    pyr_up,
    pyramid_resolutions,
    sample_descriptors,
    sliced_wasserstein,
    swd_from_descriptors,
)

# The 5x5 binomial kernel of cv2.pyrDown, applied by scipy with mirrored borders.
BINOMIAL_5X5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma) + 1
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.pad(images.float(), (radius,) * 4, mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def photos():
    return photo_crops(32, 64, seed=0)


def test_pyramid_operators_match_scipy_mirror_convolution():
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 20, 20)).astype(np.float64)
    kernel = BINOMIAL_5X5[None, None]
    down = scipy.ndimage.convolve(x, kernel, mode="mirror")[..., ::2, ::2]
    np.testing.assert_allclose(pyr_down(torch.from_numpy(x)).numpy(), down, atol=1e-9)
    stuffed = np.zeros((2, 3, 20, 20))
    stuffed[..., ::2, ::2] = down
    up = scipy.ndimage.convolve(stuffed, 4 * kernel, mode="mirror")
    np.testing.assert_allclose(pyr_up(torch.from_numpy(down), (20, 20)).numpy(), up, atol=1e-9)


@pytest.mark.parametrize("height, width", [(64, 64), (36, 50)])
def test_laplacian_pyramid_reconstructs_the_image(height, width):
    images = photo_crops(2, 64, seed=1)[..., :height, :width]
    levels = laplacian_pyramid(images, len(pyramid_resolutions(height, width)))
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = pyr_up(rebuilt, band.shape[-2:]) + band
    torch.testing.assert_close(rebuilt, images.float(), rtol=0, atol=1e-3)


def test_pyramid_resolutions_stop_at_16_pixels():
    assert pyramid_resolutions(64, 64) == [(64, 64), (32, 32), (16, 16)]
    assert pyramid_resolutions(48, 80) == [(48, 80), (24, 40)]  # next would be 12 x 20
    assert pyramid_resolutions(33, 33) == [(33, 33), (17, 17)]
    with pytest.raises(ValueError, match="min_resolution"):
        pyramid_resolutions(8, 8)


def test_descriptors_are_the_7x7_patches_at_positions_seeded_per_image():
    level = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).view(2, 3, 10, 12)
    ((ys, xs),) = patch_corners([(10, 12)], range(40, 42), nhoods_per_image=5, seed=7)
    patches = sample_descriptors(level, ys, xs)
    assert patches.shape == (10, 3, 7, 7)
    for n, index in enumerate((40, 41)):
        replay = np.random.default_rng([7, 0, index])  # documented: per global image index
        assert replay.integers(0, 4, size=5).tolist() == ys[n].tolist()  # 10 - 7 + 1 rows
        assert replay.integers(0, 6, size=5).tolist() == xs[n].tolist()
        for p in range(5):
            y, x = ys[n, p], xs[n, p]
            assert torch.equal(patches[n * 5 + p], level[n, :, y : y + 7, x : x + 7])


def test_identical_sets_are_at_distance_zero(photos):
    result = image_swd(photos, photos.clone(), seed=3)
    assert result.per_level == [0.0, 0.0, 0.0]
    assert result.average == 0.0
    assert result.resolutions == [(64, 64), (32, 32), (16, 16)]


def test_more_blur_gives_larger_distance_at_every_level(photos):
    results = [image_swd(photos, gaussian_blur(photos, s)) for s in (0.5, 1.0, 2.0)]
    for level in range(3):
        values = [r.per_level[level] for r in results]
        assert values[0] < values[1] < values[2], values
    assert results[0].average > 1.0  # x 1e3 units: a visible blur is far from zero
    # Blur removes fine detail first: the finest level moves most.
    assert results[1].per_level[0] > results[1].per_level[-1]


def test_deterministic_given_a_seed(photos):
    blurred = gaussian_blur(photos, 1.0)
    first = image_swd(photos, blurred, seed=5)
    assert image_swd(photos, blurred, seed=5) == first
    other_seed = image_swd(photos, blurred, seed=6)
    assert other_seed != first
    assert other_seed.average == pytest.approx(first.average, rel=0.2)


def test_float_images_in_any_affine_range_give_the_same_distance(photos):
    blurred = gaussian_blur(photos, 1.0)
    from_uint8 = image_swd(photos, blurred)
    signed = image_swd(photos.float() / 127.5 - 1, blurred.float() / 127.5 - 1)
    np.testing.assert_allclose(signed.per_level, from_uint8.per_level, rtol=1e-4)


def test_streamed_descriptors_and_unequal_set_sizes(photos):
    blurred = gaussian_blur(photos, 1.0)
    resolutions = pyramid_resolutions(64, 64)
    whole = swd_from_descriptors(
        laplacian_descriptors(photos, seed=4), laplacian_descriptors(blurred, seed=4), resolutions
    )

    # Batches of 20 and 12 with their global offsets give exactly the descriptors of one call.
    def streamed(images):
        parts = [
            laplacian_descriptors(images[start : start + 20], seed=4, first_index=start)
            for start in (0, 20)
        ]
        return [torch.cat(level) for level in zip(*parts, strict=True)]

    assert swd_from_descriptors(streamed(photos), streamed(blurred), resolutions) == whole
    # Unequal sizes: the larger set is subsampled. The same photos probed at other positions
    # (indices 32..63) stay closer than different crops of the photos.
    resampled = image_swd(photos, torch.cat([photos, photos]), seed=4)
    different = image_swd(photos, photo_crops(32, 64, seed=9), seed=4)
    assert all(v > 0 for v in resampled.per_level)
    assert resampled.average < 0.6 * different.average


def test_sliced_wasserstein_of_shifted_points_by_hand():
    # Shifting a set by v moves every projection on unit u by u.v; the sorted differences are
    # all |u.v|, whose mean over random directions in 2-D is |v| * E|cos| = |v| * 2/pi.
    points = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([3.0, 4.0])
    d = sliced_wasserstein(points, points + shift, dir_repeats=8, dirs_per_repeat=512)
    assert d == pytest.approx(5.0 * 2 / np.pi, rel=0.03)
    with pytest.raises(ValueError, match="equal shapes"):
        sliced_wasserstein(points, points[:10])
