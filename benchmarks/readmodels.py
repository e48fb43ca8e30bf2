"""Read-model benchmark: rebuild throughput and query latency on synthetic ledgers.

1. Rebuild: a ledger of 10,000 results with 200 trades each (2 M trade rows) is projected from event 1
   into a fresh DuckDB file. Baseline: a bare DuckDB bulk insert of the same rows (every table the
   rebuild fills, each from one DataFrame, one transaction) — what DuckDB alone needs to store them,
   timed until they are in the file (COMMIT and CHECKPOINT), as the rebuild's are when it returns.
   Target: the rebuild reaches at least half the bare insert's rate. For reference,
   `*_vs_bare_commit_only` stops the baseline's clock at its COMMIT, with its rows still in the WAL.
2. Queries: a ledger of 100,000 small results (2 trades each, so building it stays under a minute)
   is projected; the robust ranking and a filtered search run on DuckDB and, on the same rows copied
   into SQLite without indexes (as the seed's schema; an indexed copy is reported for reference), the
   same SQL. Median of repeated runs, the two sides timed in turn, rows fetched and turned into dicts
   on both sides, each file opened afresh as a command opens it. Target: DuckDB at least 5× faster.
   For reference, `filtered_search_*_right_after_catch_up` times the search in the DuckDB instance that
   has just projected the 100k results: it answered 2-35 % slower than a fresh one (it holds the rows
   it appended in memory, ~430 MB; a CHECKPOINT did not make it faster, reopening the file did).

Usage: ``uv run python benchmarks/readmodels.py [--quick] [--json]`` (`--quick`: 1,000 heavy and
10,000 small results); `measure(quick)` returns the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from btledger.config import load_timeframes
from btledger.domain.backtest import Backtest
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS, BacktestOutcome, RunSpec
from btledger.projections import queries
from btledger.projections.readmodel import ReadModel
from btledger.projections.schema import TABLES

HEAVY_RESULTS, HEAVY_TRADES = 10_000, 200
SMALL_RESULTS, SMALL_TRADES = 100_000, 2
QUICK_HEAVY_RESULTS, QUICK_SMALL_RESULTS = 1_000, 10_000
REBUILD_TARGET, QUERY_TARGET = 0.5, 5.0
REPEATS = 15
TIMEFRAMES = ("M5", "M15", "M30", "H1", "H4", "D1", "W1")
SEARCH = {
    "min_return": 10.0,
    "max_drawdown": 25.0,
    "min_trades": 20,
    "min_sharpe": 0.5,
    "min_win_rate": 45.0,
    "sort": "stability_weighted_rar",
    "limit": 100,
}


# --- synthetic ledgers ---------------------------------------------------------------------------


def _outcome(rng: np.random.Generator, trades: int, times: list[str]) -> BacktestOutcome:
    """Plausible metrics (a few percent of zero-drawdown runs with a null ratio) and `trades` trades."""
    metrics: dict[str, Any] = dict(zip(METRIC_COLUMNS, rng.normal(1.0, 1.0, len(METRIC_COLUMNS)).tolist(), strict=True))
    drawdown = float(rng.uniform(0.0, 40.0)) if rng.random() > 0.03 else 0.0
    return_pct = float(rng.normal(15.0, 20.0))
    metrics.update(
        trades=int(rng.integers(0, 300)),
        return_pct=return_pct,
        drawdown_pct=drawdown,
        return_dd=return_pct / drawdown if drawdown else None,
        win_rate=float(rng.uniform(20.0, 70.0)),
        sharpe_ratio=float(rng.normal(0.5, 0.7)),
        stability_weighted_rar=float(rng.normal(2.0, 3.0)),
    )
    columns: dict[str, list[Any]] = {name: np.round(rng.normal(1.0, 1.0, trades), 6).tolist() for name in TRADE_COLUMNS}
    columns["entry_bar"] = list(range(0, 2 * trades, 2))
    columns["exit_bar"] = list(range(1, 2 * trades, 2))
    columns["entry_time"] = times[0:trades]
    columns["exit_time"] = times[1 : trades + 1]
    columns["tag"] = [None] * trades
    return BacktestOutcome(
        metrics=metrics,
        trade_performance=dict(
            zip(TRADE_PERFORMANCE_COLUMNS, rng.random(len(TRADE_PERFORMANCE_COLUMNS)).tolist(), strict=True)
        ),
        trades=columns,
        data_source="synthetic",
        data_fingerprint="0" * 64,
        bars=2 * trades + 1,
        strategy_fingerprint="1" * 64,
        versions={"backtesting": "0.6.6"},
        costs={"commission": 0.0},
        currency="USD",
        wall_time_s=0.0,
        margin_cancelled_orders=0,
    )


def build_ledger(home: Path, results: int, trades: int, seed: int = 0) -> Ledger:
    """`results` recorded results over 20 strategies × 50 tickers × 7 timeframes × risks × a parameter."""
    ledger = Ledger(env=store_env(home))
    rng = np.random.default_rng(seed)
    start = date(2020, 1, 1)
    times = [f"{start + timedelta(hours=6 * i)}T{6 * i % 24:02d}:00:00+00:00" for i in range(trades + 1)]
    pending = []
    for i in range(results):
        spec = RunSpec(
            strategy=f"Strategy{i % 20}",
            ticker=f"TICK{(i // 20) % 50}",
            timeframe=TIMEFRAMES[(i // 1000) % len(TIMEFRAMES)],
            risk=1.0 + (i // 7000) % 3,
            date_from=date(2020, 1, 1),
            date_to=date(2024, 1, 1),
            initial_cash=100_000.0,
            params={"n": i // 21_000},
        )
        backtest = Backtest.register(spec)
        backtest.record_result(_outcome(rng, trades, times))
        pending.append(backtest)
        if len(pending) == 100:  # many aggregates per save: builds the store fast
            ledger.save(*pending)
            pending = []
    if pending:
        ledger.save(*pending)
    return ledger


# --- rebuild vs bare insert ----------------------------------------------------------------------


def _bare_insert_seconds(source: ReadModel, directory: Path) -> tuple[float, float]:
    """Seconds to insert every table's rows, each from one DataFrame, into a fresh DuckDB file: until
    the rows are in the file (COMMIT, then CHECKPOINT), and until the COMMIT only.

    The COMMIT alone leaves them in the WAL (375 MB for 10k results), to be checkpointed when the file
    is closed; a rebuild ends with its rows in the file, having checkpointed them as it commits.
    """
    frames = {t.name: source.cursor().execute(f"SELECT * FROM {t.name}").df() for t in TABLES}
    target = duckdb.connect(str(directory / "bare.duckdb"))
    for table in TABLES:
        target.execute(table.ddl("main"))
    start = time.perf_counter()
    target.execute("BEGIN TRANSACTION")
    for name, frame in frames.items():
        target.register("frame", frame)
        target.execute(f"INSERT INTO {name} SELECT * FROM frame")
        target.unregister("frame")
    target.execute("COMMIT")
    committed = time.perf_counter() - start
    target.execute("CHECKPOINT")
    stored = time.perf_counter() - start
    target.close()
    return stored, committed


def measure_rebuild(directory: Path, results: int) -> list[dict[str, Any]]:
    ledger = build_ledger(directory, results, HEAVY_TRADES)
    events = ledger.head()
    with ReadModel.open(directory / "readmodel.duckdb", timeframes=load_timeframes()) as readmodel:
        start = time.perf_counter()
        readmodel.rebuild(ledger)
        rebuild = time.perf_counter() - start
        trade_rows = readmodel.cursor().execute("SELECT count(*) FROM trades").fetchall()[0][0]
        bare, bare_in_wal = _bare_insert_seconds(readmodel, directory)
    name = f"rebuild_{results}x{HEAVY_TRADES}"
    return [
        _row(f"{name}_events", events / rebuild, "events/s", events / bare, bare / rebuild, REBUILD_TARGET),
        _row(f"{name}_trade_rows", trade_rows / rebuild, "rows/s", trade_rows / bare, bare / rebuild, REBUILD_TARGET),
        # For reference: against the bare insert's COMMIT alone, its rows still in the WAL.
        _row(
            f"{name}_events_vs_bare_commit_only",
            events / rebuild,
            "events/s",
            events / bare_in_wal,
            bare_in_wal / rebuild,
        ),
    ]


# --- query latency: DuckDB vs SQLite -------------------------------------------------------------

_SQLITE_ROBUST = """
WITH considered AS (
    SELECT r.* FROM backtests AS r JOIN timeframes AS t ON t.name = r.timeframe AND t.selected
),
pairs AS (
    SELECT strategy, ticker, avg(return_dd) AS pair_avg_return_dd
    FROM considered GROUP BY strategy, ticker HAVING avg(return_dd) > 1
),
ranked AS (
    SELECT c.*, p.pair_avg_return_dd,
           row_number() OVER (
               PARTITION BY c.strategy, c.ticker
               ORDER BY c.stability_weighted_rar DESC NULLS LAST, c.return_dd DESC NULLS LAST, c.id
           ) AS best
    FROM considered AS c JOIN pairs AS p USING (strategy, ticker)
)
SELECT * FROM ranked WHERE best = 1
ORDER BY stability_weighted_rar DESC NULLS LAST, return_dd DESC NULLS LAST, id
"""
_SQLITE_WHERE = "WHERE return_pct >= ? AND drawdown_pct <= ? AND trades >= ? AND sharpe_ratio >= ? AND win_rate >= ?"


def _sqlite_copy(readmodel: ReadModel, path: Path, indexed: bool) -> None:
    """The `backtests` and `timeframes` rows in SQLite; `indexed` adds the indexes these queries use."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        cur = readmodel.cursor()
        for name in ("backtests", "timeframes"):
            rows = cur.execute(f"SELECT * FROM {name}").fetchall()
            columns = [d[0] for d in cur.description]
            con.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
            converted = [[v.isoformat() if hasattr(v, "isoformat") else v for v in row] for row in rows]
            con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))})", converted)
        if indexed:
            con.execute("CREATE INDEX backtests_timeframe ON backtests (timeframe, strategy, ticker)")
            con.execute("CREATE INDEX backtests_rar ON backtests (stability_weighted_rar)")
        con.commit()


