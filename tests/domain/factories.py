"""Hand-made keys and outcomes, so ledger tests do not depend on the engine's numbers."""

from __future__ import annotations

from datetime import date

from btledger.engine.result import BacktestOutcome, RunSpec
from btledger.synthetic import synthetic_outcome


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
    return synthetic_outcome(n_trades=trades, return_pct=return_pct)
