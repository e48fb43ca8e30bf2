"""Hand-made keys and outcomes, so ledger tests do not depend on the engine's numbers."""

from __future__ import annotations

from datetime import date

from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS, BacktestOutcome, RunSpec


def spec(strategy: str = "SmaCross", ticker: str = "EURUSD", timeframe: str = "H1", risk: float = 1.0) -> RunSpec:
    return RunSpec(
        strategy=strategy,
        ticker=ticker,
        timeframe=timeframe,
        risk=risk,
        date_from=date(2017, 5, 1),
        date_to=date(2018, 2, 1),
        initial_cash=100_000.0,
    )


def outcome(return_pct: float = 10.0, trades: int = 3) -> BacktestOutcome:
    metrics: dict[str, float | int | None] = dict.fromkeys(METRIC_COLUMNS, 1.0)
    metrics.update(return_pct=return_pct, trades=trades)
    columns: dict[str, list[float | int | str | None]] = {name: [1.0] * trades for name in TRADE_COLUMNS}
    columns["entry_time"] = ["2017-05-02T10:00:00+00:00"] * trades
    columns["exit_time"] = ["2017-05-03T10:00:00+00:00"] * trades
    return BacktestOutcome(
        metrics=metrics,
        trade_performance=dict.fromkeys(TRADE_PERFORMANCE_COLUMNS, 0.5),
        trades=columns,
        data_source="sample",
        data_fingerprint="d" * 64,
        bars=1000,
        strategy_fingerprint="s" * 64,
        versions={"backtesting": "0.6.6"},
        costs={"leverage": 30.0},
        currency="USD",
        wall_time_s=0.05,
    )