def _sqlite_dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sqlite_search(con: sqlite3.Connection) -> tuple[int, list[dict[str, Any]]]:
    values = [SEARCH[k] for k in ("min_return", "max_drawdown", "min_trades", "min_sharpe", "min_win_rate")]
    total = con.execute(f"SELECT count(*) FROM backtests {_SQLITE_WHERE}", values).fetchone()[0]
    cursor = con.execute(
        f"SELECT * FROM backtests {_SQLITE_WHERE} ORDER BY stability_weighted_rar DESC NULLS LAST, id LIMIT ? OFFSET 0",
        [*values, SEARCH["limit"]],
    )
    return total, _sqlite_dicts(cursor)


def _paired_ms(duck: Callable[[], Any], lite: Callable[[], Any]) -> tuple[float, float]:
    """Median milliseconds of `duck` and of `lite`, run in turn: this machine's speed drifts by 20 %
    within a minute, so each side is timed next to the other rather than in a block of its own."""
    duck(), lite()  # warm caches on both sides
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for run, taken in zip((duck, lite), times, strict=True):
            start = time.perf_counter()
            run()
            taken.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def measure_queries(directory: Path, results: int) -> list[dict[str, Any]]:
    ledger = build_ledger(directory, results, SMALL_TRADES, seed=1)
    events = ledger.head()
    path = directory / "readmodel.duckdb"
    copies = {indexed: directory / f"same_rows_{indexed}.sqlite" for indexed in (False, True)}
    rows = []
    with ReadModel.open(path, timeframes=load_timeframes()) as readmodel:
        start = time.perf_counter()
        readmodel.catch_up(ledger)
        catch_up = time.perf_counter() - start
        rows.append(_row(f"catch_up_{results}x{SMALL_TRADES}_events", events / catch_up, "events/s", None, None))
        for indexed, copy in copies.items():
            _sqlite_copy(readmodel, copy, indexed)
        cur = readmodel.cursor()
        with contextlib.closing(sqlite3.connect(copies[False])) as sqlite:
            after_catch_up = _paired_ms(
                lambda: queries.filtered_search(cur, **SEARCH),  # type: ignore[arg-type]
                lambda: _sqlite_search(sqlite),
            )
    rows.append(_latency_row(f"filtered_search_{results}_ms_right_after_catch_up", *after_catch_up, None))
    # The rows as a command finds them: each file opened afresh (what `btledger search` and `rank` do).
    with ReadModel.open(path, timeframes=load_timeframes()) as readmodel:
        cur = readmodel.cursor()
        duck_robust = queries.robust_ranking(cur)
        page = queries.filtered_search(cur, **SEARCH)  # type: ignore[arg-type]
        # Baseline: the seed's SQLite schema had no secondary index; the indexed variant is for reference.
        for indexed, copy in copies.items():
            with contextlib.closing(sqlite3.connect(copy)) as sqlite:
                lite_robust = _sqlite_dicts(sqlite.execute(_SQLITE_ROBUST))
                assert [r["id"] for r in duck_robust] == [r["id"] for r in lite_robust], "robust rankings differ"
                lite_total, lite_items = _sqlite_search(sqlite)
                assert (page.total, [r["id"] for r in page.items]) == (lite_total, [r["id"] for r in lite_items]), (
                    "searches differ"
                )
                robust = _paired_ms(
                    lambda: queries.robust_ranking(cur),
                    lambda: _sqlite_dicts(sqlite.execute(_SQLITE_ROBUST)),
                )
                search = _paired_ms(
                    lambda: queries.filtered_search(cur, **SEARCH),  # type: ignore[arg-type]
                    lambda: _sqlite_search(sqlite),
                )
            suffix = "_vs_indexed_sqlite" if indexed else ""
            target = None if indexed else QUERY_TARGET
            rows.append(_latency_row(f"robust_ranking_{results}_ms{suffix}", *robust, target))
            rows.append(_latency_row(f"filtered_search_{results}_ms{suffix}", *search, target))
    return rows


