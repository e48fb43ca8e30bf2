"""Hand-made keys and outcomes for read-model tests (no engine involved)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from btledger.config import Timeframe, Timeframes
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS, BacktestOutcome, RunSpec

#: H1, H4 and D1 are selected; M5 and M15 are not.
TIMEFRAMES = Timeframes(
    timeframes=[
        Timeframe(name="M5", minutes=5, mt5_constant=5),
        Timeframe(name="M15", minutes=15, mt5_constant=15),
        Timeframe(name="H1", minutes=60, mt5_constant=16385, selected=True),
        Timeframe(name="H4", minutes=240, mt5_constant=16388, selected=True),
        Timeframe(name="D1", minutes=1440, mt5_constant=16408, selected=True),
    ]
)


def spec(
    strategy: str = "SmaCross", ticker: str = "GOOG", timeframe: str = "D1", risk: float = 1.0, **params: Any
) -> RunSpec:
    return RunSpec(
        strategy=strategy,
        ticker=ticker,
        timeframe=timeframe,
        risk=risk,
        date_from=date(2020, 1, 1),
        date_to=date(2023, 1, 1),
        initial_cash=100_000.0,
        params=params,
    )


def outcome(
    return_dd: float | None = 2.0, stability_weighted_rar: float | None = 1.0, n_trades: int = 3, **metrics: Any
) -> BacktestOutcome:
    """A synthetic outcome: every metric set (overridable), `n_trades` trades, one day apart."""
    values: dict[str, Any] = {name: 1.0 for name in METRIC_COLUMNS}
    values.update(trades=n_trades, return_dd=return_dd, stability_weighted_rar=stability_weighted_rar, **metrics)
    start = date(2020, 1, 2)
    trades: dict[str, list[Any]] = {name: [float(i) for i in range(n_trades)] for name in TRADE_COLUMNS}
    trades["entry_bar"] = list(range(n_trades))
    trades["exit_bar"] = [i + 1 for i in range(n_trades)]
    trades["entry_time"] = [f"{start + timedelta(days=i)}T00:00:00+00:00" for i in range(n_trades)]
    trades["exit_time"] = [f"{start + timedelta(days=i + 1)}T12:30:00+00:00" for i in range(n_trades)]
    trades["tag"] = [None] * n_trades
    return BacktestOutcome(
        metrics=values,
        trade_performance={name: 0.5 for name in TRADE_PERFORMANCE_COLUMNS} | {"long_count": n_trades},
        trades=trades,
        data_source="sample",
        data_fingerprint="f" * 64,
        bars=500,
        strategy_fingerprint="s" * 64,
        versions={"backtesting": "0.6.6"},
        costs={"commission": 0.0},
        currency="USD",
        wall_time_s=0.1,
    )
