"""Random entries with a risk-sized ATR stop: the benchmark of the random robustness test."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt, Interval

from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr


class RandomTrader(RiskSizedStrategy):
    """When flat, enters with probability `prob_trade` per bar, long with probability `prob_long`, stop
    `sl_atr` ATRs away; closes after a holding period drawn per trade from
    round(Normal(`avg_position_hold`, `std_position_hold`)) bars, at least one. Seeded by `seed`.
    The period counts bars as `profile_strategy` does, exit bar minus entry bar.

    The random test passes the real strategy's holding statistics under these exact names (the seed
    passed `avg_trade_duration`, which this engine rejects as an unknown parameter).
    """

    prob_trade: Annotated[float, Interval(gt=0, le=1)] = 0.1
    prob_long: Annotated[float, Interval(ge=0, le=1)] = 0.5
    avg_position_hold: Annotated[float, Ge(0)] = 2.0
    std_position_hold: Annotated[float, Ge(0)] = 1.5
    atr_period: Annotated[int, Ge(1)] = 14
    sl_atr: Annotated[float, Gt(0)] = 1.5
    seed: Annotated[int, Ge(0)] = 42

    def init(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.atr = self.I(atr, self.data.High, self.data.Low, self.data.Close, self.atr_period, overlay=False)
        self.hold = 0

    def next(self) -> None:
        bar = len(self.data) - 1
        if self.trades:
            # The close fills at the next bar's open: placed one bar early, the trade lasts `hold` bars.
            if bar - self.trades[-1].entry_bar >= self.hold - 1:
                self.position.close()
            return
        if self.rng.random() >= self.prob_trade:
            return
        direction = 1 if self.rng.random() < self.prob_long else -1
        self.hold = max(1, round(self.rng.normal(self.avg_position_hold, self.std_position_hold)))
        self.enter(direction, self.data.Close[-1] - direction * self.sl_atr * self.atr[-1])
