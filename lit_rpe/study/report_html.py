"""``docs/study_cpu/report.html``: the study's sample strips beside its numbers.

One self-contained page (relative links, nothing fetched) built from the committed files alone:
``study.csv`` and the figures ``write_study`` puts beside it (``samples_<set>_<model>.png``,
``<set>_models.png``, ``<set>_rules.png``). Per data set and model: the model's sample strip
(click to enlarge) next to every metric of every rule x resolution with its 95 % interval across
seeds, the best per column in bold as in the grid reports, ▲ / ▼ against the same model's
``extrapolate`` as in ``tables_<set>.md``, the training-resolution column marked; then the plots.
An A/B view flips between two models' strips. The style, script, escaping and best-per-column
choice are the eval grid report's (``lit_rpe.eval.grid.report_html``, ``report_page``).

Rebuild it without re-running the study: ``python -m lit_rpe.study.report_html docs/study_cpu``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

from lit_rpe.eval.grid.report_html import best_per_column, link, write_page
from lit_rpe.eval.grid.report_page import PAGE_SCRIPT, PAGE_STYLE
from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.resolution import as_height_width
from lit_rpe.study.aggregate import LOWER_IS_BETTER, is_better
from lit_rpe.study.plan import StudyPlan, eval_seed, experiment_of
from lit_rpe.study.report import TITLES, default_rules, fmt
from lit_rpe.training.experiments import compose

CSV_COLUMNS = ("set", "model", "rule", "height", "width", "metric", "mean", "seed_low",
               "seed_high", "vs_extrapolate", "vs_extrapolate_significant")  # fmt: skip
STUDY_STYLE = """
.strip-block { margin: 1em 0 2em; }
.strip-block img.strip { display: block; max-width: 100%; cursor: zoom-in;
  image-rendering: pixelated; }
