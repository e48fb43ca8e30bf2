"""Risk-based position sizing: the base class of the shipped strategies.

A trade is sized so that reaching its stop loses `risk` percent of the current equity:

    units = equity × risk / 100 ÷ (value per price unit per unit × stop distance)

The value of one price unit for one unit is tick_value / tick_size / contract_size in the quote
currency; the instruments config requires it to be 1 (backtesting.py books P&L as units × price
change), so money, P&L and risk are all in the instrument's quote currency, which is what a result's
`currency` names. (The seed divided by the price for USDxxx pairs to size in USD while the engine
booked P&L in the quote currency: the silent mix this design forbids.)

Units are then floored to the lot step and clamped to the lot limits, all in units (lots × contract
size). Instruments whose smallest tradable amount is a fraction of a unit (BTCUSD: 0.01 lot of 1 coin)
run in `backtesting.lib.FractionalBacktest`, which trades whole multiples of `fractional_unit` and shows
the strategy prices multiplied by it; the clamp stays in real units, so the minimum trade is 0.01 BTC
(the seed clamped to 1 lot there). The min-lot clamp means a tight stop can risk more than `risk` %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backtesting import Strategy

from btledger.config import Instrument


def _clean(value: float) -> float:
    # lots × contract size in binary floats (0.01 × 100000 = 1000.0000000000001) would skew floors.
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class LotLimits:
    """An instrument's order size limits in units, and the amount that backtesting.py trades as one unit.

    `fractional_unit` is 1 for instruments traded in whole units, else the smallest lot step or
    minimum order in units (0.01 for BTCUSD, 0.1 for an index CFD with 0.1-lot minimum).
    """

    min_units: float
    max_units: float
    unit_step: float
    fractional_unit: float = 1.0

    @classmethod
    def of(cls, instrument: Instrument) -> LotLimits:
        step = _clean(instrument.lot_step * instrument.contract_size)
        minimum = _clean(instrument.min_lot * instrument.contract_size)
        return cls(
            min_units=minimum,
            max_units=_clean(instrument.max_lot * instrument.contract_size),
            unit_step=step,
            fractional_unit=min(1.0, step, minimum),
        )

    def clamp(self, units: float) -> float:
        """`units` floored to the step and clamped to [min_units, max_units]."""
        stepped = math.floor(units / self.unit_step + 1e-9) * self.unit_step
        return _clean(min(max(stepped, self.min_units), self.max_units))


class RiskSizedStrategy(Strategy):
    """A `backtesting.Strategy` that sizes each trade by the run's risk and the trade's stop distance.

    The engine sets `risk` (percent of equity per trade, 1 = 1 %) and `lots` for every run; subclasses
    call `enter(direction, stop, target)`, or `size_for_stop(price, stop)` and pass the result as `size=`
    to `buy`/`sell`. Their own parameters are public class attributes holding a bool, int, float or str.
    """

    risk: float = 1.0
    lots: LotLimits = LotLimits(min_units=1, max_units=math.inf, unit_step=1)

    def size_for_stop(self, price: float, stop: float) -> int:
        """Order size (in the units backtesting.py counts) risking `risk` % of equity between `price`
        and `stop`, both as the strategy sees prices; 0 (no trade) when the distance is zero or undefined
        (indicators still warming up) or the stop is not a positive price."""
        distance = abs(price - stop) / self.lots.fractional_unit
        if not (distance > 0 and stop > 0):
            return 0
        units = self.lots.clamp(self.equity * self.risk / 100 / distance)
        return round(units / self.lots.fractional_unit)

    def enter(self, direction: int, stop: float, target: float | None = None, *, place_stop: bool = True) -> None:
        """Buy (`direction` > 0) or sell at market, sized by `size_for_stop` from the last close to `stop`,
        with that stop (unless `place_stop` is false: the stop then only sizes the trade) and an optional
        take-profit `target`; nothing when the size is 0."""
        if size := self.size_for_stop(self.data.Close[-1], stop):
            order = self.buy if direction > 0 else self.sell
            order(size=size, sl=stop if place_stop else None, tp=target)
