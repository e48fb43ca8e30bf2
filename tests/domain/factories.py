"""Hand-made keys and outcomes, so ledger tests do not depend on the engine's numbers; and a CSV data source,
for tests that change the bars a recorded result ran on."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from btledger.config import clear_config_cache
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


def goog_from_csv(home: Path) -> Path:
    """Settings that read GOOG's daily bars from a CSV file holding backtesting.py's sample; the file's path."""
    from backtesting.test import GOOG

    folder = home / "prices"
    folder.mkdir()
    GOOG.to_csv(folder / "GOOG_D1.csv", index_label="Date")
    (home / "configs").mkdir()
    (home / "configs" / "settings.yaml").write_text(f"data_source: csv\ncsv: {{folder: {folder}}}\n")
    clear_config_cache()
    return folder / "GOOG_D1.csv"
