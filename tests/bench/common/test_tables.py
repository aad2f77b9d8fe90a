"""The one table helper of the benchmarks: cell formatting and markdown tables."""

import pytest

from bench.common.tables import fmt3, format_cell, keyed_table, markdown_table


@pytest.mark.parametrize(
    "value, text",
    [(None, "-"), (True, "yes"), (False, "no"), (0.45678, "0.457"), (123.4, "123"),
     (-2.5, "-2.50"), (12, "12"), ("flash", "flash"), (float("nan"), "nan")],
)  # fmt: skip
def test_cells_are_formatted_to_three_significant_digits(value, text):
    assert format_cell(value) == text


@pytest.mark.parametrize("value, text", [(112.4, "112"), (30.84, "30.8"), (5.5, "5.50")])
def test_fmt3_keeps_trailing_zeros(value, text):
    assert fmt3(value) == text


def test_markdown_table_prints_cells_as_given():
    assert markdown_table(["a", "b"], [[1, "x"]]).splitlines() == [
        "| a | b |", "| --- | --- |", "| 1 | x |"
    ]  # fmt: skip


def test_keyed_table_formats_cells_and_marks_missing_keys():
    columns = [("encoder", "encoder"), ("images_per_s", "images/s"), ("mfu", "MFU")]
    rows = [{"encoder": "rope", "images_per_s": 1234.5}]
    assert keyed_table(columns, rows).splitlines()[2] == "| rope | 1234 | - |"
