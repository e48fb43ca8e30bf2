"""Turning a batch of ledger events into read-model rows, and the thread that keeps projecting.

`project_batch` applies events in order to the state of the backtests they touch (loaded from the
read model at the start of the batch), then writes every table set-wise: one Arrow table per
target table, `INSERT … BY NAME SELECT * FROM <arrow>` (trades: their stored JSON, which DuckDB
parses), and set-based DELETE/UPDATE keyed by id lists. It runs inside the caller's transaction;
the caller also advances the tracking position there (see `ReadModel.catch_up`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS
from btledger.projections import schema as s
from btledger.projections.events import LedgerEvent, to_json

if TYPE_CHECKING:
    from btledger.domain.ledger import Ledger
    from btledger.projections.readmodel import ReadModel

log = logging.getLogger(__name__)

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    # Numbers travel as float64 and DuckDB casts on insert: engines emit 10.0 for a count.
    "DOUBLE": pa.float64(),
    "BIGINT": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


_JSON = pa.json_(pa.large_string())


@cache
def _arrow_schema(table: s.Table) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[type_.split()[0]]) for name, type_ in table.columns])


_rows_json = msgspec.json.Encoder()
# In the caller's thread: a batch's rows take milliseconds to read, and a batch's workers need the other cores.
_READ_OPTIONS = pa_json.ReadOptions(use_threads=False)


@cache
def _parse_options(schema: pa.Schema) -> pa_json.ParseOptions:
    # Arrow's JSON reader takes a date only as text: such columns are read as text, then cast.
    as_read = pa.schema([pa.field(f.name, pa.string()) if f.type == pa.date32() else f for f in schema])
    return pa_json.ParseOptions(explicit_schema=as_read, unexpected_field_behavior="ignore")


def arrow_rows(schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) as an Arrow table of `schema`'s columns; missing ones are NULL, other keys ignored.

    Written as JSON lines by msgspec and read by Arrow's JSON reader against `schema`: a value of the wrong
    type is an error, as it was with `pa.array` (NaN and ±inf, which no event holds, become NULL). The first
    `pa.array` of a process imports pandas (pyarrow checks its input for pandas types): ≈ 0.3 s of a
    `btledger favorite`, whose catch-up writes a few rows. The reader costs ≈ 0.2 ms more a table on a row
    or two, and less on 10k rows (0.06-0.08 s against 0.08-0.09 s; `pa.Table.from_pylist` took 2.3× as long).
    """
    if not rows:
        return schema.empty_table()
    lines = pa.BufferReader(_rows_json.encode_lines(rows))
    return pa_json.read_json(lines, read_options=_READ_OPTIONS, parse_options=_parse_options(schema)).cast(schema)


def arrow_table(table: s.Table, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) as an Arrow table of `table`'s columns (see `arrow_rows`)."""
    return arrow_rows(_arrow_schema(table), rows)


#: Where a result's current `backtest_versions` row ends (the batch's first new version of it).
_CLOSES = pa.schema([("id", pa.string()), ("valid_to", _ARROW_TYPES["TIMESTAMPTZ"])])
#: Which result event each trades text (`_trades_json`) came from.
_TRADE_SOURCES = pa.schema([("position", pa.int64()), ("backtest_id", pa.string())])


def over_frame(cur: duckdb.DuckDBPyConnection, frame: pa.Table, sql: str, params: list[Any] | None = None) -> None:
    """Run `sql`, which reads `frame` as the table `batch_rows`.

    DuckDB finds `batch_rows` among the local variables of the function that calls `execute` (a
    replacement scan), so the call stays here. Registering a view of the frame and unregistering it
    cost 1.5-2 ms a statement: a fifth of a one-result catch-up.
    """
    batch_rows = frame  # noqa: F841 - read by name, by DuckDB
    cur.execute(sql, params)


