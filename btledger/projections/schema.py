"""The read model's tables: every column defined once, here, and the DDL generated from it.

Layout inside the DuckDB file:

- Each build of the read model lives in its own schema (`rm1`, `rm2`, ...), tracking position
  included, so a rebuild fills a fresh schema while readers keep the old one.
- `main` holds one view per table (`main.backtests` → `rmN.backtests`, ...): the names analysts
  query. A rebuild repoints every view in one transaction.
- `main.read_model` (one row) names the live schema and the fingerprint of the layout that built it;
  a different fingerprint (the code's tables changed) makes the next catch-up rebuild.

Tables marked internal are the projector's own state; they are documented and queryable too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS

#: The view schema analysts query and the table naming the live build.
VIEW_SCHEMA = "main"
META_TABLE = "main.read_model"
SCHEMA_PREFIX = "rm"


@dataclass(frozen=True)
class Table:
    """A table: its name and `(column, DuckDB type)` pairs, in contract order."""

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self, schema: str) -> str:
        body = ",\n  ".join(f"{name} {type_}" for name, type_ in self.columns)
        return f"CREATE TABLE {schema}.{self.name} (\n  {body}\n)"


def _typed(names: tuple[str, ...], integers: frozenset[str] = frozenset()) -> tuple[tuple[str, str], ...]:
    return tuple((name, "BIGINT" if name in integers else "DOUBLE") for name in names)


#: The backtest key (plus the strategy parameters, which are part of it).
KEY = (
    ("id", "VARCHAR"),
    ("strategy", "VARCHAR"),
    ("ticker", "VARCHAR"),
    ("timeframe", "VARCHAR"),
    ("risk", "DOUBLE"),
    ("date_from", "DATE"),
    ("date_to", "DATE"),
    ("initial_cash", "DOUBLE"),
    ("method", "VARCHAR"),
)
KEY_NAMES = tuple(name for name, _ in KEY)

METRICS = _typed(METRIC_COLUMNS, frozenset({"trades"}))

#: Provenance of a result, after the contract's columns (extra columns the contract welcomes).
PROVENANCE = (
    ("params", "JSON"),
    ("currency", "VARCHAR"),
    ("data_source", "VARCHAR"),
    ("data_fingerprint", "VARCHAR"),
    ("strategy_fingerprint", "VARCHAR"),
    ("bars", "BIGINT"),
    ("plot_path", "VARCHAR"),
)


def _scanned(columns: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`columns` with the id and the metrics of type DOUBLE stored uncompressed.

    A search or ranking reads them for every row (filters, sort keys, tie-breaks, the rows it
    returns), and DuckDB copies plain values several times faster than it decodes ALP doubles or
    FSST strings: 40 % of a search over 100k results. One row per result: the space is small.
    """
    plain = " USING COMPRESSION uncompressed"
    return tuple(
        (name, type_ + plain if name == "id" or (name in METRIC_COLUMNS and type_ == "DOUBLE") else type_)
        for name, type_ in columns
    )


#: A live result: key, favourite flag, metrics, the orders the broker cancelled for lack of margin (NULL:
#: recorded before they were counted), when its result was recorded and the aggregate version of its
#: latest state change, then provenance.
BACKTESTS = Table(
    "backtests",
    _scanned(
        (
            *KEY,
            ("favorite", "BOOLEAN"),
            *METRICS,
            ("margin_cancelled_orders", "BIGINT"),
            ("recorded_at", "TIMESTAMPTZ"),
            ("version", "BIGINT"),
            *PROVENANCE,
        )
    ),
)

#: One row per state of a result (recorded, favourite toggled, deleted, restored). A ranking "as
#: of T" reads the rows with valid_from <= T < coalesce(valid_to, infinity) AND live. The current
#: row (valid_to IS NULL) of a deleted result keeps its metrics: restore copies them back.
BACKTEST_VERSIONS = Table(
    "backtest_versions",
    (*BACKTESTS.columns, ("valid_from", "TIMESTAMPTZ"), ("valid_to", "TIMESTAMPTZ"), ("live", "BOOLEAN")),
)

TRADE_PERFORMANCE = Table(
    "trade_performance",
    (
        ("backtest_id", "VARCHAR"),
        *_typed(
            TRADE_PERFORMANCE_COLUMNS,
            frozenset({"consecutive_wins", "consecutive_losses", "long_count", "short_count"}),
        ),
    ),
)

