"""Object metrics on rendered shapes scenes with known answers: counts, sizes, classes, blur."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lit_rpe.eval.metrics.object_metrics import (
    Layout,
    Thresholds,
    layout_of,
    measure_objects,
    summarize,
)
from lit_rpe.prep.shapes import (
    CLASSES,
    COLOURS,
    Scene,
    ShapeObject,
    class_parts,
    draw_background,
    draw_scene,
    render_scene,
    render_scenes,
    smallest_object_area,
)

RESOLUTIONS = (16, 24, 32, 48, 64)
# centres of up to three non-touching objects of long side <= 0.34
PLACES = ((0.25, 0.25), (0.72, 0.3), (0.35, 0.74))


def scene_with(labels, sizes, seed=0, places=PLACES):
    """A drawn background with objects of the given labels and sizes at ``places``."""
    rng = np.random.default_rng(seed)
    objects = []
    for label, size, (cx, cy) in zip(labels, sizes, places, strict=False):
        colour, shape = class_parts(label)
        objects.append(ShapeObject(shape, colour, COLOURS[colour][1], cx, cy, size))
    return Scene(draw_background(rng), tuple(objects))


def data_scenes(count, seed=0):
    return [draw_scene(i % len(CLASSES), [seed, 7, i % len(CLASSES), i]) for i in range(count)]


def blur(images, sigma):
    smooth = ndimage.gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0))
    return np.clip(np.round(smooth), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_counts_zero_to_three_objects(resolution):
    rng = np.random.default_rng(resolution)
    scenes, expected = [], []
    for i in range(40):
        k = i % 4
        labels = rng.integers(0, 10, size=k)
        sizes = rng.uniform(0.3, 0.34, size=k)  # each one a duplicate-sized object
        scenes.append(scene_with(labels, sizes, seed=i))
        expected.append(k)
    measured = measure_objects(render_scenes(scenes, resolution))
    assert measured.count.tolist() == expected
    layouts = [Layout.NONE, Layout.CLEAN, Layout.DUPLICATED, Layout.DUPLICATED]
    assert measured.layout.tolist() == [layouts[k] for k in expected]
    assert np.isnan(measured.rel_size[measured.count == 0]).all()
    assert (measured.predicted[measured.count == 0] == -1).all()


def test_layout_from_component_areas():
    """Closed forms at 64 x 64: the smallest data object covers 0.125 of the canvas (512 px),
    so a second object needs 0.2 x 512 = 102.4 px; one object is clean below 10 % stray."""
    assert smallest_object_area() == pytest.approx(0.125)
    assert Thresholds().object_pixels(64, 64) == pytest.approx(102.4)
    assert layout_of([], 64, 64)[0] == Layout.NONE
    assert layout_of([30], 64, 64)[0] == Layout.NONE  # below min_area (41 px): noise
    assert layout_of([500], 64, 64)[:2] == (Layout.CLEAN, 1)
    assert layout_of([500, 20, 20], 64, 64)[0] == Layout.CLEAN  # 8 % stray
    layout, count, stray = layout_of([500, 30, 30], 64, 64)
    assert (layout, count, stray) == (Layout.FRAGMENTED, 1, pytest.approx(0.12))
    assert layout_of([60, 50], 64, 64)[:2] == (Layout.FRAGMENTED, 0)  # pieces, none object-sized
    assert layout_of([103, 500], 64, 64)[:2] == (Layout.DUPLICATED, 2)
    # the same pixel counts at 32 x 32 are four times the share of the canvas
    assert layout_of([30], 32, 32)[:2] == (Layout.CLEAN, 1)


def test_specks_make_a_fragmented_object_and_a_second_bar_a_duplicate():
    places = [(0.3, 0.3), (0.8, 0.12), (0.8, 0.4), (0.15, 0.8), (0.5, 0.8)]
    # at 64 px: a 0.5 bar is 512 px; a 0.15 bar 46 px, below the 102 px of a second object
    specks = measure_objects(
        render_scene(scene_with([6] * 5, [0.5] + [0.15] * 4, places=places), 64)
    )
    assert specks.layout.tolist() == [Layout.FRAGMENTED] and specks.count.tolist() == [1]
    assert specks.stray[0] == pytest.approx(4 * 46 / 512, rel=0.15)
    one_speck = measure_objects(render_scene(scene_with([6, 6], [0.5, 0.15], places=places), 64))
    assert one_speck.layout.tolist() == [Layout.CLEAN]
    second = measure_objects(render_scene(scene_with([6, 6], [0.5, 0.3], places=places), 64))
    assert second.layout.tolist() == [Layout.DUPLICATED] and second.count.tolist() == [2]
    with pytest.raises(ValueError, match="second_object"):
        Thresholds(second_object=0.0)


def test_layout_fractions_and_class_accuracy_in_the_summary():
    scenes = [scene_with([3] * k, [0.32] * k, seed=k) for k in (0, 1, 1, 2, 1, 3, 1, 1)]
    # image 4 is labelled with another colour, image 6 with the same colour's other shape
    labels = np.array([3, 3, 3, 3, 4, 3, 2, 3])
    summary = summarize(measure_objects(render_scenes(scenes, 32)), labels)
    assert summary["clean"] == pytest.approx(5 / 8)
    assert summary["no_object"] == pytest.approx(1 / 8)
    assert summary["duplicated"] == pytest.approx(2 / 8)
    assert summary["fragmented"] == 0.0
    assert summary["mean_count"] == pytest.approx(10 / 8)
    # the empty image counts as wrong, so do the two mislabelled ones; the colour alone
    # is right for image 6 (class 2 and 3 are the green flat and tall bars)
    assert summary["class_accuracy"] == pytest.approx(5 / 8)
    assert summary["colour_accuracy"] == pytest.approx(6 / 8)
    # clean and of the label's class: images 1, 2 and 7
    assert summary["clean_correct"] == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="labels for"):
        summarize(measure_objects(render_scenes(scenes, 32)), labels[:3])


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_known_sizes_and_centres(resolution):
    """sqrt(area) / side: s / sqrt(2) for a 2 : 1 bar of long side s, within a pixel."""
    for size in (0.5, 0.6, 0.75):
        for label in (6, 7):  # the red flat and tall bars
            scene = scene_with([label], [size], places=[(0.45, 0.55)])
            measured = measure_objects(render_scene(scene, resolution))
            assert measured.rel_size[0] == pytest.approx(size / np.sqrt(2), abs=1 / resolution)
            assert measured.centre[0] == pytest.approx((0.45, 0.55), abs=1 / resolution)


def test_size_distance_to_a_reference():
    small = [scene_with([2], [0.4 * np.sqrt(2)], seed=i, places=[(0.5, 0.5)]) for i in range(10)]
    large = [scene_with([2], [0.5 * np.sqrt(2)], seed=i, places=[(0.5, 0.5)]) for i in range(10)]
    ref = measure_objects(render_scenes(small, 64))
    labels = np.full(10, 2)
    same = summarize(measure_objects(render_scenes(small, 64)), labels, reference=ref)
    assert same["rel_size_w1"] == 0.0
    moved = summarize(measure_objects(render_scenes(large, 64)), labels, reference=ref)
    assert moved["rel_size_w1"] == pytest.approx(0.1, abs=1 / 64)
    assert moved["ref_rel_size_mean"] == pytest.approx(0.4, abs=1 / 64)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_class_detection_on_clean_renders(resolution):
    scenes = data_scenes(200, seed=resolution)
    labels = np.array([s.label for s in scenes])
    measured = measure_objects(render_scenes(scenes, resolution))
    assert np.mean(measured.predicted == labels) >= 0.95
    summary = summarize(measured, labels)
    assert summary["clean"] == 1.0 and summary["class_accuracy"] >= 0.95


def test_blurred_edges_are_wider_than_sharp_ones():
    scenes = data_scenes(40, seed=1)
    sharp = render_scenes(scenes, 64)
    widths = [np.nanmean(measure_objects(sharp).edge_width)]
    for sigma in (0.5, 1.0, 2.0):
        widths.append(np.nanmean(measure_objects(blur(sharp, sigma)).edge_width))
    assert 1.0 <= widths[0] <= 2.0  # an anti-aliased step: 1 to 2 px by sub-pixel phase
    assert widths == sorted(widths) and widths[2] > 2 * widths[0]
    assert widths[2] == pytest.approx(3.54, rel=0.15)  # 2 sqrt(pi) sigma for a Gaussian edge
    # what interpolation gives: a 32 px picture upsampled to 64 px vs a true 64 px render
    upsampled = np.stack(
        [
            np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BICUBIC))
            for image in render_scenes(scenes, 32)
        ]
    )
    assert np.nanmean(measure_objects(upsampled).edge_width) > 1.6 * widths[0]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        measure_objects(np.zeros((2, 16, 16, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        measure_objects(np.zeros((2, 3, 16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="too small"):
        measure_objects(np.zeros((1, 2, 2, 3), dtype=np.uint8))
