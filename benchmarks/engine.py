"""Engine overhead: `run_backtest` against a bare backtesting.py run of the same strategy on the same data.

One combination, SmaCross on EURUSD H1 (the whole sample, 5000 bars), no plot, in one process. The
baseline constructs `Backtest` with the same bars, costs and strategy parameters and calls `run()`;
ours adds validation, the cached data lookup, the trade table, every metric and the plain-JSON outcome,
and leaves out backtesting.py's own statistics, which it does not read (`btledger.engine.lean_stats`).
Both are warmed up once, then timed alternately in CPU time of this process (on a shared machine,
wall time mostly measures the neighbours); the median of the per-pair ratios must stay <= 1.10.

Usage: ``uv run python benchmarks/engine.py [--json]``; `measure()` returns the same rows.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from backtesting import Backtest
from report import emit

from btledger.config import load_instruments, load_settings
from btledger.engine import run_backtest
from btledger.engine.costs import costs_for
from btledger.engine.data import load_frame
from btledger.engine.result import RunSpec
from btledger.strategies.sma_cross import SmaCross

SPEC = RunSpec("SmaCross", "EURUSD", "H1", 1.0, date(2017, 4, 19), date(2018, 2, 7), 100_000.0)
TARGET_RATIO = 1.10
REPEATS = 21


def _timed(run: Callable[[], object]) -> float:
    gc.collect()  # so neither side pays for the other's garbage
    start = time.process_time()
    run()
    return time.process_time() - start


def measure(repeats: int = REPEATS) -> list[dict[str, Any]]:
    """One row: median CPU seconds of `run_backtest` and of the bare baseline, the median per-pair ratio,
    and the target."""
    settings = load_settings()
    instruments = load_instruments()
    costs = costs_for(SPEC.ticker, instruments.instruments[SPEC.ticker], instruments, settings.account_currency)
    bars = load_frame(SPEC.ticker, SPEC.timeframe, SPEC.date_from, SPEC.date_to, settings).ohlcv

    def bare() -> object:
        backtest = Backtest(
            bars,
            SmaCross,
            cash=SPEC.initial_cash,
            spread=costs.spread,
            commission=costs.commission,
            margin=costs.margin,
            finalize_trades=True,
        )
        return backtest.run(risk=SPEC.risk, lots=costs.lots)

    def ours() -> object:
        return run_backtest(SPEC, settings=settings)

    bare(), ours()  # warm-up: imports, indicator code paths, caches
    bare_times, our_times = [], []
    for _ in range(repeats):
        bare_times.append(_timed(bare))
        our_times.append(_timed(ours))
    baseline, value = statistics.median(bare_times), statistics.median(our_times)
    # Each pair ran back to back, so its ratio cancels slow drifts in machine load.
    ratio = statistics.median(ours / bare for ours, bare in zip(our_times, bare_times, strict=True))
    return [
        {
            "name": "engine_run_backtest_smacross_eurusd_h1",
            "value": round(value, 4),
            "unit": "s",
            "baseline": round(baseline, 4),
            "ratio": round(ratio, 3),
            "target": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    emit(measure(), args.json)


if __name__ == "__main__":
    main()
