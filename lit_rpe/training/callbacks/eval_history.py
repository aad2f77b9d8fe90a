"""The curves of ``ResolutionEvalCallback``: rows of (step, cell, metric, value), their CSV, a
figure of each metric against the training step, and markdown tables of them.

A cell is named ``<H>x<W>/<rule label>`` (``512x512/rpe2d_even``); its logger keys are
``eval/<metric>/<cell>``. The history is the callback's checkpoint state, so the files written
from it are always exactly what a resumed run knows: never a gap, never a step twice.
"""

from __future__ import annotations

import csv
import os
from dataclasses import astuple, dataclass
from pathlib import Path

from lit_rpe.eval.grid.report import LOWER_IS_BETTER, METRIC_ORDER, METRIC_TITLES
from lit_rpe.eval.grid.report_plots import line_style

CSV_COLUMNS = ("step", "cell", "metric", "value")


@dataclass(frozen=True)
class HistoryRow:
    """One number of the curves: ``metric`` of ``cell`` after ``step`` optimizer steps."""

    step: int
    cell: str
    metric: str
    value: float

    @property
    def log_key(self) -> str:
        return f"eval/{self.metric}/{self.cell}"


class EvalHistory:
    """Every evaluated number of a run, in evaluation order."""

    def __init__(self, rows: list[HistoryRow] | None = None):
        self.rows: list[HistoryRow] = list(rows or [])

    def steps(self) -> list[int]:
        """The evaluated steps, ascending."""
        return sorted({r.step for r in self.rows})

    def add(self, step: int, cell: str, metrics: dict[str, float]) -> list[HistoryRow]:
        new = [HistoryRow(step, cell, name, float(value)) for name, value in metrics.items()]
        self.rows += new
        return new

    def state_dict(self) -> dict:
        """Plain lists (the checkpoint's weights-only loader takes them)."""
        return {"rows": [list(astuple(r)) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [HistoryRow(int(s), str(c), str(m), float(v)) for s, c, m, v in state["rows"]]

    def write_csv(self, path: Path) -> Path:
        """Write all rows to ``path`` (whole, then renamed: readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(astuple(r) for r in self.rows)
        tmp.replace(path)
        return path

    def plot(self, path: Path) -> Path:
        """One panel per metric against the training step, one line per cell."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        metrics = _ordered_metrics(self.rows)
        cells = list(dict.fromkeys(r.cell for r in self.rows))
        cols = min(3, max(1, len(metrics)))
        rows = -(-max(1, len(metrics)) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
        for ax, metric in zip(axes.flat, metrics, strict=False):
            for i, cell in enumerate(cells):  # styles differ: equal curves stay visible
                points = sorted(
                    (r.step, r.value) for r in self.rows if (r.metric, r.cell) == (metric, cell)
                )
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, label=cell, **line_style(i))
            better = "lower" if metric in LOWER_IS_BETTER else "higher"
            ax.set_title(f"{METRIC_TITLES.get(metric, metric)}\n({better} is better)", fontsize=8)
            ax.set_xlabel("training step")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(metrics) :]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(handles)), fontsize=7)
            fig.tight_layout(rect=(0, 0.04 + 0.03 * (len(handles) // 4), 1, 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def read_history_csv(path: Path) -> list[HistoryRow]:
    """The rows of a ``history.csv``."""
    with Path(path).open(newline="") as f:
        return [
            HistoryRow(int(r["step"]), r["cell"], r["metric"], float(r["value"]))
            for r in csv.DictReader(f)
        ]


def markdown_tables(rows: list[HistoryRow]) -> list[str]:
    """One markdown table per metric: a row per evaluated step, a column per cell."""
    lines: list[str] = []
    cells = list(dict.fromkeys(r.cell for r in rows))
    for metric in _ordered_metrics(rows):
        values = {(r.step, r.cell): r.value for r in rows if r.metric == metric}
        lines += [
            f"{METRIC_TITLES.get(metric, metric)}:",
            "",
            "| step | " + " | ".join(cells) + " |",
            "|---" * (len(cells) + 1) + "|",
        ]
        for step in sorted({s for s, _ in values}):
            text = [f"{values[step, c]:.4g}" if (step, c) in values else "n/a" for c in cells]
            lines.append(f"| {step} | " + " | ".join(text) + " |")
        lines.append("")
    return lines


def _ordered_metrics(rows: list[HistoryRow]) -> list[str]:
    present = {r.metric for r in rows}
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))
