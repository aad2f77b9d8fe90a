"""The eval grid's report: results.csv (one row per cell and metric), results.md, a plot per
metric (``report_plots``) and report.html (``report_html``).

Built only from the cells' ``metrics.json`` files, so it can be rebuilt at any time (also while
a grid is still running) and always shows exactly what was measured. Every CSV row carries its
cell's protocol card (``lit_rpe.eval.protocol``); results.md states the card the cells share
once, above the tables, and marks each cell whose card differs, and each Fréchet distance whose
matrix square root had to be retried.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lit_rpe.eval.grid.published import published_table
from lit_rpe.eval.grid.report_html import best_per_column, write_html_report
from lit_rpe.eval.grid.report_plots import plot_file_name, plot_metric
from lit_rpe.eval.grid.spec import GridSpec
from lit_rpe.eval.protocol import (
    CARD_FIELDS,
    PER_CELL_FIELDS,
    CardComparison,
    ProtocolCard,
    compare_cards,
)

CELL_COLUMNS = [
    "model", "checkpoint", "kind", "rule", "resolution", "height", "width", "train_resolution",
]  # fmt: skip
# retried: whether a Fréchet distance's matrix square root was retried (empty for the others)
CSV_COLUMNS = [*CELL_COLUMNS, *CARD_FIELDS, "metric", "value", "retried"]
FRECHET_METRICS = ("fid", "sfid")
RETRIED = "†"
# Lower is better for these; the rest (IS, precision, recall) are higher-is-better.
LOWER_IS_BETTER = {"fid", "sfid", "kid", "swd", "val_loss"}
METRIC_TITLES = {
    "fid": "FID (pool_3, vs. the centre-cropped validation set)",
    "sfid": "sFID (mixed_6 spatial features)",
    "is": "Inception Score (10 splits)",
    "kid": "KID (x1, polynomial kernel)",
    "precision": "Precision (k = 3)",
    "recall": "Recall (k = 3)",
    "swd": "Sliced Wasserstein distance on Laplacian pyramids (x1e3, mean over levels)",
    "val_loss": "Flow-matching validation loss (fixed noise and t grid)",
}
METRIC_ORDER = list(METRIC_TITLES)


def collect_cells(spec: GridSpec) -> list[dict]:
    """The records of the cells of ``spec`` that are finished, in grid order."""
    records = []
    for entry in spec.models:
        for rule in spec.rules_of(entry):
            for h, w in spec.resolutions:
                path = Path(spec.out_dir) / "cells" / entry.name / rule.label / f"{h}x{w}"
                if (path / "metrics.json").is_file():
                    records.append(json.loads((path / "metrics.json").read_text()))
    return records


def record_card(record: dict) -> ProtocolCard | None:
    """The protocol card of a cell's record; None when it has none (or none readable)."""
    try:
        return ProtocolCard.from_dict(record["protocol"])
    except (KeyError, ValueError, TypeError):
        return None