@dataclass
class _Backtest:
    """What the projector knows of one backtest while it applies a batch."""

    key: dict[str, Any]  # a backtest_keys row
    current: dict[str, Any] | None  # the current result as a backtests row (kept while deleted)
    live_at_start: bool
    #: Registered in this batch: the read model holds no row of it yet, so nothing to delete.
    is_new: bool = False
    new_result: LedgerEvent | None = None
    tests: list[LedgerEvent] = field(default_factory=list)  # recorded after the batch's last result
    versions: list[dict[str, Any]] = field(default_factory=list)
    closes_open_version: bool = False

    @property
    def live(self) -> bool:
        return self.current is not None and not self.key["deleted"]

    @property
    def status(self) -> str:
        if self.key["deleted"]:
            return "deleted"
        if self.current is not None:
            return "recorded"
        return "failed" if self.key["last_error"] is not None else "pending"

    def new_version(self, event: LedgerEvent) -> None:
        """A state change of the result: close the previous version, open one from `event`."""
        assert self.current is not None
        self.current = {**self.current, "favorite": self.key["favorite"], "version": event.version}
        if self.versions:
            self.versions[-1]["valid_to"] = event.recorded_at
        else:
            self.closes_open_version = True
        self.versions.append({**self.current, "valid_from": event.recorded_at, "valid_to": None, "live": self.live})


