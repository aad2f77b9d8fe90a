"""report.html: the eval grid's sample grids side by side, beside results.md.

One self-contained page (relative links, no network, no server; it opens from the file system):
a matrix with one row per model x rule and one column per resolution, each cell a thumbnail of
its ``grid.png`` (the same seed-indexed images in every cell) with every metric of the cell, the
best per column in bold as in results.md, the training resolution marked and cells whose
protocol card differs flagged; click a cell to enlarge it; an A/B view flips between two rows at
one resolution; the plots and the protocol card follow. Thumbnails (``thumb.png`` beside each
``grid.png``) load lazily, so a grid of hundreds of cells opens at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from lit_rpe.eval.grid.report_page import PAGE_SCRIPT, PAGE_STYLE
from lit_rpe.eval.grid.spec import GridSpec
from lit_rpe.eval.protocol import CardComparison

THUMB_SIDE = 256  # px, the longer side of a thumbnail
HTML_NAME = "report.html"


@dataclass(frozen=True)
class CellView:
    """One matrix cell: ``folder`` is relative to the grid's out_dir; ``index`` is the cell's
    position in the records (None: not evaluated)."""

    row: str
    resolution: str
    folder: str
    index: int | None


def cell_folder(model: str, rule: str, resolution: str) -> str:
    return f"cells/{model}/{rule}/{resolution}"


def write_thumbnail(grid: Path, thumb: Path, side: int = THUMB_SIDE) -> tuple[int, int]:
    """Write ``thumb`` (longer side at most ``side`` px) unless it is newer than ``grid``;
    returns its (width, height)."""
    if thumb.is_file() and thumb.stat().st_mtime >= grid.stat().st_mtime:
        with Image.open(thumb) as image:
            return image.size
    with Image.open(grid) as image:
        small = image.convert("RGB")
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
    tmp = thumb.with_name(f".{thumb.name}.tmp.png")
    small.save(tmp)
    tmp.replace(thumb)
    return small.size


def matrix_cells(spec: GridSpec, records: list[dict]) -> tuple[list[str], list[list[CellView]]]:
    """(row names "model / rule", per row one CellView per resolution of ``spec``)."""
    index = {
        (r["model"], r["rule"], f"{r['height']}x{r['width']}"): i for i, r in enumerate(records)
    }
    names, rows = [], []
    for entry in spec.models:
        for rule in spec.rules_of(entry):
            name = f"{entry.name} / {rule.label}"
            views = []
            for h, w in spec.resolutions:
                res = f"{h}x{w}"
                folder = cell_folder(entry.name, rule.label, res)
                views.append(CellView(name, res, folder, index.get((entry.name, rule.label, res))))
            names.append(name)
            rows.append(views)
    return names, rows


def best_per_column(records: list[dict], metric: str, lower_is_better: bool) -> dict[str, float]:
    """Per resolution, the best value of ``metric`` (empty with fewer than two rows, as the
    tables bold nothing then)."""
    values: dict[str, list[float]] = {}
    rows = {(r["model"], r["rule"]) for r in records if metric in r["metrics"]}
    if len(rows) < 2:
        return {}
    for r in records:
        if metric in r["metrics"]:
            values.setdefault(f"{r['height']}x{r['width']}", []).append(r["metrics"][metric])
    pick = min if lower_is_better else max
    return {res: pick(v) for res, v in values.items()}


def link(path: str) -> str:
    """A relative URL for ``path``, escaped for an attribute."""
    return escape(quote(path), quote=True)


def cell_html(view: CellView, record: dict | None, out: Path, ctx: dict) -> str:
    """One <td>: thumbnail (a link to the full grid), metrics, marks."""
    classes = ["cell"]
    if record is None:
        return f'<td class="cell missing" data-res="{escape(view.resolution)}">not evaluated</td>'
    if view.resolution == record.get("train_resolution"):
        classes.append("train")
    grid = out / view.folder / "grid.png"
    parts = []
    try:  # an unreadable grid.png costs its picture, not the page
        size = write_thumbnail(grid, out / view.folder / "thumb.png") if grid.is_file() else None
        problem = "no grid.png"
    except OSError as err:
        size, problem = None, f"grid.png unreadable: {err}"
    if size is not None:
        width, height = size
        caption = escape(f"{view.row} at {view.resolution}", quote=True)
        parts.append(
            f'<a class="enlarge" href="{link(view.folder + "/grid.png")}" '
            f'data-caption="{caption}"><img class="thumb" src="{link(view.folder + "/thumb.png")}"'
            f' width="{width}" height="{height}" loading="lazy" decoding="async" '
            f'alt="{caption}"></a>'
        )
    else:
        parts.append(f'<p class="nogrid">{escape(problem)}</p>')
    items = []
    for metric in ctx["metrics"]:
        if metric not in record["metrics"]:
            continue
        value = record["metrics"][metric]
        best = ctx["best"][metric].get(view.resolution) == value
        retried = f" {ctx['retried_mark']}" if record.get(f"{metric}_retried") else ""
        items.append(
            f'<li{" class=best" if best else ""} data-metric="{escape(metric)}">'
            f"{escape(metric)} {escape(ctx['fmt'](value))}{escape(retried)}</li>"
        )
    parts.append(f'<ul class="metrics">{"".join(items)}</ul>')
    number = ctx["numbers"][view.index]
    if number:
        diff = "; ".join(f"{k} = {v}" for k, v in ctx["differences"][view.index].items())
        classes.append("differs")
        parts.append(
            f'<p class="flag" title="{escape(diff, quote=True)}">card differs [{number}]</p>'
        )
    return (
        f'<td class="{" ".join(classes)}" data-res="{escape(view.resolution)}">'
        + "".join(parts)
        + "</td>"
    )


def write_html_report(
    spec: GridSpec,
    records: list[dict],
    comparison: CardComparison,
    numbers: list[int],
    plots: list[Path],
    *,
    note: str = "",
    skipped: list[str] | None = None,
) -> Path:
    """Write ``<out_dir>/report.html`` (and the cells' thumbnails); returns its path.
    ``numbers``: per record, its set of card differences (0: none), as results.md numbers them.
    """
    # imported here: report.py imports this module at its top
    from lit_rpe.eval.grid.report import LOWER_IS_BETTER, METRIC_ORDER, RETRIED, _format, _show

    out = Path(spec.out_dir)
    names, rows = matrix_cells(spec, records)
    present = {m for r in records for m in r["metrics"]}
    metrics = [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))
    ctx = {
        "metrics": metrics,
        "best": {m: best_per_column(records, m, m in LOWER_IS_BETTER) for m in metrics},
        "numbers": numbers,
        "differences": comparison.differences,
        "fmt": _format,
        "retried_mark": RETRIED,
    }
    resolutions = [f"{h}x{w}" for h, w in spec.resolutions]
    trained = {r.get("train_resolution") for r in records}
    head = "".join(
        f'<th data-res="{escape(res)}"{" class=train" if res in trained else ""}>{escape(res)}'
        f"{' (train)' if res in trained else ''}</th>"
        for res in resolutions
    )
    body = []
    for name, views in zip(names, rows, strict=True):
        cells = "".join(
            cell_html(v, None if v.index is None else records[v.index], out, ctx) for v in views
        )
        row = escape(name, quote=True)
        body.append(f'<tr data-row="{row}"><th>{escape(name)}</th>{cells}</tr>')
    grids = {
        name: {v.resolution: quote(v.folder + "/grid.png") for v in views if v.index is not None}
        for name, views in zip(names, rows, strict=True)
    }
    # no "<" inside the script element ("</script>", "<!--" would change how it is parsed)
    data = json.dumps({"rows": names, "resolutions": resolutions, "grids": grids})
    data = data.replace("<", "\\u003c")
    options = "".join(f"<option>{escape(n)}</option>" for n in names)
    res_options = "".join(f"<option>{escape(r)}</option>" for r in resolutions)
    shown = min(spec.grid_images, spec.num_images)
    card_rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(_show(k, v))}</td></tr>"
        for k, v in comparison.shared.items()
    )
    diffs = {}
    for n, diff in zip(numbers, comparison.differences, strict=True):
        if n:
            diffs[n] = "; ".join(f"{k} = {_show(k, v)}" for k, v in diff.items())
    diff_items = "".join(f"<li>[{n}] {escape(text)}</li>" for n, text in sorted(diffs.items()))
    plot_imgs = "".join(
        f'<figure><img src="{link(p.name)}" alt="{escape(p.stem, quote=True)}" loading="lazy">'
        f"<figcaption>{escape(p.name)}</figcaption></figure>"
        for p in plots
    )
    skipped_items = "".join(f"<li>{escape(s)}</li>" for s in skipped or [])
    skipped_block = (
        f"<h3>Cells not evaluated (the rule does not apply)</h3><ul>{skipped_items}</ul>"
        if skipped_items
        else ""
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Eval grid: {escape(spec.name)}</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Eval grid: {escape(spec.name)}</h1>
<p>{len(records)} of {sum(len(v) for v in rows)} cells evaluated. Every cell shows images 0 to
{shown - 1}: image i has noise seed {spec.seed} + i and label i mod the number of classes, so
each position holds the same noise and class in every cell. Bold: the best value of a metric in
its column; outlined cells and <span class="train-key">(train)</span> columns: the model's
training resolution; {escape(RETRIED)}: a Fréchet distance whose matrix square root was retried.
Click a cell to enlarge it. Files: <a href="results.md">results.md</a>,
<a href="results.csv">results.csv</a>.</p>
{f'<p class="note">{escape(note)}</p>' if note else ""}
<section id="ab"><h2>A/B at one resolution</h2>
<label>A <select id="ab-a">{options}</select></label>
<label>B <select id="ab-b">{options}</select></label>
<label>resolution <select id="ab-res">{res_options}</select></label>
<button id="ab-flip" type="button">flip A/B (space)</button>
<p id="ab-caption"></p><img id="ab-image" alt="A/B comparison"></section>
<section><h2>Samples and metrics</h2>
<table id="matrix"><thead><tr><th>model / rule</th>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table>
{skipped_block}
</section>
<section id="plots"><h2>Plots</h2>{plot_imgs or "<p>no plot yet</p>"}</section>
<section id="protocol"><h2>Protocol card</h2>
<p>Every cell was scored under this card unless flagged [n].</p>
<table class="card"><tbody>{card_rows}</tbody></table>
{f"<ul>{diff_items}</ul>" if diff_items else ""}</section>
<div id="lightbox" hidden><img alt=""><p></p></div>
<script type="application/json" id="cells-data">{data}</script>
<script>{PAGE_SCRIPT}</script>
</body></html>
"""
    return write_page(out, page)


def write_page(folder: Path, page: str) -> Path:
    """``folder/report.html`` written whole, then renamed: a browser never opens half a page."""
    path = folder / HTML_NAME
    tmp = folder / f".{HTML_NAME}.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
