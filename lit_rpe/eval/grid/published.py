"""Published figures in a grid file, printed beside the grid's own (results.md).

    published:
      - {model: fitv2_xl, rule: ntk+attn_fit_pro2, resolution: 320, metric: fid, value: 3.55,
         source: "FiTv2 README (whlzy/FiT), FiTv2-XL/2 table, FID-320x320"}

``rule`` is a rule's label in the grid (``InferenceRule.label``), ``resolution`` an int or [H, W];
``value`` may be null for a figure whose source is known but whose number is not filled in
(printed as "-"). Checked when the grid file is read: unknown keys, models, rules, resolutions
and metrics fail with a message naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lit_rpe.resolution import as_height_width


@dataclass(frozen=True)
class PublishedFigure:
    """One published number for one cell of the grid, with where it comes from."""

    model: str
    rule: str
    resolution: tuple[int, int]
    metric: str
    value: float | None
    source: str

    @property
    def cell(self) -> tuple[str, str, str]:
        h, w = self.resolution
        return self.model, self.rule, f"{h}x{w}"


def parse_published(
    values: list | None, *, models: list[str], rules: dict[str, list[str]], metrics: tuple
) -> list[PublishedFigure]:
    """Typed figures of a grid's ``published`` list. rules: per model, its rule labels."""
    names = [f.name for f in dataclasses.fields(PublishedFigure)]
    out = []
    for i, raw in enumerate(values or []):
        where = f"published[{i}]"
        if not isinstance(raw, dict) or set(raw) != set(names):
            raise ValueError(f"{where} must have exactly the keys {', '.join(names)}, got {raw!r}")
        figure = PublishedFigure(**{**raw, "resolution": as_height_width(raw["resolution"])})
        if figure.model not in models:
            raise ValueError(f"{where}: unknown model {figure.model!r}; valid: {', '.join(models)}")
        if figure.rule not in rules[figure.model]:
            raise ValueError(
                f"{where}: model {figure.model!r} has no rule {figure.rule!r}; its rules: "
                f"{', '.join(rules[figure.model])}"
            )
        if figure.metric not in metrics:
            raise ValueError(f"{where}: unknown metric {figure.metric!r}")
        out.append(figure)
    return out


def published_table(figures: list[PublishedFigure], records: list[dict]) -> list[str]:
    """Markdown: each published figure, ours in the same cell (when measured) and the
    difference ours - published."""
    if not figures:
        return []
    ours = {(r["model"], r["rule"], f"{r['height']}x{r['width']}"): r["metrics"] for r in records}
    lines = [
        "### Published figures beside ours",
        "",
        "| model / rule | resolution | metric | published | ours | ours - published | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        model, rule, res = f.cell
        value = ours.get(f.cell, {}).get(f.metric)
        shown = "-" if f.value is None else f"{f.value:g}"
        mine = "not measured" if value is None else f"{value:.2f}"
        diff = "-" if value is None or f.value is None else f"{value - f.value:+.2f}"
        lines.append(
            f"| {model} / {rule} | {res} | {f.metric} | {shown} | {mine} | {diff} | {f.source} |"
        )
    return [*lines, ""]
