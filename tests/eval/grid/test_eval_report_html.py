"""report.html and the plots of the eval grid, checked without a browser (the browser test is
tests/eval/grid/test_eval_report_browser.py)."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image
from report_fixtures import fake_grid

from lit_rpe.eval.grid.report import write_report
from lit_rpe.eval.grid.report_html import THUMB_SIDE, write_thumbnail
from lit_rpe.eval.grid.report_plots import line_style, metric_figure


class Page(HTMLParser):
    """The parts of report.html the tests read: every linked file, the matrix, the cells."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.columns: list[tuple[str, str]] = []  # (data-res, class) of the matrix head
        self.rows: list[str] = []
        self.cells: list[dict] = []  # per <td>: row, res, class, thumbs, best metrics, text
        self.lazy: list[str] = []
        self._row = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a and tag != "script":
                self.links.append(a[key])
        if tag == "thead":
            self._in_head = True
        elif tag == "th" and self._in_head and "data-res" in a:
            self.columns.append((a["data-res"], a.get("class") or ""))
        elif tag == "tr" and "data-row" in a:
            self.rows.append(a["data-row"])
            self._row = a["data-row"]
        elif tag == "td" and self._row is not None:
            self.cells.append(
                {"row": self._row, "res": a["data-res"], "class": a.get("class", ""), "best": []}
            )
        elif tag == "img" and a.get("class") == "thumb":
            self.cells[-1]["thumb"] = a["src"]
            self.lazy.append(a.get("loading"))
        elif tag == "li" and a.get("class") == "best":
            self.cells[-1]["best"].append(a["data-metric"])

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag == "tbody":
            self._row = None


def read_page(out: Path) -> Page:
    return Page((out / "report.html").read_text(encoding="utf-8"))


def test_report_html_links_only_existing_files_and_holds_the_matrix(tmp_path):
    out = tmp_path / "grid"
    spec = fake_grid(out, differing=("m0", "extrapolate", "64x64"))
    write_report(spec, skipped=["m0 / tasr at 16x16: needs a RoPE model"])
    page = read_page(out)
    assert page.links, "the page links its images and files"
    for target in page.links:  # relative, and each one exists: it opens from the file system
        assert "://" not in target and not target.startswith("/")
        assert (out / unquote(target)).is_file(), target
    assert page.rows == ["m0 / rpe2d_even", "m0 / extrapolate", "m0 / dype_yarn"]
    assert page.columns == [("16x16", ""), ("32x32", "train"), ("64x64", "")]
    assert [(c["row"], c["res"]) for c in page.cells] == [
        (row, res) for row in page.rows for res in ("16x16", "32x32", "64x64")
    ]
    assert all(c["thumb"].endswith("/thumb.png") for c in page.cells)
    assert set(page.lazy) == {"lazy"}
    trained = [c for c in page.cells if "train" in c["class"].split()]
    assert {c["res"] for c in trained} == {"32x32"} and len(trained) == 3
    # best per column as in the tables: val_loss lowest for rpe2d_even, swd for dype_yarn
    for cell in page.cells:
        rule = cell["row"].split(" / ")[1]
        assert ("val_loss" in cell["best"]) == (rule == "rpe2d_even")
        assert ("swd" in cell["best"]) == (rule == "dype_yarn")
    flagged = [c for c in page.cells if "differs" in c["class"].split()]
    assert [(c["row"], c["res"]) for c in flagged] == [("m0 / extrapolate", "64x64")]
    text = (out / "report.html").read_text()
    assert "card differs [1]" in text and "[1] seed = 7" in text
    assert "m0 / tasr at 16x16: needs a RoPE model" in text
    # the plots are named after the metric they show
    assert sorted(p.name for p in out.glob("*.png")) == [
        "swd_vs_resolution.png",
        "val_loss_vs_resolution.png",
    ]
    assert "`report.html`" in (out / "results.md").read_text()


def test_report_html_escapes_names_and_ab_data(tmp_path):
    out = tmp_path / "grid"
    spec = fake_grid(out, rules=("rpe2d_even",), sides=(16,), train=16)
    model = spec.models[0]
    weird = 'a<b>&"c'
    (out / "cells" / model.name).rename(out / "cells" / weird)
    record_path = out / "cells" / weird / "rpe2d_even" / "16x16" / "metrics.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "model": weird}))
    spec.models[0] = type(model)(weird, model.checkpoint)
    write_report(spec)
    text = (out / "report.html").read_text()
    assert weird not in text and "a&lt;b&gt;&amp;&quot;c / rpe2d_even" in text
    page = read_page(out)
    assert page.rows == [f"{weird} / rpe2d_even"]  # the parser unescapes it back
    assert (out / unquote(page.cells[0]["thumb"])).is_file()
    data = text.split('id="cells-data">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["rows"] == [f"{weird} / rpe2d_even"]


def test_a_broken_grid_png_costs_its_picture_not_the_page(tmp_path):
    out = tmp_path / "grid"
    spec = fake_grid(out, rules=("rpe2d_even",), sides=(16, 32))
    (out / "cells" / "m0" / "rpe2d_even" / "16x16" / "grid.png").write_bytes(b"not a png")
    (out / "cells" / "m0" / "rpe2d_even" / "32x32" / "grid.png").unlink()
    write_report(spec)
    page = read_page(out)
    assert [c["res"] for c in page.cells] == ["16x16", "32x32"]
    assert [c.get("thumb") for c in page.cells] == [None, None]
    text = (out / "report.html").read_text()
    assert "grid.png unreadable: cannot identify image file" in text and "no grid.png" in text


def test_thumbnail_is_small_and_rewritten_only_when_the_grid_changes(tmp_path):
    grid, thumb = tmp_path / "grid.png", tmp_path / "thumb.png"
    Image.new("RGB", (1030, 520), (200, 10, 10)).save(grid)
    assert write_thumbnail(grid, thumb) == (THUMB_SIDE, 129)
    os.utime(grid, (1, 1))  # an older grid: the thumbnail stands
    Image.new("RGB", (10, 10)).save(thumb)
    assert write_thumbnail(grid, thumb) == (10, 10)
    os.utime(thumb, (0, 0))  # a grid newer than its thumbnail: written again
    assert write_thumbnail(grid, thumb) == (THUMB_SIDE, 129)


def test_plot_axis_in_pixels_with_the_training_resolution_marked():
    records = [
        {"model": "m", "rule": rule, "height": s, "width": s, "train_resolution": "32x32",
         "metrics": {"swd": 1.0}}
        for rule in ("a", "b") for s in (16, 32, 64)
    ]  # fmt: skip
    fig = metric_figure(records, "swd", "SWD", lower_is_better=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "64"]
    assert ax.get_xscale() == "log"
    vertical = [line for line in ax.get_lines() if list(line.get_xdata()) == [32, 32]]
    assert len(vertical) == 1  # the training resolution
    data_lines = [line for line in ax.get_lines() if line.get_label() in ("m / a", "m / b")]
    a, b = data_lines  # equal values: told apart by marker, size and dash
    assert list(a.get_ydata()) == list(b.get_ydata())
    assert (a.get_marker(), a.get_linestyle(), a.get_markersize()) != (
        b.get_marker(),
        b.get_linestyle(),
        b.get_markersize(),
    )
    assert "lower is better" in ax.get_title()


@pytest.mark.parametrize("i", range(8))
def test_line_styles_differ_between_neighbours(i):
    assert line_style(i) != line_style(i + 1)
