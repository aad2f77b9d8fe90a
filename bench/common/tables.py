"""The one table helper of the benchmarks: number formatting and GitHub markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt3(value: float) -> str:
    """Three significant digits, trailing zeros kept: 112, 30.8, 5.50, 0.653."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_cell(value: Any) -> str:
    """Table cell text: 3 significant digits for floats, yes/no, '-' for missing values."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return ("-" if value < 0 else "") + fmt3(abs(value))
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def keyed_table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of dict rows: ``columns`` are (row key, header) pairs; every cell goes
    through ``format_cell`` (a missing key shows '-')."""
    cells = [[format_cell(row.get(key)) for key, _ in columns] for row in rows]
    return markdown_table([header for _, header in columns], cells)
