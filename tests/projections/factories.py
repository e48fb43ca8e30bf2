"""Hand-made keys and outcomes for read-model tests (no engine involved), and the read model they go in."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from btledger.config import Timeframe, Timeframes
from btledger.engine.result import RunSpec
from btledger.projections.readmodel import DEFAULT_BATCH_SIZE, ReadModel
from btledger.synthetic import synthetic_outcome as outcome  # noqa: F401 (the tests' name for it)

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


def open_readmodel(path: Path, batch_size: int = DEFAULT_BATCH_SIZE) -> ReadModel:
    """A read model in a real DuckDB file at `path`, with `TIMEFRAMES`."""
    return ReadModel.open(path, timeframes=TIMEFRAMES, batch_size=batch_size)
