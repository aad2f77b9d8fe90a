"""The eval grid's plots: one figure per metric against the resolution, readable at a glance.

Each file is named after the metric it shows (``swd_vs_resolution.png``); the resolution axis
is labelled in pixels (16, 32, 64) on a log-2 scale; every model's training resolution is
marked; lines that coincide stay distinguishable through their markers, marker sizes and dashes
(``line_style``, also used by the training curves of ``ResolutionEvalCallback``).
"""

from __future__ import annotations

from pathlib import Path

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", ":", "-.")


def line_style(index: int) -> dict:
    """Matplotlib keywords of the ``index``-th line of a panel: marker, marker size, dash and
    fill all vary, so two lines with the same values still show as two (a later line is drawn
    on top with a smaller marker, inside the earlier one's)."""
    return {
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": DASHES[index % len(DASHES)],
        "markersize": 10 - 1.5 * (index % 5),
        "markerfacecolor": "none" if index % 2 else None,
        "linewidth": 1.4,
    }


def plot_file_name(metric: str) -> str:
    """The file of ``metric``'s figure: what it shows, e.g. ``swd_vs_resolution.png``."""
    return f"{metric}_vs_resolution.png"


def square_lines(records: list[dict], metric: str) -> dict[str, list[tuple[int, float]]]:
    """Per "model / rule", the (side in px, value) points of its square cells, side ascending."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if r["height"] == r["width"] and metric in r["metrics"]:
            key = f"{r['model']} / {r['rule']}"
            lines.setdefault(key, []).append((r["height"], r["metrics"][metric]))
    return {key: sorted(points) for key, points in lines.items()}


def training_sides(records: list[dict]) -> list[int]:
    """The square training resolutions of the records' models (px), ascending."""
    sides = set()
    for r in records:
        h, _, w = str(r.get("train_resolution", "")).partition("x")
        if h.isdigit() and h == w:
            sides.add(int(h))
    return sorted(sides)


def plot_metric(
    records: list[dict], metric: str, title: str, lower_is_better: bool, path: Path
) -> Path:
    """Write ``metric_figure`` to ``path``; returns ``path``."""
    import matplotlib.pyplot as plt

    fig = metric_figure(records, metric, title, lower_is_better)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metric_figure(records: list[dict], metric: str, title: str, lower_is_better: bool):
    """A matplotlib Figure: ``metric`` against the side of the square resolutions, one line per
    model + rule, the training resolution(s) as dotted vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    lines = square_lines(records, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, (key, points) in enumerate(lines.items()):
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, label=key, **line_style(i))
    sides = sorted({x for points in lines.values() for x, _ in points})
    for side in training_sides(records):
        ax.axvline(side, color="0.35", linestyle=":", linewidth=1.2)
        ax.annotate(
            f"training: {side} px",
            xy=(side, 0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 4),
            textcoords="offset points",
            fontsize=7,
            color="0.25",
        )
        sides = sorted({*sides, side})
    ax.set_xscale("log", base=2)
    if sides:  # ticks at the measured sides, labelled in pixels (not 2^4)
        ax.xaxis.set_major_locator(FixedLocator(sides))
        ax.set_xticklabels([str(s) for s in sides])
        ax.xaxis.set_minor_locator(NullLocator())
    better = "lower" if lower_is_better else "higher"
    ax.set_xlabel("resolution (px per side, square cells)")
    ax.set_ylabel(metric)
    ax.set_title(f"{title}\n({better} is better)", fontsize=9)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # beside the plot, in as many columns as 30 entries need
        ncol = -(-len(handles) // 30)
        fig.set_size_inches(6.4 + 2.0 * ncol, 4.6)
        fig.legend(handles, labels, loc="center right", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 1 - 2.0 * ncol / fig.get_size_inches()[0], 1))
    else:
        ax.text(0.5, 0.5, "no square cells measured", ha="center", transform=ax.transAxes)
    return fig
