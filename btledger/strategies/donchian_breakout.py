"""Donchian channel breakout (turtle-style) with an ATR stop."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt

from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr, highest, lowest


class DonchianBreakout(RiskSizedStrategy):
    """Long when the close breaks the highest high of the last `entry_period` bars, short on a break of
    the lowest low; exit on a break of the opposite `exit_period` channel or at the stop, `sl_atr` ATRs
    from the entry."""

    entry_period: Annotated[int, Ge(1)] = 20
    exit_period: Annotated[int, Ge(1)] = 10
    atr_period: Annotated[int, Ge(1)] = 14
    sl_atr: Annotated[float, Gt(0)] = 2.0

    def init(self) -> None:
        high, low, close = self.data.High, self.data.Low, self.data.Close
        self.upper = self.I(highest, high, self.entry_period)
        self.lower = self.I(lowest, low, self.entry_period)
        self.exit_upper = self.I(highest, high, self.exit_period)
        self.exit_lower = self.I(lowest, low, self.exit_period)
        self.atr = self.I(atr, high, low, close, self.atr_period, overlay=False)

    def next(self) -> None:
        price = self.data.Close[-1]
        if self.position:
            # Longs exit below the lower exit channel, shorts above the upper one.
            broken = self.exit_lower[-1] if self.position.is_long else self.exit_upper[-1]
            if (price - broken) * self.position.size < 0:
                self.position.close()
        elif price > self.upper[-1]:
            self.enter(1, price - self.sl_atr * self.atr[-1])
        elif price < self.lower[-1]:
            self.enter(-1, price + self.sl_atr * self.atr[-1])
