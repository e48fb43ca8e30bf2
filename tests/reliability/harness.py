"""Shared tools of the reliability tests: processes to kill, the event store seen from outside, read-model
tables compared row by row, and synthetic trade-heavy ledgers built fast through the Ledger."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from btledger.domain.backtest import Backtest
from btledger.domain.ledger import Ledger
from btledger.engine.result import (
    METRIC_COLUMNS,
    TRADE_COLUMNS,
    TRADE_PERFORMANCE_COLUMNS,
    BacktestOutcome,
    JsonScalar,
    RunSpec,
)
from btledger.projections.readmodel import ReadModel
from btledger.projections.schema import TABLES

REPO = Path(__file__).resolve().parents[2]
RESULT_TOPIC = "%Backtest.ResultRecorded"


# --- the event store, read from outside the process that writes it ---------------------------------


def _events_db(home: Path) -> sqlite3.Connection | None:
    path = home / "events.sqlite"
    if not path.exists():
        return None
    # Read-only: never create or change the file the victim writes.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _select(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = _events_db(home)
    if connection is None:
        return []
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError as error:  # the victim has not created the table yet
        if "no such table" in str(error):
            return []
        raise
    finally:
        connection.close()


def results_recorded(home: Path) -> int:
    """How many ResultRecorded events the store holds (committed ones only: SQLite shows no others)."""
    rows = _select(home, "SELECT count(*) FROM stored_events WHERE topic LIKE ?", (RESULT_TOPIC,))
    return int(rows[0][0]) if rows else 0


def event_count(home: Path) -> int:
    rows = _select(home, "SELECT count(*) FROM stored_events")
    return int(rows[0][0]) if rows else 0


def result_snapshot(home: Path) -> dict[tuple[str, int], str]:
    """Every committed ResultRecorded event: (aggregate id, version) → SHA-256 of its stored state."""
    rows = _select(
        home,
        "SELECT originator_id, originator_version, state FROM stored_events WHERE topic LIKE ?",
        (RESULT_TOPIC,),
    )
    return {(str(oid), int(version)): hashlib.sha256(bytes(state)).hexdigest() for oid, version, state in rows}


def results_per_aggregate(home: Path) -> Counter[str]:
    return Counter(oid for oid, _ in result_snapshot(home))


# --- processes to kill -----------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc)."""
    children: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                children.extend(int(child) for child in listing.read().split())
    except FileNotFoundError:
        pass
    return children


def running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting to be reaped has finished)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_until_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """Wait (bounded) for `pids` to end; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if running(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if running(pid)]
    return alive


def holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (e.g. it has started opening the read model)."""
    target = str(path.resolve())
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    except OSError:
        pass
    return False


