"""Ledger throughput and batch overhead, measured in one run.

(a) result events appended per second: 200-trade results, one `save()` each, to a SQLite file;
(b) `btledger run` with 1 worker (engine, events and read-model projection included) against a bare
    sequential backtesting.py loop over the same 40 combinations (target ratio <= 1.10);
(c) the same 40 with 2 workers against 1 worker (target speedup >= 1.8 on 2 cores).

The 40 combinations: SmaCross, DonchianBreakout, RsiMeanReversion and RandomTrader × risks 0.5–2.5
on EURUSD H1 (5000 bars) and on GOOG D1 (2148 bars), i.e. 20 + 20 runs.

Usage: ``uv run python benchmarks/ledger.py [--json]``; `measure()` returns the rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from backtesting import Backtest
from report import emit

from btledger.bootstrap import projecting
from btledger.config import load_instruments, load_settings
from btledger.domain.batch import run_batch
from btledger.domain.commands import RunBatch, parse
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.costs import costs_for
from btledger.engine.data import load_frame
from btledger.engine.pool import WorkerPool
from btledger.engine.registry import get_strategy
from btledger.engine.result import RunSpec
from btledger.synthetic import synthetic_outcome

STRATEGIES = ["SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader"]
RISKS = [0.5, 1.0, 1.5, 2.0, 2.5]
BATCHES = [
    {"tickers": ["EURUSD"], "timeframes": ["H1"], "date_from": "2017-04-19", "date_to": "2018-02-08"},
    {"tickers": ["GOOG"], "timeframes": ["D1"], "date_from": "2004-08-19", "date_to": "2013-03-02"},
]
OVERHEAD_TARGET = 1.10
SPEEDUP_TARGET = 1.8


def _row(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    target: float | None,
    met: bool | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": met,
    }


def _commands() -> list[RunBatch]:
    return [parse(RunBatch, {"strategies": STRATEGIES, "risks": RISKS, **batch}) for batch in BATCHES]


def append_rate(count: int = 300) -> float:
    """Result events (200 trades each) appended per second, one save per result."""
    with tempfile.TemporaryDirectory() as home:
        ledger = Ledger(env=store_env(Path(home)))
        outcomes = [synthetic_outcome(n_trades=200, return_pct=float(i)) for i in range(count)]
        specs = [
            RunSpec("SmaCross", "EURUSD", "H1", 1.0 + i, date(2017, 5, 1), date(2018, 2, 1), 1e5) for i in range(count)
        ]
        started = time.perf_counter()
        for spec, outcome in zip(specs, outcomes, strict=True):
            ledger.record_outcome(spec, outcome)
        return count / (time.perf_counter() - started)


def bare_loop() -> float:
    """Wall seconds of a plain sequential backtesting.py loop over the 40 combinations."""
    settings, instruments = load_settings(), load_instruments()
    jobs = []
    for command in _commands():
        for spec in command.specs():
            costs = costs_for(spec.ticker, instruments.instruments[spec.ticker], instruments, settings.account_currency)
            bars = load_frame(spec.ticker, spec.timeframe, spec.date_from, spec.date_to, settings).ohlcv
            jobs.append((spec, costs, bars))
    started = time.perf_counter()
    for spec, costs, bars in jobs:
        strategy = get_strategy(spec.strategy).cls
        Backtest(
            bars,
            strategy,
            cash=spec.initial_cash,
            spread=costs.spread,
            commission=costs.commission,
            margin=costs.margin,
            finalize_trades=True,
        ).run(risk=spec.risk, lots=costs.lots)
    return time.perf_counter() - started


def ledger_run(workers: int) -> float:
    """Wall seconds of what `btledger run --workers N` does for the 40: pool, engine, events, projection."""
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        started = time.perf_counter()
        ledger = Ledger(env=store_env(home))
        with WorkerPool(workers) as pool, projecting(ledger, home):
            for command in _commands():
                report = run_batch(ledger, command, pool, home)
                assert report.summary["recorded"] == 20, report.summary
        return time.perf_counter() - started


def measure() -> list[dict[str, Any]]:
    rate = append_rate()
    bare_loop(), ledger_run(1)  # warm-up: imports, data caches, first fork
    bare = min(bare_loop() for _ in range(2))
    one = min(ledger_run(1) for _ in range(2))
    two = min(ledger_run(2) for _ in range(2))
    overhead, speedup = one / bare, one / two
    return [
        _row("ledger_append_200_trade_results", rate, "events/s", None, None, None, None),
        _row(
            "ledger_run_40_one_worker_vs_bare_loop",
            one,
            "s",
            bare,
            overhead,
            OVERHEAD_TARGET,
            overhead <= OVERHEAD_TARGET,
        ),
        _row(
            "ledger_run_40_speedup_two_workers", speedup, "x", one, speedup, SPEEDUP_TARGET, speedup >= SPEEDUP_TARGET
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    emit(measure(), args.json)


if __name__ == "__main__":
    main()
