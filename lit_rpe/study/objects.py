"""Object metrics of the shapes study's grid cells: every generated image measured
(``lit_rpe.eval.metrics.object_metrics``) and saved next to the cell, against true renders of the
validation scenes at the cell's own resolution.

A cell's images ``<cell>/images/<i:06d>.png`` were generated for label ``i % num_classes``
(``lit_rpe.sampling.sampler.seeds_and_labels``); its measures go to ``<cell>/objects.npz`` and are
recomputed when the cell's ``metrics.json`` is newer (the cell was re-scored).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from lit_rpe.eval.generation import read_images
from lit_rpe.eval.metrics.object_metrics import ObjectMeasures, measure_objects
from lit_rpe.prep.shapes import CLASSES
from lit_rpe.prep.shapes_shards import load_scenes, reference_renders
from lit_rpe.sampling.sampler import seeds_and_labels

REFERENCE_IMAGES = 1000  # the whole shapes validation split (or all a smaller one has)
FIELDS = tuple(f.name for f in fields(ObjectMeasures))


def save_measures(path: Path, measures: ObjectMeasures, labels: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, labels=labels, **{f: getattr(measures, f) for f in FIELDS})
    tmp.replace(path)


def load_measures(path: Path) -> tuple[ObjectMeasures, np.ndarray]:
    """(measures, labels) saved by ``save_measures``."""
    with np.load(path) as data:
        return ObjectMeasures(*(data[f] for f in FIELDS)), data["labels"]


def subset(measures: ObjectMeasures, indices: np.ndarray) -> ObjectMeasures:
    return ObjectMeasures(*(getattr(measures, f)[indices] for f in FIELDS))


def concatenate(parts: list[ObjectMeasures]) -> ObjectMeasures:
    return ObjectMeasures(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))


def reference_measures(val_shards: str, resolution: tuple[int, int], cache: Path):
    """Measures of the validation scenes rendered at ``resolution`` (cached in ``cache``)."""
    h, w = resolution
    path = cache / f"reference_{h}x{w}.npz"
    if not path.is_file():
        available = len(load_scenes(val_shards, REFERENCE_IMAGES))
        images, labels = reference_renders(val_shards, (h, w), available)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_measures(path, measure_objects(images), labels)
    return load_measures(path)


def measure_cell(cell: Path) -> Path:
    """Measure the images of one finished cell (if not done since it was scored)."""
    path = cell / "objects.npz"
    if path.is_file() and path.stat().st_mtime >= (cell / "metrics.json").stat().st_mtime:
        with np.load(path) as saved:
            if set(FIELDS) <= set(saved.files):  # else measured by an older metric: redo
                return path
    num = len(list((cell / "images").glob("*.png")))
    labels, _ = seeds_and_labels(range(num), seed=0, num_classes=len(CLASSES))
    save_measures(path, measure_objects(read_images(cell / "images", range(num))), labels)
    return path
