"""The ledger benchmark's baseline: a bare sequential backtesting.py loop, in a process of its own.

What a quant's script does without btledger: for each of the 40 combinations, `Backtest(...).run()`
on the same bars, with the same strategy, costs and options as `btledger run`; nothing recorded.
Bars are loaded and each strategy runs once before the clock starts. It runs as a fresh process
(`uv run python benchmarks/bare_loop.py` prints the seconds; `--wait` first prints "ready" and waits
for a line on stdin, so two loops can start together) so that the loop meets Python's garbage
collector as a script does, not in whatever state the benchmark's own process has reached (worker
pools freeze the heap before they fork: a loop run after that was 15-25 % faster).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import date

import pandas as pd
from backtesting import Backtest

from btledger.config import load_instruments, load_settings
from btledger.engine.costs import Costs, costs_for
from btledger.engine.data import load_frame
from btledger.engine.registry import get_strategy
from btledger.engine.result import RunSpec

STRATEGIES = ["SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader"]
RISKS = [0.5, 1.0, 1.5, 2.0, 2.5]
BATCHES = [
    {"tickers": ["EURUSD"], "timeframes": ["H1"], "date_from": "2017-04-19", "date_to": "2018-02-08"},
    {"tickers": ["GOOG"], "timeframes": ["D1"], "date_from": "2004-08-19", "date_to": "2013-03-02"},
]


def specs() -> list[RunSpec]:
    """The 40 combinations, as `RunBatch.specs()` orders them."""
    cash = load_settings().initial_cash
    return [
        RunSpec(strategy, ticker, timeframe, risk, date.fromisoformat(begin), date.fromisoformat(end), cash)
        for batch in BATCHES
        for begin, end in [(batch["date_from"], batch["date_to"])]
        for strategy in STRATEGIES
        for ticker in batch["tickers"]
        for timeframe in batch["timeframes"]
        for risk in RISKS
    ]


def seconds(ready: Callable[[], None] = lambda: None) -> float:
    """Wall seconds of the loop over the 40 combinations; `ready()` is called just before the clock starts."""
    settings, instruments = load_settings(), load_instruments()
    jobs = []
    for spec in specs():
        costs = costs_for(spec.ticker, instruments.instruments[spec.ticker], instruments, settings.account_currency)
        bars = load_frame(spec.ticker, spec.timeframe, spec.date_from, spec.date_to, settings).ohlcv
        jobs.append((spec, costs, bars))

    def run(spec: RunSpec, costs: Costs, bars: pd.DataFrame) -> None:
        Backtest(
            bars,
            get_strategy(spec.strategy).cls,
            cash=spec.initial_cash,
            spread=costs.spread,
            commission=costs.commission,
            margin=costs.margin,
            finalize_trades=True,
        ).run(risk=spec.risk, lots=costs.lots)

    for job in {job[0].strategy: job for job in jobs}.values():  # warm-up: one run of each strategy
        run(*job)
    ready()
    started = time.perf_counter()
    for job in jobs:
        run(*job)
    return time.perf_counter() - started


def _when_told() -> None:
    """Say "ready" and wait for a line on stdin: loops in two processes then start their clocks together."""
    print("ready", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    print(json.dumps(seconds(_when_told if "--wait" in sys.argv else lambda: None)))
