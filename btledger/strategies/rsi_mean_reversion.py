"""RSI mean reversion with an ATR stop."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Interval

from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr, rsi


class RsiMeanReversion(RiskSizedStrategy):
    """Long when RSI falls below `oversold`, short above `overbought`; exit when RSI crosses back over
    `exit_level` or at the stop, `sl_atr` ATRs from the entry."""

    rsi_period: Annotated[int, Ge(1)] = 14
    oversold: Annotated[float, Interval(ge=0, le=100)] = 30.0
    overbought: Annotated[float, Interval(ge=0, le=100)] = 70.0
    exit_level: Annotated[float, Interval(ge=0, le=100)] = 50.0
    atr_period: Annotated[int, Ge(1)] = 14
    sl_atr: Annotated[float, Gt(0)] = 2.0
    # Outside the entry band, the exit level would close one side's trades as soon as they open (a short
    # entered at RSI 75 with an exit level of 80).
    param_rules = ("oversold < overbought", "oversold <= exit_level <= overbought")

    def init(self) -> None:
        close = self.data.Close
        self.rsi = self.I(rsi, close, self.rsi_period, overlay=False)
        self.atr = self.I(atr, self.data.High, self.data.Low, close, self.atr_period, overlay=False)

    def next(self) -> None:
        level = self.rsi[-1]
        price = self.data.Close[-1]
        if self.position:
            # Longs exit once RSI rises above the exit level, shorts once it falls below it.
            if (level - self.exit_level) * self.position.size > 0:
                self.position.close()
        elif level < self.oversold:
            self.enter(1, price - self.sl_atr * self.atr[-1])
        elif level > self.overbought:
            self.enter(-1, price + self.sl_atr * self.atr[-1])
