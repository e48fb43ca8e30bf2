"""The compute core: data sources, strategy registry, costs and sizing, backtest runner, metrics, worker pool.

The engine knows nothing of storage: a `RunSpec` goes in, a plain-JSON `BacktestOutcome` comes out.

- `run_backtest(spec, *, settings=None, plot_path=None) -> BacktestOutcome`: one backtest, in process.
- `WorkerPool(workers=None, settings=None, lazy=False)`: long-lived worker processes, started at once or
  (`lazy`) by the first `run` with jobs, one per job up to `workers`;
  `pool.run([(spec, plot_path), ...])` yields `(spec, outcome, None)` or `(spec, None, error)` as each
  finishes; an `Interrupt` (`btledger.engine.interrupt`) set from another thread ends it at once. Use as a
  context manager or call `close()`.
- `load_frame(ticker, timeframe, date_from, date_to, settings=None) -> Frame`: OHLCV bars with a
  SHA-256 fingerprint from the configured source; `load_instrument(ticker, settings=None)`.
- `get_strategy(name) -> StrategyEntry`, `strategy_names()`: the strategy registry.
- `RiskSizedStrategy`: base class of risk-sized strategies (`size_for_stop(price, stop)`).
- `SpecError` (a `ValueError`; message starts with the field name) and its subclass `DataError`.

Metric definitions are written down once, in `btledger.engine.metrics`.

Names are imported on first use, so importing `btledger.engine.result` (the contract other layers
use) does not pull in backtesting.py, pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from btledger.engine.data import Frame, load_frame, load_instrument
    from btledger.engine.errors import DataError, SpecError
    from btledger.engine.pool import WorkerPool
    from btledger.engine.registry import StrategyEntry, get_strategy, strategy_names
    from btledger.engine.result import BacktestOutcome, RunSpec
    from btledger.engine.runner import run_backtest
    from btledger.engine.sizing import RiskSizedStrategy

_EXPORTS = {
    "BacktestOutcome": "result",
    "DataError": "errors",
    "Frame": "data",
    "RiskSizedStrategy": "sizing",
    "RunSpec": "result",
    "SpecError": "errors",
    "StrategyEntry": "registry",
    "WorkerPool": "pool",
    "get_strategy": "registry",
    "load_frame": "data",
    "load_instrument": "data",
    "run_backtest": "runner",
    "strategy_names": "registry",
}

__all__ = [
    "BacktestOutcome",
    "DataError",
    "Frame",
    "RiskSizedStrategy",
    "RunSpec",
    "SpecError",
    "StrategyEntry",
    "WorkerPool",
    "get_strategy",
    "load_frame",
    "load_instrument",
    "run_backtest",
    "strategy_names",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
