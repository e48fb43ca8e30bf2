"""Random entries with a risk-sized ATR stop: the benchmark of the random robustness test."""

from __future__ import annotations

import re
from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt, Interval

from btledger.engine.param_bounds import TextFormat
from btledger.engine.sizing import RiskSizedStrategy
from btledger.strategies.indicators import atr

#: What `hold_bars` takes, as its format and the parser's error say it.
_HOLD_BARS = "comma-separated whole numbers of bars ≥ 0"


class RandomTrader(RiskSizedStrategy):
    """When flat, enters with probability `prob_trade` per bar, long with probability `prob_long`, sized
    for a stop `sl_atr` ATRs away; closes after a holding period drawn per trade, at least one bar: from
    `hold_bars` (comma-separated bar counts, drawn with replacement) when given, else
    round(Normal(`avg_position_hold`, `std_position_hold`)). The period counts bars as `profile_strategy`
    does, exit bar minus entry bar. With `exit_at_stop` false the stop only sizes the trade, which then
    always lasts its holding period. Seeded by `seed`.

    The random test passes the real strategy's own holding periods as `hold_bars` and `exit_at_stop`
    false, so the random trades last as long as the real ones: a stop tighter than the strategy's cut
    them short, and the truncated Normal was skewed upwards when the std was large. (The seed passed
    `avg_trade_duration`, which this engine rejects as an unknown parameter.)
    """

    prob_trade: Annotated[float, Interval(gt=0, le=1)] = 0.1
    prob_long: Annotated[float, Interval(ge=0, le=1)] = 0.5
    avg_position_hold: Annotated[float, Ge(0)] = 2.0
    std_position_hold: Annotated[float, Ge(0)] = 1.5
    # The registry checks a value with the parser `init` reads it with: a malformed one is refused before a run.
    hold_bars: Annotated[str, TextFormat(_HOLD_BARS, parse_hold_bars, format_hold_bars)] = ""
    atr_period: Annotated[int, Ge(1)] = 14
    sl_atr: Annotated[float, Gt(0)] = 1.5
    exit_at_stop: bool = True
    seed: Annotated[int, Ge(0)] = 42

    def init(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.atr = self.I(atr, self.data.High, self.data.Low, self.data.Close, self.atr_period, overlay=False)
        self.hold_choices = parse_hold_bars(self.hold_bars)
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
        if self.hold_choices.size:
            drawn = self.hold_choices[self.rng.integers(self.hold_choices.size)]
        else:
            drawn = round(self.rng.normal(self.avg_position_hold, self.std_position_hold))
        # A trade closed by its holding period lasts a bar at least (the strategy's stop can end one sooner).
        self.hold = max(1, int(drawn))
        stop = self.data.Close[-1] - direction * self.sl_atr * self.atr[-1]
        self.enter(direction, stop, place_stop=self.exit_at_stop)


def parse_hold_bars(text: str) -> np.ndarray:
    """The holding periods of `hold_bars` ("3,12,40"; "" is none) as whole numbers of bars ≥ 0."""
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    if not all(re.fullmatch("[0-9]+", item) for item in items):  # not isdigit(): "²" is a digit to it
        raise ValueError(f"hold_bars: expected {_HOLD_BARS}, got {text!r}")
    return np.array([int(item) for item in items], dtype=np.int64)


def format_hold_bars(holds: np.ndarray) -> str:
    """The canonical text of holding periods read by `parse_hold_bars`: "3,12" for " 03, 12"."""
    return ",".join(map(str, holds.tolist()))
