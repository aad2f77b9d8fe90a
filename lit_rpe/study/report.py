"""``docs/RESULTS.md`` from the study's aggregated cells: provenance, the reading (written by a
person in ``docs/study_reading.md``), headline tables, the comparisons the reading relies on,
plots and sample strips. Full tables of every rule go to ``docs/study_cpu/tables_<set>.md``, every
number to ``docs/study_cpu/study.csv``; all of them come from the same ``Row`` objects."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.posenc import parse_rule
from lit_rpe.precision import machine_description, trained_precision
from lit_rpe.provenance import suite_commit
from lit_rpe.study.aggregate import (
    BASE_RULE,
    CellKey,
    Comparison,
    Row,
    StudyCells,
    aggregate,
    compare,
    load_cells,
    write_rows,
)
from lit_rpe.study.plan import StudyPlan, experiment_of, training_runs
from lit_rpe.training.experiments import compose

DOCS = Path("docs")
FIGURES = DOCS / "study_cpu"
REFERENCE = ("rope_grid", "extrapolate")  # the headline tables' marks compare with this cell
TITLES = {
    "clean_correct": "Fraction with one clean object of the label's class (data: 1.00)",
    "clean": "Fraction with one clean object, any class (data: 1.00)",
    "fragmented": "Fraction with one object in pieces or with stray specks (data: 0.00)",
    "duplicated": "Fraction with two or more object-sized objects (data: 0.00)",
    "class_accuracy": "Fraction whose object has the label's colour and orientation (data: 1.00)",
    "rel_size_w1": "Object size vs true renders: 1-D Wasserstein distance of relative sizes "
    "(noise floor about 0.02)",
    "val_loss": "Flow-matching validation loss",
    "swd": "Sliced Wasserstein distance to the validation images (x1e3)",
    "fid": "FID",
    "is": "Inception Score",
}
# (label, a, b): the differences the reading relies on; a - b at every resolution both have.
COMPARISONS = [
    ("RPE-2D vs RoPE extrapolated", ("rpe2d_rope", "rpe2d_even"), ("rope_grid", "extrapolate")),
    ("RPE-2D vs RoPE interpolated", ("rpe2d_rope", "rpe2d_even"), ("rope_grid", "interpolate")),
    ("RPE-2D vs grid RoPE + YaRN", ("rpe2d_rope", "rpe2d_even"), ("rope_grid", "yarn")),
    ("RPE-2D vs grid RoPE + DyPE-YaRN", ("rpe2d_rope", "rpe2d_even"), ("rope_grid", "dype_yarn")),
    ("RPE-2D vs DiT sin-cos", ("rpe2d_rope", "rpe2d_even"), ("sincos_grid", "extrapolate")),
    ("DyPE: dype_yarn - yarn", ("rope_grid", "dype_yarn"), ("rope_grid", "yarn")),
    ("DyPE: dype_ntk - ntk", ("rope_grid", "dype_ntk"), ("rope_grid", "ntk")),
    ("TASR - interpolate", ("rope_grid", "tasr"), ("rope_grid", "interpolate")),
    ("sin-cos: interpolate - extrapolate", ("sincos_grid", "interpolate"),
     ("sincos_grid", "extrapolate")),
    ("RPE-2D: even - extrapolate", ("rpe2d_rope", "rpe2d_even"), ("rpe2d_rope", "extrapolate")),
    ("ablation: no crop - full", ("rpe2d_nocrop", "rpe2d_even"), ("rpe2d_rope", "rpe2d_even")),
    ("ablation: no micro - full", ("rpe2d_nomicro", "rpe2d_even"), ("rpe2d_rope", "rpe2d_even")),
    ("ablation: sin-cos - full", ("rpe2d_sincos", "rpe2d_even"), ("rpe2d_rope", "rpe2d_even")),
]  # fmt: skip


def default_rules(grid: str) -> dict[str, str]:
    """Each model's own sampling rule (its experiment's ``model.rule``)."""
    spec = load_grid(grid, check_files=False)
    out = {}
    for entry in spec.models:
        rule = compose(experiment_of(entry.checkpoint)).model.get("rule")
        out[entry.name] = parse_rule(rule).label if rule else BASE_RULE
    return out


def fmt(value: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}g}"


def show(row: Row | None, mark: Comparison | None = None) -> str:
    """``mean ±half-width`` (seed interval) and a mark when ``mark`` is significant."""
    if row is None:
        return "n/a"
    text = fmt(row.seeds.estimate)
    if math.isfinite(row.seeds.half_width):
        text += f" ±{fmt(row.seeds.half_width, 2)}"
    if mark is not None and mark.significant:
        text += " ▲" if mark.better else " ▼"
    return text


def show_difference(c: Comparison) -> str:
    s = c.seeds
    text = f"{s.estimate:+.3g} [{fmt(s.low, 2)}, {fmt(s.high, 2)}]"
    if c.images is not None and math.isfinite(c.images.low):
        text += f" (img [{fmt(c.images.low, 2)}, {fmt(c.images.high, 2)}])"
    return text + (" **✱**" if c.significant else "")


def resolutions(study: StudyCells) -> list[tuple[int, int]]:
    return sorted({(k.height, k.width) for k in study.cells})


def headline_tables(study: StudyCells, rows: list[Row], rules: dict[str, str]) -> list[str]:
    """Per metric: every model under its own rule x resolution, marked against REFERENCE."""
    by_key = {(r.key, r.metric): r for r in rows}
    res = resolutions(study)
    lines = []
    marks = {}
    for h, w in res:
        ref = CellKey(*REFERENCE, h, w)
        for model, rule in rules.items():
            key = CellKey(model, rule, h, w)
            if key in study.cells and ref in study.cells and key != ref:
                marks.update({(key, c.metric): c for c in compare(study, key, ref, resamples=0)})
    for metric in study.metrics():
        lines += [f"**{TITLES.get(metric, metric)}**", ""]
        lines.append("| model (rule) | " + " | ".join(f"{h}x{w}" for h, w in res) + " |")
        lines.append("|---|" + "---|" * len(res))
        for model, rule in rules.items():
            cells = [CellKey(model, rule, h, w) for h, w in res]
            shown = [show(by_key.get((k, metric)), marks.get((k, metric))) for k in cells]
            lines.append(f"| {model} ({rule}) | " + " | ".join(shown) + " |")
        lines.append("")
    return lines


def comparison_tables(study: StudyCells) -> list[str]:
    res = resolutions(study)
    lines = ["| comparison (a - b) | metric | " + " | ".join(f"{h}x{w}" for h, w in res) + " |"]
    lines.append("|---|---|" + "---|" * len(res))
    for label, a, b in COMPARISONS:
        found: dict[tuple[int, int], dict[str, Comparison]] = {}
        for h, w in res:
            ka, kb = CellKey(*a, h, w), CellKey(*b, h, w)
            if ka in study.cells and kb in study.cells:
                found[(h, w)] = {c.metric: c for c in compare(study, ka, kb)}
        if not found:
            continue
        for metric in study.metrics():
            shown = [show_difference(found[r][metric]) if r in found else "n/a" for r in res]
            lines.append(f"| {label} | {metric} | " + " | ".join(shown) + " |")
    return lines + [""]


def full_tables(study: StudyCells, rows: list[Row]) -> str:
    """Every (model, rule) x resolution per metric, marked against the model's extrapolate."""
    res = resolutions(study)
    by_key = {(r.key, r.metric): r for r in rows}
    pairs = sorted({(k.model, k.rule) for k in study.cells})
    lines = [
        f"# The {study.name} study, every rule",
        "",
        "Mean over training seeds ±half-width of the 95 % interval across seeds; ▲ / ▼: "
        "significantly better / worse than the same model's `extrapolate` at that resolution "
        "(paired over seeds). Written by `lit_rpe.study`; the numbers are in `study.csv`.",
        "",
    ]
    for metric in study.metrics():
        lines += [f"## {TITLES.get(metric, metric)}", ""]
        lines.append("| model | rule | " + " | ".join(f"{h}x{w}" for h, w in res) + " |")
        lines.append("|---|---|" + "---|" * len(res))
        for model, rule in pairs:
            cells = [by_key.get((CellKey(model, rule, h, w), metric)) for h, w in res]
            shown = [show(r, r.vs_base if r else None) for r in cells]
            lines.append(f"| {model} | {rule} | " + " | ".join(shown) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(study: StudyCells, rows: list[Row], lines_of: list[tuple[str, str]], path: Path) -> None:
    """One panel per metric: value against resolution, a line per (model, rule), error bars =
    the 95 % interval across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = study.metrics()
    by_key = {(r.key, r.metric): r for r in rows}
    res = resolutions(study)
    cols = min(4, len(metrics))
    rows_ = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.6 * cols, 3.0 * rows_), squeeze=False)
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, (model, rule) in enumerate(lines_of):
            pts = [(h, by_key.get((CellKey(model, rule, h, w), metric))) for h, w in res]
            pts = [(h, r) for h, r in pts if r is not None]
            if not pts:
                continue
            err = [0 if math.isnan(r.seeds.half_width) else r.seeds.half_width for _, r in pts]
            ax.errorbar(
                [h for h, _ in pts], [r.seeds.estimate for _, r in pts], yerr=err,
                marker="o", ms=3, capsize=2, label=f"{model} ({rule})",
                color=plt.cm.tab20(i % 20), linestyle="-" if i < 10 else "--",
            )  # fmt: skip
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("resolution (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def sample_strip(cells: Path, rule: str, res: list[tuple[int, int]], out: Path) -> bool:
    """One figure: a model's sample grids under ``rule`` at every resolution, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    paths = [p for p in (cells / rule / f"{h}x{w}" / "grid.png" for h, w in res) if p.is_file()]
    if not paths:
        return False
    fig, axes = plt.subplots(1, len(paths), figsize=(2.6 * len(paths), 2.9), squeeze=False)
    for ax, path in zip(axes[0], paths, strict=True):
        ax.imshow(Image.open(path), interpolation="nearest")
        ax.set_title(path.parent.name, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{cells.name}, rule {rule}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return True


def provenance(plan: StudyPlan, timings: dict) -> list[str]:
    runs = training_runs(plan)
    trained = sorted({trained_precision(r.checkpoint) for r in runs})
    spent = ", ".join(
        f"{k} {v[0] / 60:.1f} min wall / {v[1] / 60:.1f} CPU-min"
        for k, v in timings.items()
        if isinstance(v, list | tuple)
    )
    started, now = timings.get("commit_started", "unknown"), suite_commit()
    commits = f"`{now}`" if started == now else f"`{started}` (trained) and `{now}` (reported)"
    return [
        "Produced by `make study` (interrupted runs resume) at commit " + commits + " on "
        f"{timings.get('machine', machine_description())}, {plan.workers} processes x "
        f"{plan.threads} thread(s), torch "
        f"{torch.__version__}; trained in {', '.join(trained)}; {len(runs)} training runs "
        f"({len(plan.seeds)} seeds: {', '.join(map(str, plan.seeds))}). Time spent: {spent}.",
    ]


def write_study(plan: StudyPlan, study_dir: Path, timings: dict) -> Path:
    """Aggregate every data set of ``plan`` and write RESULTS.md and its figures and tables."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    sections, rows_by_set = [], {}
    for study_set in plan.sets:
        study = load_cells(study_set, plan.seeds)
        if not study.cells:
            sections += [f"## {study_set.name}", "", "_(no finished cells)_", ""]
            continue
        rows = aggregate(study)
        rows_by_set[study_set.name] = rows
        rules = default_rules(study_set.grid)
        (FIGURES / f"tables_{study_set.name}.md").write_text(full_tables(study, rows))
        plot(study, rows, list(rules.items()), FIGURES / f"{study_set.name}_models.png")
        rope_rules = sorted({k.rule for k in study.cells if k.model == "rope_grid"})
        lines_of = [("rope_grid", r) for r in rope_rules] + [("rpe2d_rope", "rpe2d_even")]
        plot(study, rows, lines_of, FIGURES / f"{study_set.name}_rules.png")
        cells_dir = Path(load_grid(study_set.grid, check_files=False).out_dir)
        cells_dir = cells_dir / f"seed{plan.seeds[0]}" / "cells"
        strips = []
        for model, rule in rules.items():
            out = FIGURES / f"samples_{study_set.name}_{model}.png"
            if sample_strip(cells_dir / model, rule, resolutions(study), out):
                strips.append(f"![{model}]({out.relative_to(DOCS)})")
        sections += [
            f"## The {study_set.name} set",
            "",
            f"Each model under its own rule. Mean over {len(plan.seeds)} training seeds "
            f"±half-width of the 95 % interval across seeds; ▲ / ▼: significantly better / "
            f"worse than {REFERENCE[0]} ({REFERENCE[1]}) at that resolution (paired over seeds). "
            f"Every rule: [tables_{study_set.name}.md](study_cpu/tables_{study_set.name}.md).",
            "",
            *headline_tables(study, rows, rules),
            f"![models](study_cpu/{study_set.name}_models.png)",
            "",
            f"![rules](study_cpu/{study_set.name}_rules.png)",
            "",
            "### Differences the reading relies on",
            "",
            "a - b: mean over seeds [95 % interval across seeds, paired]"
            + (" (img: bootstrap interval over the pooled images)" if study.objects else "")
            + "; **✱**: the interval across seeds excludes 0.",
            "",
            *comparison_tables(study),
            f"### Samples (training seed {plan.seeds[0]}, EMA weights, same noise in every cell)",
            "",
            *strips,
            "",
        ]
    write_rows(rows_by_set, study_dir / "study.csv")
    shutil.copy(study_dir / "study.csv", FIGURES / "study.csv")
    # imported here: report_html imports this module's titles and number format
    from lit_rpe.study.report_html import set_views, write_study_html

    write_study_html(FIGURES, set_views(plan))
    reading = DOCS / "study_reading.md"
    lines = [
        "# Results: resolution generalization on a laptop CPU",
        "",
        *provenance(plan, timings),
        "Every number below is copied by `lit_rpe.study` from `docs/study_cpu/study.csv`.",
        "The sample strips beside every number, with an A/B flip: "
        "[study_cpu/report.html](study_cpu/report.html) (rebuilt from the committed files by "
        "`python -m lit_rpe.study.report_html docs/study_cpu`).",
        "",
        reading.read_text() if reading.is_file() else "_(reading not written yet)_",
        "",
        *sections,
    ]
    path = DOCS / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path