def write_csv(records: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in records:
            card = record_card(r)
            for metric, value in r["metrics"].items():
                row = {k: r.get(k) for k in CELL_COLUMNS}
                row.update(card.as_row() if card is not None else {})
                row.update(
                    resolution=f"{r['height']}x{r['width']}",
                    metric=metric,
                    value=value,
                    retried=r.get(f"{metric}_retried", ""),
                )
                writer.writerow(row)


def _show(field: str, value) -> str:
    """A card value for results.md: hashes shortened to 12 characters, "" as "-"."""
    if value == "":
        return "-"
    return str(value)[:12] if field.endswith("sha256") else str(value)


def protocol_block(comparison: CardComparison) -> list[str]:
    """Markdown: the card the cells share, one setting per row."""
    lines = [
        "### Protocol",
        "",
        "Every cell below was scored under this card unless marked [n] (its differences are "
        f"listed under the table); {', '.join(PER_CELL_FIELDS)} follow the rule and resolution "
        "and are in results.csv with the rest of each cell's card.",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {field} | {_show(field, v)} |" for field, v in comparison.shared.items()]
    return [*lines, ""]


def difference_numbers(comparison: CardComparison) -> list[int]:
    """Per cell, the number of its set of differences (equal sets share one), 0 for none."""
    numbers: dict[tuple, int] = {}
    out = []
    for diff in comparison.differences:
        key = tuple(sorted(diff.items()))
        out.append(numbers.setdefault(key, len(numbers) + 1) if diff else 0)
    return out


def table_notes(
    records: list[dict], metric: str, comparison: CardComparison, numbers: list[int]
) -> tuple[list[str], list[str]]:
    """(each record's marks in ``metric``'s table, the notes listed under that table): [n] for
    a card that differs from the shared one, RETRIED for a retried Fréchet distance."""
    marks, differences, retries = [], {}, []
    for r, diff, n in zip(records, comparison.differences, numbers, strict=True):
        mark = ""
        if metric in r["metrics"] and n:
            mark += f" [{n}]"
            differences[n] = "; ".join(f"{k} = {_show(k, v)}" for k, v in diff.items())
        if metric in r["metrics"] and r.get(f"{metric}_retried"):
            mark += f" {RETRIED}"
            reason = r.get(f"{metric}_retry_reason")
            retries.append(
                f"- {RETRIED} {r['model']} / {r['rule']} at {r['height']}x{r['width']}: the matrix "
                f"square root was retried with an eps offset; {reason}"
            )
        marks.append(mark)
    notes = [f"- [{n}] differs from the protocol above: {text}" for n, text in differences.items()]
    return marks, notes + retries


def _format(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def metric_table(
    records: list[dict], metric: str, resolutions: list[str], marks: list[str] | None = None
) -> list[str]:
    """Markdown rows: one per model + rule, one column per resolution; best per column bold.
    marks: per record, text put after its value (footnote markers)."""
    rows: dict[str, dict[str, float]] = {}
    train: dict[str, str] = {}
    suffix: dict[tuple[str, str], str] = {}
    for i, r in enumerate(records):
        if metric in r["metrics"]:
            key, res = f"{r['model']} / {r['rule']}", f"{r['height']}x{r['width']}"
            rows.setdefault(key, {})[res] = r["metrics"][metric]
            train[key] = r["train_resolution"]
            suffix[key, res] = marks[i] if marks else ""
    if not rows:
        return []
    best = best_per_column(records, metric, metric in LOWER_IS_BETTER)  # the page's marks too
    lines = [
        f"### {METRIC_TITLES.get(metric, metric)}",
        "",
        "| model / rule | " + " | ".join(resolutions) + " |",
        "|---" * (len(resolutions) + 1) + "|",
    ]
    for key, values in rows.items():
        cells = []
        for res in resolutions:
            if res not in values:
                cells.append("n/a")
                continue
            text = _format(values[res])
            text = f"**{text}**" if values[res] == best.get(res) else text
            cells.append(text + suffix[key, res] + (" (train)" if res == train[key] else ""))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot(records: list[dict], out: Path) -> list[Path]:
    """One figure per measured metric against the resolution, named after it
    (``lit_rpe.eval.grid.report_plots``)."""
    present = {m for r in records for m in r["metrics"]}
    return [
        plot_metric(
            records, m, METRIC_TITLES.get(m, m), m in LOWER_IS_BETTER, out / plot_file_name(m)
        )
        for m in METRIC_ORDER
        if m in present
    ]


def write_report(spec: GridSpec, *, note: str = "", skipped: list[str] | None = None) -> Path:
    """Write results.csv, results.md, report.html and one ``<metric>_vs_resolution.png`` per
    metric under ``spec.out_dir``."""
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = collect_cells(spec)
    write_csv(records, out / "results.csv")
    plots = plot(records, out)
    resolutions = [f"{h}x{w}" for h, w in spec.resolutions]
    comparison = compare_cards([record_card(r) for r in records])
    numbers = difference_numbers(comparison)
    lines = [
        f"# Eval grid: {spec.name}",
        "",
        f"{len(records)} cells; references: the validation images of `{spec.val_shards}`, ADM "
        f"centre crop at each resolution; validation loss on {spec.val_loss_images} images x "
        f"{spec.val_loss_t} t values. Best value per column in bold; (train) marks the model's "
        f"training resolution; {RETRIED} a Fréchet distance whose matrix square root was retried.",
        "",
    ]
    if note:
        lines += [f"> {note}", ""]
    if records:
        lines += protocol_block(comparison)
    present = {m for r in records for m in r["metrics"]}
    for metric in [m for m in METRIC_ORDER if m in present]:
        marks, notes = table_notes(records, metric, comparison, numbers)
        lines += metric_table(records, metric, resolutions, marks)
        lines += [*notes, ""] if notes else []
    lines += published_table(spec.published or [], records)
    if skipped:
        lines += ["Cells not evaluated (the rule does not apply there):", ""]
        lines += [f"- {s}" for s in skipped] + [""]
    lines += [
        "Files: `report.html` (every cell's samples and metrics side by side), `results.csv` "
        "(one row per cell and metric), "
        + "".join(f"`{p.name}`, " for p in plots)
        + "`cells/<model>/<rule>/<H>x<W>/grid.png` (samples of each cell).",
        "",
    ]
    path = out / "results.md"
    path.write_text("\n".join(lines))
    write_html_report(spec, records, comparison, numbers, plots, note=note, skipped=skipped)
    return path
