"""Synthetic outcomes: valid `BacktestOutcome`s made without running the engine.

For tests and benchmarks of the ledger and the read models, where the numbers do not matter but their
shape does (every metric column, column-wise trades one day apart, provenance filled in).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from btledger.engine.result import (
    METRIC_COLUMNS,
    TRADE_COLUMNS,
    TRADE_PERFORMANCE_COLUMNS,
    BacktestOutcome,
    JsonScalar,
)


def synthetic_outcome(
    return_dd: float | None = 2.0, stability_weighted_rar: float | None = 1.0, n_trades: int = 3, **metrics: Any
) -> BacktestOutcome:
    """Every metric 1.0 unless given, `n_trades` trades one day apart from 2020-01-02."""
    values: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, 1.0)
    values.update(trades=n_trades, return_dd=return_dd, stability_weighted_rar=stability_weighted_rar, **metrics)
    start = date(2020, 1, 2)
    trades: dict[str, list[Any]] = {name: [float(i) for i in range(n_trades)] for name in TRADE_COLUMNS}
    trades["entry_bar"] = list(range(n_trades))
    trades["exit_bar"] = [i + 1 for i in range(n_trades)]
    trades["entry_time"] = [f"{start + timedelta(days=i)}T00:00:00+00:00" for i in range(n_trades)]
    trades["exit_time"] = [f"{start + timedelta(days=i + 1)}T12:30:00+00:00" for i in range(n_trades)]
    trades["tag"] = [None] * n_trades
    # Counts are whole numbers, as the engine's are: the read model keeps them as integers.
    counts = {"long_count": n_trades, "short_count": 0, "consecutive_wins": n_trades, "consecutive_losses": 0}
    performance: dict[str, JsonScalar] = {**dict.fromkeys(TRADE_PERFORMANCE_COLUMNS, 0.5), **counts}
    return BacktestOutcome(
        metrics=values,
        trade_performance=performance,
        trades=trades,
        data_source="sample",
        data_fingerprint="f" * 64,
        bars=500,
        strategy_fingerprint="s" * 64,
        versions={"backtesting": "0.6.6"},
        costs={"commission": 0.0},
        currency="USD",
        wall_time_s=0.1,
        margin_cancelled_orders=0,
    )
