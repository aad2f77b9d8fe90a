"""From the per-seed grids to the study's table: every (model, rule, resolution) cell of a data set
with each metric's mean over seeds, its 95 % interval across seeds, the bootstrap interval over
the pooled images (object metrics), and the paired difference to the same model's
``extrapolate`` at that resolution (what the rule changes)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lit_rpe.eval.grid.report import LOWER_IS_BETTER as GRID_LOWER_IS_BETTER
from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.eval.metrics.object_metrics import ObjectMeasures, summarize
from lit_rpe.study.intervals import (
    Interval,
    bootstrap_difference_intervals,
    bootstrap_intervals,
    paired_difference,
    seed_interval,
)
from lit_rpe.study.objects import concatenate, load_measures, measure_cell, reference_measures
from lit_rpe.study.objects import subset as subset_measures
from lit_rpe.study.plan import StudySet

OBJECT_METRICS = (
    "clean_correct",
    "clean",
    "fragmented",
    "duplicated",
    "class_accuracy",
    "rel_size_w1",
)
GRID_METRICS = ("val_loss", "swd", "fid", "is")
# the grid report's metrics, and the object metrics where less is better
LOWER_IS_BETTER = GRID_LOWER_IS_BETTER | {"fragmented", "duplicated", "rel_size_w1"}
BASE_RULE = "extrapolate"


@dataclass(frozen=True)
class CellKey:
    model: str
    rule: str
    height: int
    width: int

    @property
    def resolution(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass
class CellSeeds:
    """One cell over training seeds: metrics per seed, object measures per seed (shapes)."""

    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    measures: dict[int, tuple[ObjectMeasures, np.ndarray]] = field(default_factory=dict)

    def values(self, metric: str) -> dict[int, float]:
        return {s: m[metric] for s, m in self.metrics.items() if metric in m}

    def pooled(self) -> tuple[ObjectMeasures, np.ndarray]:
        seeds = sorted(self.measures)
        return (
            concatenate([self.measures[s][0] for s in seeds]),
            np.concatenate([self.measures[s][1] for s in seeds]),
        )


@dataclass
class StudyCells:
    """A data set's cells, keyed by (model, rule, resolution), and its reference measures."""

    name: str
    cells: dict[CellKey, CellSeeds]
    references: dict[tuple[int, int], ObjectMeasures]
    objects: bool

    def metrics(self) -> list[str]:
        present = {k for c in self.cells.values() for m in c.metrics.values() for k in m}
        return [m for m in (*OBJECT_METRICS, *GRID_METRICS) if m in present]


def load_cells(study_set: StudySet, seeds: tuple[int, ...]) -> StudyCells:
    """Read every finished cell of every seed's grid (measuring objects where asked)."""
    spec = load_grid(study_set.grid, check_files=False)
    root = Path(spec.out_dir)
    cells: dict[CellKey, CellSeeds] = {}
    references: dict[tuple[int, int], ObjectMeasures] = {}
    for seed in seeds:
        for path in sorted((root / f"seed{seed}" / "cells").glob("*/*/*/metrics.json")):
            record = json.loads(path.read_text())
            key = CellKey(record["model"], record["rule"], record["height"], record["width"])
            values = {k: float(v) for k, v in record["metrics"].items()}
            entry = cells.setdefault(key, CellSeeds())
            if study_set.objects:
                resolution = (key.height, key.width)
                if resolution not in references:
                    references[resolution] = reference_measures(spec.val_shards, resolution, root)[
                        0
                    ]
                measures, labels = load_measures(measure_cell(path.parent))
                entry.measures[seed] = (measures, labels)
                summary = summarize(measures, labels, references[resolution])
                values.update({k: summary[k] for k in OBJECT_METRICS})
            entry.metrics[seed] = values
    return StudyCells(study_set.name, cells, references, study_set.objects)


def object_statistic(study: StudyCells, key: CellKey):
    """(statistic(indices) -> object metrics, number of pooled images) of a cell."""
    measures, labels = study.cells[key].pooled()
    reference = study.references[(key.height, key.width)]

    def statistic(idx: np.ndarray) -> dict[str, float]:
        summary = summarize(subset_measures(measures, idx), labels[idx], reference)
        return {k: summary[k] for k in OBJECT_METRICS}

    return statistic, len(labels)