def _row(
    name: str, value: float, unit: str, baseline: float | None, ratio: float | None, target: float | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline),
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "met": None if target is None or ratio is None else ratio >= target,
    }


def _latency_row(name: str, duck_ms: float, sqlite_ms: float, target: float | None) -> dict[str, Any]:
    """DuckDB's latency; baseline SQLite's on the same rows; ratio = how many times faster DuckDB is."""
    ratio = sqlite_ms / duck_ms
    return {
        "name": name,
        "value": round(duck_ms, 2),
        "unit": "ms",
        "baseline": round(sqlite_ms, 2),
        "ratio": round(ratio, 1),
        "target": target,
        "met": None if target is None else ratio >= target,
    }


def measure(quick: bool = False) -> list[dict[str, Any]]:
    """All rows: rebuild throughput against a bare insert, query latency against SQLite."""
    heavy = QUICK_HEAVY_RESULTS if quick else HEAVY_RESULTS
    small = QUICK_SMALL_RESULTS if quick else SMALL_RESULTS
    with tempfile.TemporaryDirectory() as rebuild_dir, tempfile.TemporaryDirectory() as query_dir:
        return measure_rebuild(Path(rebuild_dir), heavy) + measure_queries(Path(query_dir), small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 heavy and 10,000 small results")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = measure(args.quick)
    if args.json:
        print(
            json.dumps(
                [{k: row[k] for k in ("name", "value", "unit", "baseline", "ratio", "target", "met")} for row in rows]
            )
        )
        return
    print(f"{'name':<46} {'value':>12} {'unit':<9} {'baseline':>12} {'ratio':>7} {'target':>7}  met")
    for row in rows:
        target = "" if row["target"] is None else f"{row['target']:g}"
        baseline = "" if row["baseline"] is None else f"{row['baseline']:g}"
        ratio = "" if row["ratio"] is None else f"{row['ratio']:g}"
        met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
        print(f"{row['name']:<46} {row['value']:>12g} {row['unit']:<9} {baseline:>12} {ratio:>7} {target:>7}  {met}")


if __name__ == "__main__":
    main()