class _Batch:
    """The effect of one batch of events on the read model, computed in memory then written."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, schema: str, batch: EventBatch) -> None:
        self.cur, self.schema, self.events, self.payloads = cur, schema, batch.events, batch.payloads
        self.parsed_trades = batch.trades
        registered_here = {e.backtest_id for e in self.events if e.event_type == "Registered"}
        self.backtests: dict[str, _Backtest] = self._load({e.backtest_id for e in self.events} - registered_here)
        self.ledger_rows: list[dict[str, Any]] = []

    def _select(self, sql: str, ids: list[str]) -> list[dict[str, Any]]:
        self.cur.execute(sql.format(s=self.schema), [ids])
        names = [d[0] for d in self.cur.description]
        return [dict(zip(names, row, strict=True)) for row in self.cur.fetchall()]

    def _load(self, ids: set[str]) -> dict[str, _Backtest]:
        if not ids:
            return {}
        wanted = sorted(ids)
        keys = self._select("SELECT * FROM {s}.backtest_keys WHERE id IN (SELECT unnest(?))", wanted)
        current = {
            row["id"]: row
            for row in self._select(
                "SELECT * EXCLUDE (valid_from, valid_to, live) FROM {s}.backtest_versions "
                "WHERE valid_to IS NULL AND id IN (SELECT unnest(?))",
                wanted,
            )
        }
        loaded = {}
        for key in keys:
            row = current.get(key["id"])
            loaded[key["id"]] = _Backtest(key, row, live_at_start=row is not None and not key["deleted"])
        return loaded

    # --- applying events in order ----------------------------------------------------------------

    def apply(self) -> None:
        for event in self.events:
            handler = getattr(self, f"_on_{event.event_type}", None)
            backtest = self.backtests.get(event.backtest_id)
            if handler is not None and (backtest is not None or event.event_type == "Registered"):
                handler(event, backtest)
            elif handler is not None:
                raise LookupError(f"{event.event_type} for backtest {event.backtest_id}, which was never registered")
            backtest = self.backtests.get(event.backtest_id)
            self.ledger_rows.append(
                {
                    "position": event.position,
                    "recorded_at": event.recorded_at,
                    "event_type": event.event_type,
                    "backtest_id": event.backtest_id,
                    "strategy": backtest.key["strategy"] if backtest else event.state.get("strategy"),
                    "version": event.version,
                }
            )

    def _on_Registered(self, event: LedgerEvent, _: _Backtest | None) -> None:
        state = event.state
        key = {name: state[name] for name in s.KEY_NAMES if name != "id"}
        self.backtests[event.backtest_id] = _Backtest(
            key={
                "id": event.backtest_id,
                **key,
                "params": to_json(state.get("params") or {}),
                "registered_at": event.recorded_at,
                "favorite": False,
                "deleted": False,
                "results": 0,
                "last_error": None,
            },
            current=None,
            live_at_start=False,
            is_new=True,
        )

    def _on_ResultRecorded(self, event: LedgerEvent, backtest: _Backtest) -> None:
        state = event.state
        metrics = state["metrics"]
        key = backtest.key
        backtest.current = {
            **{name: key[name] for name in s.KEY_NAMES},
            **{name: metrics.get(name) for name in METRIC_COLUMNS},
            "margin_cancelled_orders": state.get("margin_cancelled_orders"),
            "recorded_at": event.recorded_at,
            "params": key["params"],
            **{name: state.get(name) for name in ("currency", "data_source", "data_fingerprint")},
            **{name: state.get(name) for name in ("strategy_fingerprint", "bars", "plot_path")},
        }
        key["results"] += 1
        key["last_error"] = None
        key["deleted"] = False  # a rerun of a deleted key is a new, live result (as in the aggregate)
        backtest.new_result = event
        backtest.tests = []  # tests of the replaced result no longer apply
        backtest.new_version(event)

    def _on_RunFailed(self, event: LedgerEvent, backtest: _Backtest) -> None:
        backtest.key["last_error"] = event.state["error"]

    def _on_FavoriteToggled(self, event: LedgerEvent, backtest: _Backtest) -> None:
        backtest.key["favorite"] = bool(event.state["favorite"])
        if backtest.current is not None:
            backtest.new_version(event)

    def _on_Deleted(self, event: LedgerEvent, backtest: _Backtest) -> None:
        backtest.key["deleted"] = True
        if backtest.current is not None:
            backtest.new_version(event)

    def _on_Restored(self, event: LedgerEvent, backtest: _Backtest) -> None:
        backtest.key["deleted"] = False
        if backtest.current is not None:
            backtest.new_version(event)

    def _on_RobustnessTestRecorded(self, event: LedgerEvent, backtest: _Backtest) -> None:
        backtest.tests.append(event)

    # --- writing ---------------------------------------------------------------------------------

    def _insert(self, table: s.Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            over_frame(
                self.cur,
                arrow_table(table, rows),
                f"INSERT INTO {self.schema}.{table.name} BY NAME SELECT * FROM batch_rows",
            )

    def _insert_trades(self, table: s.Table, results: list[_Backtest]) -> None:
        events = [b.new_result for b in results if b.new_result is not None]
        if not events:
            return
        if self.parsed_trades is not None:  # parsed ahead: the rows of this batch's last results
            over_frame(
                self.cur,
                self.parsed_trades,
                f"INSERT INTO {self.schema}.{table.name} BY NAME SELECT * EXCLUDE (position) FROM batch_rows "
                "WHERE position IN (SELECT unnest(?))",
                [[event.position for event in events]],
            )
            return
        frame = _trades_json(events)
        if frame.num_rows:
            over_frame(
                self.cur,
                frame,
                f"INSERT INTO {self.schema}.{table.name} BY NAME SELECT * EXCLUDE (position) FROM ({_TRADES_SELECT})",
            )

    def _delete(self, table: s.Table, column: str, ids: list[str]) -> None:
        if ids:
            self.cur.execute(f"DELETE FROM {self.schema}.{table.name} WHERE {column} IN (SELECT unnest(?))", [ids])

    def _move(self, source: s.Table, target: s.Table, ids: list[str]) -> None:
        if ids:
            self.cur.execute(
                f"INSERT INTO {self.schema}.{target.name} "
                f"SELECT * FROM {self.schema}.{source.name} WHERE backtest_id IN (SELECT unnest(?))",
                [ids],
            )
            self._delete(source, "backtest_id", ids)

    def write(self) -> None:
        backtests = self.backtests.values()
        insert_ledger_events(self.cur, self.schema, self.ledger_rows, self.payloads)

        # Every backtest loaded or registered here was touched by an event of the batch.
        self._delete(s.BACKTEST_KEYS, "id", [b.key["id"] for b in backtests if not b.is_new])
        keys = [{**b.key, "status": b.status} for b in backtests]
        self._insert(s.BACKTEST_KEYS, keys)

        changed = [b for b in backtests if b.versions]
        closes = [b for b in changed if b.closes_open_version and not b.is_new]  # a new one has no version row
        if closes:
            frame = arrow_rows(_CLOSES, [{"id": b.key["id"], "valid_to": b.versions[0]["valid_from"]} for b in closes])
            over_frame(
                self.cur,
                frame,
                f"UPDATE {self.schema}.backtest_versions AS v SET valid_to = c.valid_to "
                "FROM batch_rows AS c WHERE v.id = c.id AND v.valid_to IS NULL",
            )
        versions = [row for b in changed for row in b.versions]
        self._insert(s.BACKTEST_VERSIONS, versions)
        self._delete(s.BACKTESTS, "id", [b.key["id"] for b in changed if not b.is_new])
        live = [b.current for b in changed if b.live and b.current is not None]
        self._insert(s.BACKTESTS, live)

        self._write_result_rows(list(backtests))

    def _write_result_rows(self, backtests: list[_Backtest]) -> None:
        replaced = [b.key["id"] for b in backtests if b.new_result is not None and not b.is_new]
        for table in s.RESULT_ROWS:
            self._delete(table, "backtest_id", replaced)
            self._delete(s.ARCHIVES[table.name], "backtest_id", replaced)
        kept = [b for b in backtests if b.new_result is None and b.live_at_start != b.live]
        for table in s.RESULT_ROWS:
            archive = s.ARCHIVES[table.name]
            self._move(table, archive, [b.key["id"] for b in kept if not b.live])
            self._move(archive, table, [b.key["id"] for b in kept if b.live])
        for live in (True, False):
            group = [b for b in backtests if b.live == live]

            def target(table: s.Table, live: bool = live) -> s.Table:
                return table if live else s.ARCHIVES[table.name]

            results = [b for b in group if b.new_result is not None]
            self._insert_trades(target(s.TRADES), results)
            self._insert(target(s.TRADE_PERFORMANCE), _trade_performance_rows(results))
            tests = [(b, event) for b in group for event in b.tests]
            self._insert(target(s.ROBUSTNESS_TESTS), _robustness_test_rows(tests))
            self._insert(target(s.ROBUSTNESS_METRICS), _robustness_metric_rows(tests))


def insert_ledger_events(
    cur: duckdb.DuckDBPyConnection, schema: str, rows: Sequence[dict[str, Any]], payloads: pa.Array | None
) -> None:
    """Insert `ledger_events` rows with their payloads (`payload_array`, in row order; None: no payloads)."""
    frame = arrow_table(s.LEDGER_EVENTS, rows)
    if payloads is not None:
        frame = frame.set_column(frame.schema.get_field_index("payload"), "payload", payloads)
    over_frame(cur, frame, f"INSERT INTO {schema}.{s.LEDGER_EVENTS.name} BY NAME SELECT * FROM batch_rows")


def payload_array(events: Sequence[LedgerEvent]) -> pa.Array:
    """The events' payloads, tagged as JSON: DuckDB stores them without parsing them again (the decoder
    produced them with msgspec, from parts msgspec had parsed, so they are valid JSON by construction)."""
    return pa.ExtensionArray.from_storage(_JSON, _text_array([event.payload for event in events]))


def _text_array(texts: Sequence[bytes | msgspec.Raw]) -> pa.Array:
    """UTF-8 texts as one Arrow string array, copied once.

    `pa.array` re-grows its buffer as it goes: for the megabytes of payloads in a batch, the copies and
    the fresh memory they touch cost more than DuckDB's insert of them.
    """
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(memoryview(text)) for text in texts], out=offsets[1:])
    array = pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(b"".join(texts)))
    array.validate(full=True)  # UTF-8
    return array


def _trades_json(results: Sequence[LedgerEvent]) -> pa.Table:
    """(position, backtest_id, trades as JSON text) of every result event with trades."""
    sources, texts = [], []
    for event in results:
        text = event.trades_json()
        if text is not None:
            sources.append({"position": event.position, "backtest_id": event.backtest_id})
            texts.append(text)
    frame = arrow_rows(_TRADE_SOURCES, sources).append_column("trades", _text_array(texts))
    # DuckDB scans an Arrow table's record batches in parallel: one task per ~1 MB of JSON to parse
    # (one batch kept it on one core, at half the speed when a second one is free).
    return pa.Table.from_batches(frame.to_batches(max_chunksize=32), frame.schema)


def _trades_select() -> str:
    """Trade rows (with their event's position) from `batch_rows` (see `_trades_json`), parsed
    and unnested by DuckDB.

    Decoding 200 trades × 18 columns into Python objects and converting them to Arrow cost more than
    all of DuckDB's insert; DuckDB's JSON reader does it in C++. `json_transform_strict` fails on a
    missing column or a value of the wrong type (a tag may be any JSON scalar: the column is text), so
    a malformed result is parked rather than stored with NULLs.
    """
    structure = to_json({name: f"{type_}[]" for name, type_ in s.TRADES.columns if name in TRADE_COLUMNS})
    first = TRADE_COLUMNS[0]
    same_length = " AND ".join(f"len(t.{name}) = len(t.{first})" for name in TRADE_COLUMNS[1:])
    unnested = ", ".join(f"unnest(t.{name}) AS {name}" for name in TRADE_COLUMNS)
    return (
        f"SELECT position, backtest_id, unnest(range(1, len(t.{first}) + 1)) AS trade_no, {unnested} "
        f"FROM (SELECT position, backtest_id, json_transform_strict(trades, '{structure}') AS t FROM batch_rows) "
        f"WHERE CASE WHEN {same_length} THEN true ELSE error('trade columns of unequal length') END"
    )


_TRADES_SELECT = _trades_select()


def parse_trades(con: duckdb.DuckDBPyConnection, events: Sequence[LedgerEvent]) -> pa.Table:
    """The trade rows of every result among `events`, parsed on `con` (a connection of its own)."""
    # Read by name as in `over_frame`, but through a relation: Arrow from a DB-API result is one more copy.
    batch_rows = _trades_json([event for event in events if event.event_type == "ResultRecorded"])  # noqa: F841
    return con.sql(_TRADES_SELECT).to_arrow_table()


def _trade_performance_rows(results: list[_Backtest]) -> list[dict[str, Any]]:
    return [
        {"backtest_id": b.key["id"], **(b.new_result.state["trade_performance"] or {})}
        for b in results
        if b.new_result is not None
    ]


def _robustness_test_rows(tests: list[tuple[_Backtest, LedgerEvent]]) -> list[dict[str, Any]]:
    return [
        {
            "test_id": event.state["test_id"],
            "backtest_id": backtest.key["id"],
            "kind": event.state["kind"],
            "seed": event.state["seed"],
            "parameters": to_json(event.state["parameters"]),
            "summary": to_json(event.state["summary"]),
            "recorded_at": event.recorded_at,
        }
        for backtest, event in tests
    ]


def _robustness_metric_rows(tests: list[tuple[_Backtest, LedgerEvent]]) -> list[dict[str, Any]]:
    return [
        {
            "test_id": event.state["test_id"],
            "backtest_id": backtest.key["id"],
            "metric": metric,
            "value": value if isinstance(value, int | float) and not isinstance(value, bool) else None,
        }
        for backtest, event in tests
        for metric, value in (event.state["metrics"] or {}).items()
    ]


@dataclass(frozen=True)
class EventBatch:
    """A batch's events, and the part of its rows that needs no read-model state.

    Built apart from `project_batch`, so a rebuild builds the next batch's on another thread while
    DuckDB writes this one (see `ReadModel._read_ahead`).
    """

    events: Sequence[LedgerEvent]
    #: `ledger_events.payload`, in event order (`payload_array`).
    payloads: pa.Array
    #: Every result's trade rows, parsed ahead (`parse_trades`), or None: parsed as they are inserted.
    trades: pa.Table | None = None

    @classmethod
    def of(cls, events: Sequence[LedgerEvent], trade_parser: duckdb.DuckDBPyConnection | None = None) -> EventBatch:
        """The batch of `events`; with `trade_parser`, a connection of the caller's thread, trades parsed too."""
        return cls(events, payload_array(events), None if trade_parser is None else parse_trades(trade_parser, events))


def project_batch(cur: duckdb.DuckDBPyConnection, schema: str, batch: EventBatch) -> None:
    """Apply `batch`'s events (in order) to the tables of `schema`, inside the caller's open transaction."""
    projection = _Batch(cur, schema, batch)
    projection.apply()
    projection.write()


class Projector:
    """A thread that keeps a read model caught up with a ledger.

    It catches up on start, then waits for `notify()` (called after a command appends events) or a
    short poll interval, so events appended by other processes are picked up too. Errors reading the
    store or writing DuckDB are logged and retried with backoff; poison events never stop it (they
    are parked in `dead_letters`). Stop it before closing the read model.
    """

    def __init__(self, readmodel: ReadModel, ledger: Ledger, poll_interval: float = 0.05) -> None:
        self.readmodel, self.ledger, self.poll_interval = readmodel, ledger, poll_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Projector:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="btledger-projector", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        """Wake the thread now (a command just appended events)."""
        self._wake.set()

    def __enter__(self) -> Projector:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.readmodel.catch_up(self.ledger, stop=self._stopping)
                backoff = self.poll_interval
            except Exception:
                log.exception("projection failed; retrying in %.2f s", backoff)
                backoff = min(backoff * 2, 5.0)
            self._wake.wait(backoff)