_TRADE_TYPES = {"entry_bar": "BIGINT", "exit_bar": "BIGINT", "entry_time": "TIMESTAMPTZ",
                "exit_time": "TIMESTAMPTZ", "tag": "VARCHAR"}  # fmt: skip
TRADES = Table(
    "trades",
    (
        ("backtest_id", "VARCHAR"),
        ("trade_no", "BIGINT"),
        *((name, _TRADE_TYPES.get(name, "DOUBLE")) for name in TRADE_COLUMNS),
    ),
)

#: One row per robustness test of a live result; `summary` holds the headline figures of its kind.
ROBUSTNESS_TESTS = Table(
    "robustness_tests",
    (
        ("test_id", "VARCHAR"),
        ("backtest_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("seed", "BIGINT"),
        ("parameters", "JSON"),
        ("summary", "JSON"),
        ("recorded_at", "TIMESTAMPTZ"),
    ),
)

#: Every metric of a robustness test, long form (non-numeric values are NULL; see the event payload).
ROBUSTNESS_METRICS = Table(
    "robustness_metrics",
    (("test_id", "VARCHAR"), ("backtest_id", "VARCHAR"), ("metric", "VARCHAR"), ("value", "DOUBLE")),
)

#: Every event of the ledger, flattened; payload is the event's state as readable JSON.
#: Payloads are stored uncompressed: DuckDB compresses strings this long (a result's is ~32 KB) with
#: zstd, 3.6x smaller but at ~110 MB/s here, two thirds of the cost of writing a rebuild into the file
#: and of every checkpoint after trade-heavy batches. The event store holds them uncompressed too.
LEDGER_EVENTS = Table(
    "ledger_events",
    (
        ("position", "BIGINT"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("event_type", "VARCHAR"),
        ("backtest_id", "VARCHAR"),
        ("strategy", "VARCHAR"),
        ("version", "BIGINT"),
        ("payload", "JSON USING COMPRESSION uncompressed"),
    ),
)

TIMEFRAMES = Table("timeframes", (("name", "VARCHAR"), ("minutes", "BIGINT"), ("selected", "BOOLEAN")))

#: Tracking: the last ledger position applied, written in the transaction that applied it.
PROJECTION_POSITIONS = Table(
    "projection_positions", (("projection", "VARCHAR PRIMARY KEY"), ("position", "BIGINT NOT NULL"))
)

#: Events the projector could not apply, parked with the error in the transaction that moved past them.
DEAD_LETTERS = Table(
    "dead_letters",
    (
        ("position", "BIGINT"),
        ("event_type", "VARCHAR"),
        ("backtest_id", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("error", "VARCHAR"),
        ("payload", "VARCHAR"),
    ),
)

#: Internal: every backtest key ever registered with its current status
#: (pending | recorded | failed | deleted), favourite flag, last error and count of results.
BACKTEST_KEYS = Table(
    "backtest_keys",
    (
        *KEY,
        ("params", "JSON"),
        ("registered_at", "TIMESTAMPTZ"),
        ("status", "VARCHAR"),
        ("favorite", "BOOLEAN"),
        ("deleted", "BOOLEAN"),
        ("results", "BIGINT"),
        ("last_error", "VARCHAR"),
    ),
)


def _archive(table: Table) -> Table:
    return Table(f"deleted_{table.name}", table.columns)


#: Rows of a result that leave the live tables on deletion and come back on restore.
RESULT_ROWS = (TRADES, TRADE_PERFORMANCE, ROBUSTNESS_TESTS, ROBUSTNESS_METRICS)
#: Internal: where those rows wait while their result is deleted (same columns).
ARCHIVES = {table.name: _archive(table) for table in RESULT_ROWS}

TABLES: tuple[Table, ...] = (
    BACKTESTS,
    BACKTEST_VERSIONS,
    *RESULT_ROWS,
    LEDGER_EVENTS,
    TIMEFRAMES,
    PROJECTION_POSITIONS,
    DEAD_LETTERS,
    BACKTEST_KEYS,
    *ARCHIVES.values(),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}

#: Changes whenever a table definition changes: a stored build with another fingerprint is rebuilt.
LAYOUT_FINGERPRINT = hashlib.sha256("\n".join(t.ddl("s") for t in TABLES).encode()).hexdigest()[:16]


def schema_name(generation: int) -> str:
    return f"{SCHEMA_PREFIX}{generation}"
