"""backtesting.py's `Backtest.run` without the statistics btledger does not read.

`Backtest.run` ends by handing the closed trades and the equity curve to backtesting.py's
`compute_stats`, which builds some thirty statistics with pandas: a third of each run's time over the
ledger benchmark's 40 combinations (1.0 of 3.1 s). btledger computes every metric itself, from the
trades and the equity (`btledger.engine.metrics`), so inside `lean_stats()` that call returns only
what btledger reads, built as backtesting.py builds it:

- `_equity_curve`: the `Equity` column, on the bars' index;
- `_trades`: the columns `Size`, `EntryBar`, `ExitBar`, `EntryPrice`, `ExitPrice`, `SL`, `TP`, `PnL`
  (net of commission), `Commission`, `EntryTime`, `ExitTime` and `Tag`;
- `_strategy`: the strategy instance.

`FractionalBacktest.run` rescales that result as it does the full one. A plot needs the full
statistics: run without `lean_stats()` for it.

backtesting.py looks `compute_stats` up in its module at each run; importing this module replaces it
there, once, by a function that defers to the library's unless the calling thread (or task) is inside
`lean_stats()`. A plain `Backtest.run` anywhere else in the process still returns every statistic.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import backtesting.backtesting as library
import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.backtesting import Trade

#: The trade frame's columns, from the `Trade` attribute backtesting.py fills each from.
_TRADE_COLUMNS = {
    "Size": "size",
    "EntryBar": "entry_bar",
    "ExitBar": "exit_bar",
    "EntryPrice": "entry_price",
    "ExitPrice": "exit_price",
    "SL": "sl",
    "TP": "tp",
    "PnL": "pl",
    "Commission": "_commissions",
    "EntryTime": "entry_time",
    "ExitTime": "exit_time",
    "Tag": "tag",
}

_lean = ContextVar("btledger_lean_stats", default=False)
# The library's own function (also when this module is imported again).
_full_stats = getattr(library.compute_stats, "__wrapped__", library.compute_stats)


def _trades_and_equity(
    trades: list[Trade], equity: np.ndarray, ohlc_data: pd.DataFrame, strategy_instance: Strategy
) -> pd.Series:
    frame = pd.DataFrame({column: [getattr(t, name) for t in trades] for column, name in _TRADE_COLUMNS.items()})
    return pd.Series(
        {
            "_equity_curve": pd.DataFrame({"Equity": equity}, index=ohlc_data.index),
            "_trades": frame,
            "_strategy": strategy_instance,
        }
    )


@functools.wraps(_full_stats)
def _compute_stats(*args: Any, **kwargs: Any) -> pd.Series:
    if not _lean.get():
        return _full_stats(*args, **kwargs)
    # Backtest.run passes these by keyword.
    return _trades_and_equity(kwargs["trades"], kwargs["equity"], kwargs["ohlc_data"], kwargs["strategy_instance"])


library.compute_stats = _compute_stats


@contextmanager
def lean_stats() -> Iterator[None]:
    """Within the block, `Backtest.run` in this thread returns only the equity curve, trades and strategy.

    >>> with lean_stats():
    ...     stats = Backtest(GOOG, SmaCross, finalize_trades=True).run()
    >>> list(stats.index)
    ['_equity_curve', '_trades', '_strategy']
    """
    token = _lean.set(True)
    try:
        yield
    finally:
        _lean.reset(token)
