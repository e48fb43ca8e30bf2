"""Terminal rendering of rows as rich tables (the `--json` paths bypass this module)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from btledger.projections.sql_values import jsonable

# Piped output gets a wide console: tables are for reading, and rich would otherwise wrap at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)

#: Columns shown in result tables, in order; `--json` and `sql` show everything.
RESULT_COLUMNS = (
    "id",
    "strategy",
    "ticker",
    "timeframe",
    "risk",
    "trades",
    "return_pct",
    "drawdown_pct",
    "return_dd",
    "win_rate",
    "sharpe_ratio",
    "stability_weighted_rar",
    "favorite",
)


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return "–"
    if column == "id" or column == "backtest_id":
        return str(value)[:8]
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, list | dict):  # a LIST, STRUCT or MAP as `sql --json` writes it, not as Python's repr
        return msgspec.json.encode(jsonable(value)).decode()
    return str(value)


def _text(value: Any, column: str = "") -> Text:
    """A cell shown as it is: rich would take a `[null]` or `[bold]` in it for markup and `:x:` for an emoji."""
    return console.render_str(cell(value, column), markup=False, emoji=False)


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print dict rows; `columns` picks and orders them (default: every key of the first row)."""
    if not rows:
        console.print(f"[dim]{title + ': ' if title else ''}no rows[/dim]")
        return
    shown = _with_date_range([c for c in (columns or list(rows[0])) if c in rows[0]], rows)
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in shown:
        table.add_column(column, overflow="fold", justify="right" if _numeric(rows, column) else "left")
    for row in rows:
        table.add_row(*(_text(row.get(column), column) for column in shown))
    console.print(table)


def _with_date_range(columns: list[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """`columns` with `date_from` and `date_to` after `risk` when the rows span more than one date range
    (a plan's batches, a search over several studies): rows that differ only by their dates would look alike."""
    if (
        "risk" not in columns
        or "date_from" in columns
        or len({(r.get("date_from"), r.get("date_to")) for r in rows}) < 2
    ):
        return columns
    at = columns.index("risk") + 1
    return [*columns[:at], "date_from", "date_to", *columns[at:]]


def strategies_table(listings: Sequence[dict[str, Any]]) -> None:
    """One row per parameter: its strategy, default and valid values; a strategy's rules on its first row."""
    rows = [
        {
            "strategy": listing["name"] if index == 0 else "",
            "parameter": name,
            "default": default,
            "valid values": listing["bounds"].get(name, "any"),
            "rules": "; ".join(listing["rules"]) if index == 0 else "",
        }
        for listing in listings
        for index, (name, default) in enumerate(sorted(listing["params"].items()) or [("", None)])
    ]
    rows_table(rows, title="strategies (btledger run --param NAME=VALUE)")


def key_values(data: dict[str, Any], title: str | None = None) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("name", style="bold")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, _text(value, key))
    console.print(table)


def _numeric(rows: Sequence[dict[str, Any]], column: str) -> bool:
    return any(isinstance(r.get(column), int | float) and not isinstance(r.get(column), bool) for r in rows)


err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

_STATUS_STYLE = {"recorded": "green", "skipped": "yellow", "failed": "red"}


def print_progress_line(event: dict[str, Any]) -> None:
    """One line per finished combination, on stderr so that stdout stays the result."""
    style = _STATUS_STYLE.get(str(event["status"]), "")
    where = (
        f"{event['strategy']} {event['ticker']} {event['timeframe']} risk {event['risk']} "
        f"{event['date_from']}→{event['date_to']}"
    )
    notes = [event["message"]] if event.get("message") else []
    if cancelled := event.get("margin_cancelled_orders"):
        notes.append(f"{cancelled} order{'s' if cancelled > 1 else ''} cancelled for margin")
    # Escaped: an error's text is anyone's (`[/x]` in it made rich raise instead of printing the line).
    note = escape("".join(f" — {text}" for text in notes))
    err_console.print(
        f"[{style}]{event['status']:>8}[/{style}] {escape(where)} [dim]{str(event['id'])[:8]}[/dim]{note}",
        highlight=False,
    )


def summarise_payload(payload: dict[str, Any], width: int = 80) -> str:
    """A one-line digest of an event payload: scalars shown as `history --json` writes them (`true`, `null`;
    text unquoted), large structures counted."""
    parts = []
    for key, value in payload.items():
        if isinstance(value, dict):
            parts.append(f"{key}={{{len(value)} keys}}")
        elif isinstance(value, list):
            parts.append(f"{key}=[{len(value)}]")
        else:
            scalar = jsonable(value)
            parts.append(f"{key}={scalar if isinstance(scalar, str) else msgspec.json.encode(scalar).decode()}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"
