"""The shapes data set: scenes render the same at any resolution, deterministically, and the
shards round-trip through the suite's reader."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lit_rpe.eval.metrics.object_metrics import chroma, measure_objects
from lit_rpe.prep.shapes import (
    CLASSES,
    COLOURS,
    SHAPES,
    SIZE_RANGE,
    Scene,
    ShapeObject,
    class_parts,
    draw_background,
    draw_scene,
    object_coverage,
    render_scene,
    render_scenes,
)
from lit_rpe.prep.shapes_shards import build_shapes_set, load_scenes, reference_renders
from lit_rpe.training.data import ImageShardDataModule, expand_shards, iter_tar_samples

RESOLUTIONS = (16, 24, 32, 48, 64)


def scenes(count: int, seed: int = 0) -> list[Scene]:
    return [draw_scene(i % len(CLASSES), [seed, 9, i % len(CLASSES), i]) for i in range(count)]


def test_classes_are_colour_times_shape_in_sorted_order():
    assert len(CLASSES) == len(COLOURS) * len(SHAPES) == 10
    assert list(CLASSES) == sorted(CLASSES)
    for label, name in enumerate(CLASSES):
        colour, shape = class_parts(label)
        assert name == f"{COLOURS[colour][0]}_{SHAPES[shape][0]}"
    with pytest.raises(ValueError, match="label must be in"):
        class_parts(10)


def test_drawn_scenes_follow_their_distribution():
    drawn = scenes(400)
    objects = [s.objects[0] for s in drawn]
    sizes = np.array([o.size for o in objects])
    assert SIZE_RANGE[0] <= sizes.min() and sizes.max() <= SIZE_RANGE[1]
    for o in objects:  # fully inside the canvas
        assert o.size / 2 < o.cx < 1 - o.size / 2 and o.size / 2 < o.cy < 1 - o.size / 2
    assert [s.label for s in drawn] == [i % 10 for i in range(400)]
    assert draw_scene(3, [1, 2, 3, 4]) == draw_scene(3, [1, 2, 3, 4])
    assert draw_scene(3, [1, 2, 3, 4]) != draw_scene(3, [1, 2, 3, 5])


def test_coverage_integrates_to_the_shape_area():
    """Sum of coverage = long side^2 / 2 for a 2 : 1 bar, in pixels, at every resolution."""
    for res in RESOLUTIONS:
        for shape, (_, aspect) in enumerate(SHAPES):
            obj = ShapeObject(shape, 0, 0.0, cx=0.47, cy=0.53, size=0.43)
            coverage, _, _ = object_coverage(obj, res, res)
            assert min(aspect, 1 / aspect) == 0.5
            expected = 0.5 * (0.43 * res) ** 2
            assert coverage.sum() == pytest.approx(expected, rel=0.02, abs=0.3)


def test_a_scene_is_the_same_picture_at_every_resolution():
    """Box-averaging the 64 px render into 16 px gives the 16 px render (area averages)."""
    drawn = scenes(60)
    big = render_scenes(drawn, 64).astype(np.float64)
    small = render_scenes(drawn, 16).astype(np.float64)
    pooled = big.reshape(60, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    assert np.abs(pooled - small).mean() < 1.0  # grey levels
    assert np.abs(pooled - small).max() < 0.06 * 255  # sub-pixel coverage sampling on edges


def test_relative_size_and_centre_agree_between_16_and_64_px():
    drawn = scenes(100, seed=4)
    at16 = measure_objects(render_scenes(drawn, 16))
    at64 = measure_objects(render_scenes(drawn, 64))
    assert (at16.count == 1).all() and (at64.count == 1).all()
    # sqrt(area): half a pixel on every edge of a 4 x 8 px bar moves it by about a pixel
    assert np.abs(at16.rel_size - at64.rel_size).max() < 1.25 / 16
    assert np.abs(at16.centre - at64.centre).max() < 1 / 16


def test_non_square_canvas_keeps_the_object_shape_and_place():
    obj = ShapeObject(1, 3, 0.0, cx=0.3, cy=0.6, size=0.5)  # a tall bar
    scene = Scene(draw_background(np.random.default_rng(0)), (obj,))
    image = render_scene(scene, (32, 64))  # height 32, width 64
    assert image.shape == (32, 64, 3)
    ys, xs = np.nonzero(chroma(image) > 0.4)
    assert xs.max() - xs.min() + 1 == pytest.approx(8, abs=1)  # 0.25 x the short side
    assert ys.max() - ys.min() + 1 == pytest.approx(16, abs=1)  # 0.5 x the short side
    assert (xs.mean() + 0.5) / 64 == pytest.approx(0.3, abs=1 / 64)
    assert (ys.mean() + 0.5) / 32 == pytest.approx(0.6, abs=1 / 32)
    with pytest.raises(ValueError, match="resolution"):
        render_scene(scene, (0, 8))


def test_backgrounds_are_far_from_object_colours_in_saturation():
    rng = np.random.default_rng(1)
    empty = [Scene(draw_background(rng), ()) for _ in range(200)]
    backgrounds = chroma(render_scenes(empty, 32))
    assert backgrounds.max() < 0.06
    objects = chroma(render_scene(Scene(empty[0].background, scenes(1)[0].objects), 64))
    assert objects.max() == pytest.approx(0.765, abs=0.01)


def test_scene_records_round_trip_and_reject_garbage():
    scene = scenes(1)[0]
    assert Scene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene
    with pytest.raises(ValueError, match="not a shapes scene record"):
        Scene.from_dict({"objects": []})
    record = scene.to_dict()
    record["objects"][0]["shape"] = 5
    with pytest.raises(ValueError, match="no shape 5"):
        Scene.from_dict(record)
    with pytest.raises(ValueError, match="one object"):
        _ = Scene(scene.background, ()).label


def build(out, **kwargs):
    settings = dict(train_per_class=3, val_per_class=2, image_size=32, shard_size=8)
    return build_shapes_set(out, **{**settings, **kwargs, "progress": False})


def test_build_is_deterministic_and_idempotent(tmp_path, offline):
    build(tmp_path / "a", workers=2)
    build(tmp_path / "b")
    build(tmp_path / "c", seed=1)
    shards = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.tar"))
    assert len(shards) == 4 + 3  # 30 train / 8, 20 val / 8
    for shard in shards:
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    assert (tmp_path / "a" / shards[0]).read_bytes() != (tmp_path / "c" / shards[0]).read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}
    again = build(tmp_path / "a")
    assert again["train"].written == again["val"].written == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    with pytest.raises(FileExistsError, match="other inputs or settings"):
        build(tmp_path / "a", image_size=48)
    with pytest.raises(ValueError, match="image_size >= 8"):
        build(tmp_path / "d", image_size=4)


def test_a_folder_of_another_build_stops_the_script_with_one_line(tmp_path):
    """E.g. data/shapes of the squares-and-triangles format under ``make study``: one line that
    says what to do, exit 1, no traceback, and the old shards left as they were."""
    script = Path(__file__).resolve().parents[2] / "data" / "build_shapes.py"
    args = [
        sys.executable,
        str(script),
        "--out",
        str(tmp_path),
        "--no-progress",
        "--train-per-class",
        "1",
        "--val-per-class",
        "1",
        "--image-size",
        "8",
        "--workers",
        "1",
    ]
    assert subprocess.run(args, capture_output=True, timeout=120).returncode == 0
    manifest = tmp_path / "val" / "shards.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "plan_id": "a build of an older format"}))
    shards = {p: p.read_bytes() for p in tmp_path.rglob("*.tar")}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("lit-rpe: ") and "delete this one" in done.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.tar")} == shards


def test_shards_round_trip_through_the_reader(tmp_path, offline):
    build(tmp_path)
    assert json.loads((tmp_path / "classes.json").read_text()) == {
        name: i for i, name in enumerate(CLASSES)
    }
    samples = [s for shard in expand_shards(str(tmp_path / "val")) for s in iter_tar_samples(shard)]
    assert sorted(int(s.fields["cls"]) for s in samples) == sorted(list(range(10)) * 2)
    for sample in samples:
        scene = Scene.from_dict(json.loads(sample.fields["json"]))
        with Image.open(io.BytesIO(sample.fields["png"])) as png:
            assert np.array_equal(np.asarray(png.convert("RGB")), render_scene(scene, 32))
        assert scene.label == int(sample.fields["cls"])

    loaded = load_scenes(str(tmp_path / "val"))
    assert [key for key, _, _ in loaded] == [s.key for s in samples]
    images, labels = reference_renders(str(tmp_path / "val"), 48, 12)
    assert images.shape == (12, 48, 48, 3) and labels.tolist() == [x[1] for x in loaded[:12]]
    assert np.array_equal(images[0], render_scene(loaded[0][2], 48))
    with pytest.raises(ValueError, match="fewer than"):
        reference_renders(str(tmp_path / "val"), 16, 21)

    data = ImageShardDataModule(
        str(tmp_path / "train"), str(tmp_path / "val"), resolution=16, batch_size=10, num_workers=0
    )
    assert data.num_classes == 10
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (10, 3, 16, 16) and batch["label"].max() < 10
