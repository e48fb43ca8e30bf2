"""Runs without backtesting.py's statistics give btledger exactly what the full statistics give."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import FractionalBacktest
from backtesting.test import GOOG, SMA

from btledger.engine import run_backtest
from btledger.engine.lean_stats import lean_stats
from btledger.engine.result import RunSpec
from tests.typed import number

TRADE_FRAME_COLUMNS = [
    "Size",
    "EntryBar",
    "ExitBar",
    "EntryPrice",
    "ExitPrice",
    "SL",
    "TP",
    "PnL",
    "Commission",
    "EntryTime",
    "ExitTime",
    "Tag",
]


class Crossing(Strategy):
    """Long when the fast mean crosses above the slow one, short below, with a stop and a tag."""

    def init(self) -> None:
        self.fast = self.I(SMA, self.data.Close, 10)
        self.slow = self.I(SMA, self.data.Close, 30)

    def next(self) -> None:
        price = self.data.Close[-1]
        if self.fast[-1] > self.slow[-1] and not self.position.is_long:
            self.buy(size=0.2, sl=price * 0.9, tag="up")
        elif self.fast[-1] < self.slow[-1] and not self.position.is_short:
            self.sell(size=0.2, tp=price * 0.8)


class Idle(Strategy):
    def init(self) -> None:
        pass

    def next(self) -> None:
        pass


@pytest.mark.parametrize(
    "make",
    [
        lambda strategy: Backtest(GOOG, strategy, cash=100_000, commission=0.002, finalize_trades=True),
        lambda strategy: FractionalBacktest(GOOG, strategy, cash=1_000, fractional_unit=0.01, finalize_trades=True),
    ],
    ids=["Backtest", "FractionalBacktest"],
)
@pytest.mark.parametrize("strategy", [Crossing, Idle])
def test_equity_and_trades_match_the_full_statistics(
    make: Callable[[type[Strategy]], Backtest], strategy: type[Strategy]
) -> None:
    full = make(strategy).run()
    with lean_stats():
        lean = make(strategy).run()
    assert set(lean.index) == {"_equity_curve", "_trades", "_strategy"}
    pd.testing.assert_series_equal(lean["_equity_curve"]["Equity"], full["_equity_curve"]["Equity"])
    pd.testing.assert_frame_equal(lean["_trades"], full["_trades"][TRADE_FRAME_COLUMNS])
    assert isinstance(lean["_strategy"], strategy)
    if strategy is Crossing:
        assert len(lean["_trades"]) > 20 and set(lean["_trades"]["Tag"].dropna()) == {"up"}


def test_only_the_thread_inside_the_block_skips_the_statistics() -> None:
    def run() -> pd.Series:
        return Backtest(GOOG, Crossing, commission=0.002, finalize_trades=True).run()

    with lean_stats(), ThreadPoolExecutor(1) as elsewhere:
        outside = elsewhere.submit(run).result()
        inside = run()
    assert "Sharpe Ratio" in outside and "Sharpe Ratio" not in inside
    assert "Sharpe Ratio" in run()  # and the block's end restores them


@pytest.mark.parametrize(
    "spec",
    [
        RunSpec("DonchianBreakout", "EURUSD", "H1", 1.0, date(2017, 9, 1), date(2018, 1, 1), 100_000.0),
        RunSpec("RandomTrader", "BTCUSD", "MN1", 2.0, date(2012, 1, 1), date(2020, 1, 1), 100_000.0),  # fractional
    ],
    ids=["EURUSD", "BTCUSD"],
)
@pytest.mark.filterwarnings("ignore:Superimposed OHLC plot")  # monthly bars: nothing coarser to superimpose
def test_a_recorded_outcome_is_the_same_with_or_without_the_library_statistics(spec: RunSpec, tmp_path: Path) -> None:
    lean = run_backtest(spec)
    full = run_backtest(spec, plot_path=tmp_path / "plot.html")  # a plot needs, so builds, the full statistics
    assert number(lean.metrics["trades"]) > 0
    assert lean.metrics == full.metrics
    assert lean.trade_performance == full.trade_performance
    assert lean.trades == full.trades
