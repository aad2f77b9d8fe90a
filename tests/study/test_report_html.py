"""The study's report.html from a small synthetic study.csv and figures, checked without a
browser (tests/eval/grid/test_eval_report_browser.py opens the committed
docs/study_cpu/report.html): every linked file exists, the tables hold the csv's values with
their intervals, the best per column and the training column are marked, the A/B data names the
strips."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from lit_rpe.study.report_html import StudySetView, main, write_study_html

COLUMNS = ["set", "model", "rule", "height", "width", "metric", "seeds", "mean", "seed_low",
           "seed_high", "vs_extrapolate", "vs_extrapolate_low", "vs_extrapolate_high",
           "vs_extrapolate_significant"]  # fmt: skip
# (model, rule, side, metric, mean, low, high, vs_extrapolate, significant)
LINES = [
    ("rope_grid", "extrapolate", 16, "one_object", 0.5, 0.4, 0.6, "nan", False),
    ("rope_grid", "extrapolate", 32, "one_object", 0.9, 0.85, 0.95, "nan", False),
    ("rope_grid", "yarn", 16, "one_object", 0.7, 0.65, 0.75, 0.2, True),
    ("rope_grid", "yarn", 32, "one_object", 0.9, 0.85, 0.95, 0.0, False),
    ("rpe2d_rope", "rpe2d_even", 16, "one_object", 0.75, 0.7, 0.8, "nan", False),
    ("rpe2d_rope", "rpe2d_even", 32, "one_object", 0.8, 0.7, 0.9, "nan", False),
    ("rope_grid", "extrapolate", 16, "val_loss", 0.3, 0.25, 0.35, "nan", False),
    ("rope_grid", "yarn", 16, "val_loss", 0.4, 0.3, 0.5, 0.1, True),
    ("rpe2d_rope", "rpe2d_even", 16, "val_loss", 0.2, 0.1, 0.3, "nan", False),
]
VIEW = StudySetView(
    "shapes", {"rope_grid": "extrapolate", "rpe2d_rope": "rpe2d_even"}, "32x32", 1, 16
)


class Page(HTMLParser):
    """Every linked file, the study tables' cells (model, row, res) -> [(metric, text, bold)],
    the head's training columns and the A/B data."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.cells: dict[tuple[str, str, str], list[tuple[str, str, bool]]] = {}
        self.train_columns: list[str] = []
        self.data = None
        self._model = self._row = self._cell = self._item = None
        self._in_data = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "table" and "data-model" in a:
            self._model = a["data-model"]
        elif tag == "th" and self._model and a.get("class") == "train":
            self.train_columns.append(a["data-res"])
        elif tag == "tr" and "data-row" in a:
            self._row = a["data-row"]
        elif tag == "td" and self._row:
            self._cell = self.cells.setdefault((self._model, self._row, a["data-res"]), [])
        elif tag == "li" and self._cell is not None:
            self._item = [a["data-metric"], "", a.get("class") == "best"]
        elif tag == "script" and a.get("id") == "cells-data":
            self._in_data = True

    def handle_data(self, data):
        if self._item is not None:
            self._item[1] += data
        if self._in_data:
            self.data = json.loads(data)

    def handle_endtag(self, tag):
        if tag == "li" and self._item is not None:
            self._cell.append(tuple(self._item))
            self._item = None
        elif tag == "script":
            self._in_data = False
        elif tag == "table":
            self._model = self._row = self._cell = None


def write_study_files(folder: Path, strips=("rope_grid", "rpe2d_rope")) -> None:
    folder.mkdir(parents=True)
    with (folder / "study.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for model, rule, side, metric, mean, low, high, vs, sig in LINES:
            out.writerow(["shapes", model, rule, side, side, metric, 3, mean, low, high, vs,
                          "nan", "nan", sig])  # fmt: skip
    names = [f"samples_shapes_{m}.png" for m in strips] + ["shapes_models.png", "shapes_rules.png"]
    for i, name in enumerate(names):
        Image.new("RGB", (40, 12), (40 * i, 0, 0)).save(folder / name)
    (folder / "tables_shapes.md").write_text("# tables\n")


def test_page_links_existing_files_and_holds_the_csv_values(tmp_path):
    folder = tmp_path / "study_cpu"
    write_study_files(folder)
    (tmp_path / "RESULTS.md").write_text("# results\n")
    page = Page(write_study_html(folder, [VIEW]).read_text())
    linked = [unquote(link) for link in page.links if not link.startswith("#")]
    assert linked and [p for p in linked if not (folder / p).is_file()] == []
    assert {"samples_shapes_rope_grid.png", "shapes_models.png", "study.csv"} <= set(linked)
    cell = page.cells[("rope_grid", "rope_grid / yarn", "16x16")]
    # ▲: yarn's one_object beats extrapolate's (significant, higher is better); its val_loss is
    # significantly higher, so worse: ▼
    assert cell == [("one_object", "one_object 0.7 [0.65, 0.75] ▲", False),
                    ("val_loss", "val_loss 0.4 [0.3, 0.5] ▼", False)]  # fmt: skip
    # best per column over every model and rule of the set: the higher one_object, the lower loss
    assert page.cells[("rpe2d_rope", "rpe2d_rope / rpe2d_even", "16x16")] == [
        ("one_object", "one_object 0.75 [0.7, 0.8]", True),
        ("val_loss", "val_loss 0.2 [0.1, 0.3]", True),
    ]
    assert page.cells[("rope_grid", "rope_grid / extrapolate", "32x32")] == [
        ("one_object", "one_object 0.9 [0.85, 0.95]", True)  # a tie is best too
    ]
    values = sum(len(items) for items in page.cells.values())
    assert values == len(LINES)  # every csv line once, nothing invented
    assert page.train_columns == ["32x32", "32x32"]  # one table per model
    assert page.data["rows"] == ["rope_grid", "rpe2d_rope"]
    assert page.data["grids"]["rpe2d_rope"] == {"shapes": "samples_shapes_rpe2d_rope.png"}


def test_a_missing_strip_is_said_not_linked(tmp_path):
    folder = tmp_path / "study_cpu"
    write_study_files(folder, strips=("rope_grid",))
    text = write_study_html(folder, [VIEW]).read_text()
    assert "samples_shapes_rpe2d_rope.png not found" in text
    assert 'href="samples_shapes_rpe2d_rope.png"' not in text
    assert Page(text).data["rows"] == ["rope_grid"]


def test_bad_input_stops_with_one_line(tmp_path, capsys):
    folder = tmp_path / "study_cpu"
    with pytest.raises(FileNotFoundError, match="study.csv not found: `make study` writes it"):
        write_study_html(folder, [VIEW])
    write_study_files(folder)
    photos = StudySetView("photos", VIEW.own_rules, "32x32", 1, 16)
    with pytest.raises(ValueError, match=r"data set\(s\) \['shapes'\] not in the study plan"):
        write_study_html(folder, [photos])
    (folder / "study.csv").write_text("set,model\nshapes,rope_grid\n")
    with pytest.raises(SystemExit, match="error: .*not a study.csv, no column"):
        main([str(folder)])
    assert not (folder / "report.html").exists()