@dataclass(frozen=True)
class Comparison:
    """metric of cell ``a`` minus cell ``b``: across seeds (paired) and over pooled images."""

    a: CellKey
    b: CellKey
    metric: str
    seeds: Interval
    images: Interval | None

    @property
    def significant(self) -> bool:
        """The 95 % interval across seeds excludes zero (the strict test of the two)."""
        return self.seeds.excludes_zero

    @property
    def better(self) -> bool:
        return is_better(self.metric, self.seeds.estimate)


def is_better(metric: str, difference: float) -> bool:
    """Whether ``a - b = difference`` of ``metric`` favours ``a``."""
    return (difference < 0) == (metric in LOWER_IS_BETTER)


def compare(study: StudyCells, a: CellKey, b: CellKey, resamples: int = 1000) -> list[Comparison]:
    """Every metric of ``a - b`` (cells at the same resolution)."""
    if (a.height, a.width) != (b.height, b.width):
        raise ValueError(f"compare cells at one resolution: {a} vs {b}")
    boot = {}
    if study.objects and resamples > 0:
        stat_a, n_a = object_statistic(study, a)
        stat_b, n_b = object_statistic(study, b)
        boot = bootstrap_difference_intervals(stat_a, n_a, stat_b, n_b, resamples=resamples)
    cells = study.cells
    return [
        Comparison(a, b, m, paired_difference(cells[a].values(m), cells[b].values(m)), boot.get(m))
        for m in study.metrics()
    ]


@dataclass(frozen=True)
class Row:
    """One metric of one cell, aggregated."""

    key: CellKey
    metric: str
    seeds: Interval
    images: Interval | None
    vs_base: Comparison | None


def aggregate(study: StudyCells, resamples: int = 1000) -> list[Row]:
    """Every cell x metric of a data set, in model, rule, resolution order."""
    rows = []
    for key in sorted(study.cells, key=lambda k: (k.model, k.rule, k.height, k.width)):
        boot = {}
        if study.objects:
            statistic, num = object_statistic(study, key)
            boot = bootstrap_intervals(statistic, num, resamples=resamples)
        base = CellKey(key.model, BASE_RULE, key.height, key.width)
        versus = {}
        if key.rule != BASE_RULE and base in study.cells:
            # the marks and the CSV use the paired seed interval only: no bootstrap needed
            versus = {c.metric: c for c in compare(study, key, base, resamples=0)}
        for metric in study.metrics():
            values = study.cells[key].values(metric)
            rows.append(
                Row(
                    key,
                    metric,
                    seed_interval(values.values()),
                    boot.get(metric),
                    versus.get(metric),
                )
            )
    return rows


def _fields(interval: Interval | None, prefix: str) -> dict[str, float]:
    if interval is None:
        return {f"{prefix}_low": math.nan, f"{prefix}_high": math.nan}
    return {f"{prefix}_low": interval.low, f"{prefix}_high": interval.high}


def write_rows(rows_by_set: dict[str, list[Row]], path: Path) -> Path:
    """The study's CSV: one line per data set x cell x metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = None
        for name, rows in rows_by_set.items():
            for row in rows:
                line = {
                    "set": name,
                    "model": row.key.model,
                    "rule": row.key.rule,
                    "height": row.key.height,
                    "width": row.key.width,
                    "metric": row.metric,
                    "seeds": row.seeds.n,
                    "mean": row.seeds.estimate,
                    **_fields(row.seeds, "seed"),
                    "pooled": row.images.estimate if row.images else math.nan,
                    **_fields(row.images, "bootstrap"),
                    "vs_extrapolate": row.vs_base.seeds.estimate if row.vs_base else math.nan,
                    **_fields(row.vs_base.seeds if row.vs_base else None, "vs_extrapolate"),
                    "vs_extrapolate_significant": bool(row.vs_base and row.vs_base.significant),
                }
                if out is None:
                    out = csv.DictWriter(f, fieldnames=list(line))
                    out.writeheader()
                out.writerow(
                    {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in line.items()}
                )
    return path
