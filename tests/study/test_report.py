"""Stages 3-5 of the study on cells with known answers: true renders (one object of the right
class and size) against side-by-side duplicates, and validation losses with a known gap; the
CSV, the tables and RESULTS.md must say exactly that, with intervals and significance marks."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from lit_rpe.prep.shapes import CLASSES, draw_scene, render_scenes
from lit_rpe.prep.shapes_shards import build_shapes_set
from lit_rpe.study.plan import StudyPlan, StudySet
from lit_rpe.study.report import write_study

SEEDS = (1, 2, 3)
N = 20  # images per cell and seed


def scenes_for(seed: int, res: int, duplicated: bool) -> np.ndarray:
    """Image i: a scene of label i % 10; ``duplicated``: two half-width scenes side by side."""
    scenes = [draw_scene(i % len(CLASSES), [seed, i]) for i in range(N)]
    if not duplicated:
        return render_scenes(scenes, res)
    half = render_scenes(scenes, (res, res // 2))
    return np.concatenate([half, half], axis=2)


def write_cell(root, seed, model, rule, res, images, val_loss):
    cell = root / f"seed{seed}" / "cells" / model / rule / f"{res}x{res}"
    (cell / "images").mkdir(parents=True)
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(cell / "images" / f"{i:06d}.png")
    Image.fromarray(images[0]).save(cell / "grid.png")
    record = dict(model=model, rule=rule, height=res, width=res, metrics={"val_loss": val_loss})
    (cell / "metrics.json").write_text(json.dumps(record))


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_shapes_set(
        "data/shapes", train_per_class=1, val_per_class=4, image_size=32, progress=False
    )
    grid = {
        "name": "toy",
        "out_dir": "runs/toy",
        "val_shards": "data/shapes/val",
        "models": [
            {"name": m, "checkpoint": f"runs/study_cpu/shapes/{m}/checkpoints/last.ckpt"}
            for m in ("rope_grid", "rpe2d_rope")
        ],
        "rules": ["extrapolate", "rpe2d_even"],
        "resolutions": [16, 32],
        "num_images": N,
    }
    (tmp_path / "grid.yaml").write_text(json.dumps(grid))
    root = tmp_path / "runs/toy"
    for seed in SEEDS:
        for res in (16, 32):
            good = scenes_for(seed, res, duplicated=False)
            twice = scenes_for(seed, res, duplicated=True)
            write_cell(root, seed, "rope_grid", "extrapolate", res, good, 0.5 + 0.01 * seed)
            # the same level per seed as the baseline minus exactly 0.1: a significant gain
            write_cell(root, seed, "rpe2d_rope", "rpe2d_even", res, twice, 0.4 + 0.01 * seed)
    plan = StudyPlan(sets=(StudySet("shapes", "grid.yaml", objects=True),), seeds=SEEDS)
    timings = {"train": (60.0, 100.0), "machine": "the machine the study ran on"}
    path = write_study(plan, tmp_path / "runs/study_cpu", timings)
    return tmp_path, path


def rows_of(tmp_path):
    with (tmp_path / "docs/study_cpu/study.csv").open() as f:
        return {(r["model"], r["height"], r["metric"]): r for r in csv.DictReader(f)}


def test_true_renders_score_one_object_of_the_right_class_and_duplicates_do_not(study):
    tmp_path, _ = study
    rows = rows_of(tmp_path)
    for res in ("16", "32"):
        good = {
            m: float(rows[("rope_grid", res, m)]["mean"])
            for m in ("clean_correct", "clean", "class_accuracy", "duplicated", "fragmented")
        }
        assert good == {
            "clean_correct": 1.0, "clean": 1.0, "class_accuracy": 1.0, "duplicated": 0.0,
            "fragmented": 0.0,
        }  # fmt: skip
        assert float(rows[("rope_grid", res, "rel_size_w1")]["mean"]) < 0.1
        assert float(rows[("rpe2d_rope", res, "duplicated")]["mean"]) == 1.0
        assert float(rows[("rpe2d_rope", res, "clean_correct")]["mean"]) == 0.0
    # identical per-seed fractions: a zero-width interval across seeds and over images
    row = rows[("rope_grid", "32", "clean_correct")]
    assert float(row["seed_low"]) == float(row["seed_high"]) == 1.0
    assert float(row["bootstrap_low"]) == 1.0 and int(row["seeds"]) == 3
    loss = rows[("rope_grid", "32", "val_loss")]
    assert float(loss["mean"]) == pytest.approx(0.52)
    assert float(loss["seed_high"]) - float(loss["mean"]) == pytest.approx(
        4.302653 * 0.01 / 3**0.5, rel=1e-4
    )


def test_results_mark_what_is_significant_and_quote_the_csv(study):
    tmp_path, path = study
    text = path.read_text()
    lines = text.splitlines()
    # headline: rpe2d_rope under its own rule, marked against rope_grid (extrapolate)
    one = lines.index(
        next(l for l in lines if l.startswith("**Fraction with one clean object of the label"))
    )
    row = next(l for l in lines[one:] if l.startswith("| rpe2d_rope (rpe2d_even)"))
    assert row.count("▼") == 2  # fewer single objects at both resolutions, significantly
    loss = lines.index(next(l for l in lines if l.startswith("**Flow-matching validation loss")))
    row = next(l for l in lines[loss:] if l.startswith("| rpe2d_rope (rpe2d_even)"))
    assert row.count("▲") == 2 and "0.42 ±0.025" in row
    # the comparison the reading relies on: exactly -0.1, significant
    diff = next(l for l in lines if l.startswith("| RPE-2D vs RoPE extrapolated | val_loss"))
    assert diff.count("-0.1 [") == 2 and diff.count("✱") == 2
    dup = next(l for l in lines if l.startswith("| RPE-2D vs RoPE extrapolated | duplicated"))
    assert "+1 [" in dup and "(img [1, 1])" in dup
    assert "_(reading not written yet)_" in text and "train 1.0 min wall" in text
    # the machine recorded when the study started, not the one writing the report
    assert "on the machine the study ran on, 2 processes" in text
    for name in (
        "shapes_models.png",
        "shapes_rules.png",
        "samples_shapes_rpe2d_rope.png",
        "tables_shapes.md",
    ):
        assert (tmp_path / "docs/study_cpu" / name).is_file(), name
    assert "![rpe2d_rope](study_cpu/samples_shapes_rpe2d_rope.png)" in text
    # the study's page, on the same code path, linked from RESULTS.md's header
    assert "[study_cpu/report.html](study_cpu/report.html)" in "\n".join(lines[:6])
    page = (tmp_path / "docs/study_cpu/report.html").read_text()
    assert 'src="samples_shapes_rpe2d_rope.png"' in page
    assert "rpe2d_rope (own rule: rpe2d_even)" in page and "32x32 (train)" in page
