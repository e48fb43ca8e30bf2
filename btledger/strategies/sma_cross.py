"""SMA crossover with an ATR stop and a take-profit, as in the seed's `trend_following.SmaCross`."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt
from backtesting.lib import crossover

from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr, sma


class SmaCross(RiskSizedStrategy):
    """Long when the fast SMA crosses above the slow one, short on the cross below; an opposite cross
    closes the position. Stop `sl_atr` ATRs away, take-profit `tp_ratio` times the stop distance."""

    n_fast: Annotated[int, Ge(1)] = 12
    n_slow: Annotated[int, Ge(1)] = 50
    atr_period: Annotated[int, Ge(1)] = 14
    sl_atr: Annotated[float, Gt(0)] = 2.0
    tp_ratio: Annotated[float, Gt(0)] = 1.5
    # Equal windows never cross, and a fast window longer than the slow one inverts the signals.
    param_rules = ("n_fast < n_slow",)

    def init(self) -> None:
        close = self.data.Close
        self.fast = self.I(sma, close, self.n_fast)
        self.slow = self.I(sma, close, self.n_slow)
        self.atr = self.I(atr, self.data.High, self.data.Low, close, self.atr_period, overlay=False)

    def next(self) -> None:
        if crossover(self.fast, self.slow):
            self._switch_to(1)
        elif crossover(self.slow, self.fast):
            self._switch_to(-1)

    def _switch_to(self, direction: int) -> None:
        self.position.close()
        price = self.data.Close[-1]
        stop = price - direction * self.sl_atr * self.atr[-1]
        self.enter(direction, stop, target=price + direction * self.tp_ratio * abs(price - stop))