@dataclass
class Victim:
    """A subprocess to be killed, its output in files (a pipe nobody reads could block it)."""

    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, args: list[str], home: Path, workdir: Path) -> Victim:
        env = {**os.environ, "BTLEDGER_HOME": str(home)}
        env.pop("BTLEDGER_API_TOKEN", None)
        stdout = (workdir / "stdout").open("w+b")
        stderr = (workdir / "stderr").open("w+b")
        process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        return cls(process, stdout, stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def printed(self) -> list[str]:
        """The complete lines it has printed so far."""
        with open(self.stdout.name, "rb") as out:
            text = out.read().decode(errors="replace")
        return text.split("\n")[:-1]

    def kill(self) -> list[int]:
        """SIGKILL it; returns the children it had (its worker processes), which must end on their own."""
        children = child_pids(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.close()
        return children

    def finish(self, timeout: float = 300.0) -> tuple[int, str, str]:
        code = self.process.wait(timeout)
        out, err = self.output()
        self.close()
        return code, out, err

    def output(self) -> tuple[str, str]:
        self.stdout.seek(0)
        self.stderr.seek(0)
        return self.stdout.read().decode(errors="replace"), self.stderr.read().decode(errors="replace")

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


# --- read models -----------------------------------------------------------------------------------


def table_rows(readmodel: ReadModel) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the read model, every column, rows sorted: two read models are equal when these are.

    No column is left out: every value in the read model is a function of the events (times are the
    events' own timestamps), so none is non-deterministic.
    """
    cur = readmodel.cursor()
    return {table.name: cur.execute(f"SELECT * FROM {table.name} ORDER BY ALL").fetchall() for table in TABLES}


def clean_rebuild(ledger: Ledger, directory: Path) -> dict[str, list[tuple[object, ...]]]:
    """The tables of a read model rebuilt from event 1 into a new file."""
    with ReadModel.open(directory / "clean.duckdb") as clean:
        clean.rebuild(ledger)
        return table_rows(clean)


def differences(actual: dict[str, list[Any]], expected: dict[str, list[Any]]) -> dict[str, str]:
    """Per table, a short description of how two `table_rows` differ (empty when equal)."""
    found = {}
    for name in expected:
        a, e = actual.get(name), expected[name]
        if a != e:
            extra = len(set(a or []) - set(e))
            missing = len(set(e) - set(a or []))
            found[name] = f"{len(a or [])} rows vs {len(e)} in a clean rebuild ({extra} extra, {missing} missing)"
    return found


def schemas(readmodel: ReadModel) -> list[str]:
    rows = readmodel.cursor().execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
        "AND regexp_matches(schema_name, '^rm[0-9]+$')"
    )
    return sorted(name for (name,) in rows.fetchall())


# --- synthetic trade-heavy ledgers -----------------------------------------------------------------


def synthetic_outcome(index: int, trades: int) -> BacktestOutcome:
    """A plausible outcome with `trades` trades; metrics vary with `index` so rankings are not all ties."""
    metrics: dict[str, Any] = {
        name: float((index * 7 + position) % 13) / 3 for position, name in enumerate(METRIC_COLUMNS)
    }
    metrics.update(trades=trades, return_dd=None if index % 17 == 0 else 0.5 + (index % 9) / 2)
    start = date(2020, 1, 2)
    columns: dict[str, list[Any]] = {name: [float(index + i) / 10 for i in range(trades)] for name in TRADE_COLUMNS}
    columns["entry_bar"] = list(range(0, 2 * trades, 2))
    columns["exit_bar"] = list(range(1, 2 * trades, 2))
    columns["entry_time"] = [f"{start + timedelta(hours=6 * i)}T00:00:00+00:00" for i in range(trades)]
    columns["exit_time"] = [f"{start + timedelta(hours=6 * i)}T03:00:00+00:00" for i in range(trades)]
    columns["tag"] = [None if i % 3 else f"t{i}" for i in range(trades)]
    performance: dict[str, JsonScalar] = {
        **dict.fromkeys(TRADE_PERFORMANCE_COLUMNS, 0.25),
        "long_count": trades,
        "short_count": 0,
    }
    return BacktestOutcome(
        metrics=metrics,
        trade_performance=performance,
        trades=columns,
        data_source="synthetic",
        data_fingerprint="a" * 64,
        bars=2 * trades + 1,
        strategy_fingerprint="b" * 64,
        versions={"backtesting": "0.6.6"},
        costs={"commission": 0.0},
        currency="USD",
        wall_time_s=0.01,
        margin_cancelled_orders=0,
    )


def synthetic_spec(index: int, strategy: str | None = None) -> RunSpec:
    return RunSpec(
        strategy=strategy or ("SmaCross", "DonchianBreakout", "RsiMeanReversion")[index % 3],
        ticker=("EURUSD", "GOOG", "AAPL", "MSFT")[(index // 3) % 4],
        timeframe=("H1", "H4", "D1", "W1")[(index // 12) % 4],
        risk=1.0 + index // 48,
        date_from=date(2020, 1, 1),
        date_to=date(2023, 1, 1),
        initial_cash=100_000.0,
    )


def add_results(ledger: Ledger, first: int, count: int, trades: int, strategy: str | None = None) -> list[Backtest]:
    """`count` recorded results (indices first..), saved 100 aggregates at a time: fast, still real events."""
    backtests = []
    for index in range(first, first + count):
        backtest = Backtest.register(synthetic_spec(index, strategy))
        backtest.record_result(synthetic_outcome(index, trades))
        backtests.append(backtest)
    for start in range(0, len(backtests), 100):
        ledger.save(*backtests[start : start + 100])
    return backtests
