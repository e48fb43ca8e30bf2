"""RSI mean reversion with an ATR stop."""

from __future__ import annotations

from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr, rsi


class RsiMeanReversion(RiskSizedStrategy):
    """Long when RSI falls below `oversold`, short above `overbought`; exit when RSI crosses back over
    `exit_level` or at the stop, `sl_atr` ATRs from the entry."""

    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    exit_level: float = 50.0
    atr_period: int = 14
    sl_atr: float = 2.0

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
