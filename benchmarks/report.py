"""How every benchmark reports: rows of {name, value, unit, baseline, ratio, target, met}, printed as one
aligned table or, with --json, as a JSON list (the shape benchmarks/run_all.py collects)."""

from __future__ import annotations

import json
from typing import Any

FIELDS = ("name", "value", "unit", "baseline", "ratio", "target", "met")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (numbers right-aligned)."""
    cells = [[_cell(row[field]) for field in FIELDS] for row in rows]
    widths = [max([len(field), *(len(line[i]) for line in cells)]) for i, field in enumerate(FIELDS)]
    numeric = {"value", "baseline", "ratio", "target"}

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(width) if field in numeric else value.ljust(width)
            for field, value, width in zip(FIELDS, values, widths, strict=True)
        ).rstrip()

    return "\n".join([line(list(FIELDS)), line(["-" * width for width in widths]), *(line(c) for c in cells)])


def emit(rows: list[dict[str, Any]], as_json: bool) -> None:
    """Print `rows` as JSON (only the report's fields) or as the table."""
    rows = [{field: row.get(field) for field in FIELDS} for row in rows]
    print(json.dumps(rows) if as_json else table(rows))