table.study { border-collapse: collapse; margin-top: .4em; }
table.study th, table.study td { border: 1px solid #ccc; padding: 3px; vertical-align: top; }
table.study thead th { background: #f4f4f4; }
table.study th.train { color: #0a5; }
table.study ul.metrics { font-size: 11px; }
table.study td.train { outline: 3px solid #0a5; outline-offset: -3px; }
table.study tbody th { text-align: left; white-space: nowrap; background: #fafafa; }
table.study ul.metrics li { white-space: nowrap; }
img.plot { max-width: 100%; cursor: zoom-in; }
"""


@dataclass(frozen=True)
class StudySetView:
    """What the page needs of one data set besides study.csv. own_rules: each model's own rule
    (the rule of its strip), in strip order; train_resolution: "HxW"; training_seed: the seed
    whose images the strips show; grid_images: images in each panel of a strip."""

    name: str
    own_rules: dict[str, str]
    train_resolution: str
    training_seed: int
    grid_images: int


def set_views(plan: StudyPlan) -> list[StudySetView]:
    """The views of ``plan``'s data sets, read from the committed grid and experiment files."""
    views = []
    for study_set in plan.sets:
        spec = load_grid(study_set.grid, check_files=False)
        trained = {
            as_height_width(compose(experiment_of(e.checkpoint)).data.resolution)
            for e in spec.models
        }
        if len(trained) != 1:
            raise ValueError(f"{study_set.grid}: models trained at several resolutions {trained}")
        (h, w), = trained  # fmt: skip
        views.append(
            StudySetView(
                study_set.name,
                default_rules(study_set.grid),
                f"{h}x{w}",
                plan.seeds[0],
                min(spec.grid_images, spec.num_images),
            )
        )
    return views


def read_study_csv(path: Path) -> dict[str, list[dict]]:
    """Per data set, one record per (model, rule, resolution) as the grid report reads them:
    ``{model, rule, height, width, metrics: {metric: mean}, low, high, vs, significant}`` (the
    last four per metric)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: `make study` writes it")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a study.csv, no column(s) {', '.join(missing)}")
        lines = list(reader)
    sets: dict[str, dict[tuple, dict]] = {}
    for n, line in enumerate(lines, start=2):
        try:
            key = (line["model"], line["rule"], int(line["height"]), int(line["width"]))
            values = {
                c: float(line[c]) for c in ("mean", "seed_low", "seed_high", "vs_extrapolate")
            }
        except ValueError as err:
            raise ValueError(f"{path} line {n}: {err}") from None
        record = sets.setdefault(line["set"], {}).setdefault(
            key,
            {"model": key[0], "rule": key[1], "height": key[2], "width": key[3], "metrics": {},
             "low": {}, "high": {}, "vs": {}, "significant": {}},
        )  # fmt: skip
        metric = line["metric"]
        record["metrics"][metric] = values["mean"]
        record["low"][metric], record["high"][metric] = values["seed_low"], values["seed_high"]
        record["vs"][metric] = values["vs_extrapolate"]
        record["significant"][metric] = line["vs_extrapolate_significant"] == "True"
    return {name: list(records.values()) for name, records in sets.items()}


def metric_text(record: dict, metric: str) -> str:
    """``mean [low, high]`` (95 % interval across seeds) and ▲ / ▼ when the difference to the
    same model's extrapolate is significant."""
    text = fmt(record["metrics"][metric])
    low, high = record["low"][metric], record["high"][metric]
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{fmt(low)}, {fmt(high)}]"
    if record["significant"][metric]:
        text += " ▲" if is_better(metric, record["vs"][metric]) else " ▼"
    return text


def model_table(records: list[dict], view: StudySetView, model: str, best: dict) -> str:
    """One model's rules x resolutions, every metric per cell."""
    mine = {(r["rule"], f"{r['height']}x{r['width']}"): r for r in records if r["model"] == model}
    res = sorted({(r["height"], r["width"]) for r in records})
    columns = [f"{h}x{w}" for h, w in res]
    own = view.own_rules.get(model)
    rules = sorted({rule for rule, _ in mine}, key=lambda r: (r != own, r))
    head = "".join(
        f'<th data-res="{escape(c)}"{" class=train" if c == view.train_resolution else ""}>'
        f"{escape(c)}{' (train)' if c == view.train_resolution else ''}</th>"
        for c in columns
    )
    body = []
    for rule in rules:
        cells = []
        for c in columns:
            record = mine.get((rule, c))
            train = " train" if c == view.train_resolution else ""
            if record is None:
                cells.append(f'<td class="cell missing{train}" data-res="{c}">not evaluated</td>')
                continue
            items = "".join(
                f'<li{" class=best" if best[m].get(c) == v else ""} data-metric="{escape(m)}">'
                f"{escape(m)} {escape(metric_text(record, m))}</li>"
                for m, v in record["metrics"].items()
            )
            cells.append(f'<td class="cell{train}" data-res="{c}"><ul class="metrics">'
                          f"{items}</ul></td>")  # fmt: skip
        label = f"{rule} (own)" if rule == own else rule
        row = escape(f"{model} / {rule}", quote=True)
        body.append(f'<tr data-row="{row}"><th>{escape(label)}</th>{"".join(cells)}</tr>')
    return (
        f'<table class="study" data-model="{escape(model, quote=True)}"><thead><tr>'
        f"<th>rule</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def figure(folder: Path, name: str, caption: str, css: str) -> str:
    """A click-to-enlarge image of ``folder/name``, or a line saying it is missing."""
    if not (folder / name).is_file():
        return f'<p class="nogrid">{escape(name)} not found</p>'
    text = escape(caption, quote=True)
    return (
        f'<a class="enlarge" href="{link(name)}" data-caption="{text}">'
        f'<img class="{css}" src="{link(name)}" alt="{text}" loading="lazy"></a>'
    )


def set_section(folder: Path, records: list[dict], view: StudySetView) -> str:
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))  # csv order
    best = {m: best_per_column(records, m, m in LOWER_IS_BETTER) for m in metrics}
    res = sorted({(r["height"], r["width"]) for r in records})
    side = math.ceil(math.sqrt(view.grid_images))
    models = [m for m in view.own_rules if any(r["model"] == m for r in records)]
    models += sorted({r["model"] for r in records} - set(models))
    blocks = []
    for model in models:
        rule = view.own_rules.get(model, "?")
        strip = figure(
            folder, f"samples_{view.name}_{model}.png", f"{model} under {rule}, {view.name}",
            "strip",
        )  # fmt: skip
        blocks.append(
            f'<div class="strip-block" id="{escape(view.name)}-{escape(model)}">'
            f"<h3>{escape(model)} (own rule: {escape(rule)})</h3>{strip}"
            f"{model_table(records, view, model, best)}</div>"
        )
    legend = "".join(f"<li><b>{escape(m)}</b>: {escape(TITLES.get(m, m))}</li>" for m in metrics)
    plots = "".join(
        figure(folder, f"{view.name}_{kind}.png", f"{view.name}: {what}", "plot")
        for kind, what in (("models", "every model under its own rule"),
                           ("rules", "rope_grid under every rule, rpe2d_rope under rpe2d_even"))
    )  # fmt: skip
    return f"""<section class="set" id="set-{escape(view.name)}">
<h2>The {escape(view.name)} set</h2>
<p>Each strip is one model under its own rule: one panel per resolution, left to right
({", ".join(f"{h}x{w}" for h, w in res)} px), each panel a {side} x {side} grid of images 0 to
{view.grid_images - 1} in reading order of training seed {view.training_seed}'s checkpoint (EMA
weights): image i has noise seed {eval_seed(view.training_seed)} + i and label i mod the number
of classes in every panel and every strip, so each position holds the same noise and class
everywhere. Next to it, every rule of that model (its own first): mean over seeds [95 % interval
across seeds]; bold: the best value of the metric in its column over every model and rule of the
set; ▲ / ▼: significantly better / worse than the same model's extrapolate there (paired over
seeds); <span class="train-key">(train)</span>: the training resolution. Every rule as
Markdown: <a href="{link(f"tables_{view.name}.md")}">tables_{escape(view.name)}.md</a>.</p>
<ul class="legend">{legend}</ul>
{"".join(blocks)}
<h3>Plots</h3><div class="plots">{plots}</div>
</section>"""


def write_study_html(folder: Path, views: list[StudySetView]) -> Path:
    """Write ``folder/report.html`` from ``folder/study.csv`` and the figures beside it; returns
    its path. Data sets of the csv without a view are an error (their own rules are unknown)."""
    folder = Path(folder)
    by_set = read_study_csv(folder / "study.csv")
    known = {v.name: v for v in views}
    unknown = sorted(set(by_set) - set(known))
    if unknown:
        raise ValueError(f"{folder / 'study.csv'}: data set(s) {unknown} not in the study plan")
    shown = [known[name] for name in known if name in by_set]
    sections = "".join(set_section(folder, by_set[v.name], v) for v in shown)
    strips = {}
    for v in shown:
        for model in v.own_rules:
            if (folder / f"samples_{v.name}_{model}.png").is_file():
                strips.setdefault(model, {})[v.name] = f"samples_{v.name}_{model}.png"
    rows = list(strips)
    # the grid report's A/B script: its "rows" are the models, its "resolutions" the data sets
    data = json.dumps({"rows": rows, "resolutions": [v.name for v in shown], "grids": strips})
    data = data.replace("<", "\\u003c")  # no "</script>" inside the script element
    options = "".join(f"<option>{escape(m)}</option>" for m in rows)
    set_options = "".join(f"<option>{escape(v.name)}</option>" for v in shown)
    toc = "".join(f'<li><a href="#set-{escape(v.name)}">{escape(v.name)}</a></li>' for v in shown)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>The CPU study: samples and numbers</title>
<style>{PAGE_STYLE}{STUDY_STYLE}</style></head><body>
<h1>The CPU study: samples and numbers</h1>
<p>Every number is read from <a href="study.csv">study.csv</a>, which
<a href="../RESULTS.md">RESULTS.md</a> quotes; the images are the figures beside it. Click an
image to enlarge it. Rebuild this page: <code>python -m lit_rpe.study.report_html
docs/study_cpu</code>.</p>
<ul>{toc}</ul>
<section id="ab"><h2>A/B: two models' strips</h2>
<label>A <select id="ab-a">{options}</select></label>
<label>B <select id="ab-b">{options}</select></label>
<label>data set <select id="ab-res">{set_options}</select></label>
<button id="ab-flip" type="button">flip A/B (space)</button>
<p id="ab-caption"></p><img id="ab-image" alt="A/B comparison"></section>
{sections}
<div id="lightbox" hidden><img alt=""><p></p></div>
<script type="application/json" id="cells-data">{data}</script>
<script>{PAGE_SCRIPT}</script>
</body></html>
"""
    return write_page(folder, page)


def main(argv: list[str] | None = None) -> None:
    """``python -m lit_rpe.study.report_html [FOLDER]``: rebuild FOLDER/report.html (default
    docs/study_cpu) from its study.csv and figures, for the default study plan."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        raise SystemExit("usage: python -m lit_rpe.study.report_html [FOLDER]")
    folder = Path(args[0] if args else "docs/study_cpu")
    try:
        path = write_study_html(folder, set_views(StudyPlan()))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(path)


if __name__ == "__main__":
    main()
