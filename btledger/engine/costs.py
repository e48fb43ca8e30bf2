"""Trading costs of one instrument: commission, spread, margin, and the currency results are in.

Commission is round-turn per category (an instrument may override it), half charged at entry and half
at exit, as a callable that backtesting.py calls once per side with the order's size and price:

- value >= 1: money per lot, per side `|units| / contract_size × value / 2`;
- value < 1: percent of notional, per side `|units| × price × value / 2 / 100`.

The category value is money in the account currency. Results are in the instrument's quote currency
(see `btledger.engine.sizing`), so an instrument quoted in another currency whose category charges money
per lot must state its own commission in its quote currency, or the run is refused rather than mixing
currencies. Spread is relative and paid once per trade (backtesting.py adjusts the entry price).
Margin = 1 / leverage.
"""

from __future__ import annotations

from dataclasses import dataclass

from btledger.config import Instrument, Instruments
from btledger.engine.errors import SpecError
from btledger.engine.result import JsonScalar
from btledger.engine.sizing import LotLimits


@dataclass(frozen=True)
class Commission:
    """Per-side commission, `commission(size, price)` as backtesting.py calls it.

    `size` arrives in backtesting.py's units, i.e. multiples of `fractional_unit` real units.
    """

    value: float
    contract_size: float
    fractional_unit: float = 1.0

    @property
    def model(self) -> str:
        return "per_lot" if self.value >= 1 else "percent"

    def __call__(self, size: float, price: float) -> float:
        if self.value >= 1:
            return abs(size) * self.fractional_unit / self.contract_size * self.value / 2
        # Notional is the same in scaled and real terms: size and price are scaled inversely.
        return abs(size) * price * self.value / 200


@dataclass(frozen=True)
class Costs:
    """Everything a run charges and limits, in the result's `currency`."""

    leverage: float
    spread: float
    commission: Commission
    lots: LotLimits
    currency: str

    @property
    def margin(self) -> float:
        return 1 / self.leverage

    def to_json(self) -> dict[str, JsonScalar]:
        return {
            "leverage": self.leverage,
            "margin": self.margin,
            "commission_model": self.commission.model,
            "commission": self.commission.value,
            "spread": self.spread,
            "contract_size": self.commission.contract_size,
            "min_units": self.lots.min_units,
            "max_units": self.lots.max_units,
            "unit_step": self.lots.unit_step,
            "fractional_unit": self.lots.fractional_unit,
            "currency": self.currency,
        }


def costs_for(ticker: str, instrument: Instrument, instruments: Instruments, account_currency: str) -> Costs:
    """The costs of trading `instrument` from an account in `account_currency`.

    Raises `SpecError` (field `ticker`) when its category charges money per lot in the account currency
    but it is quoted in another currency and sets no commission of its own.
    """
    value = instrument.commission
    if value is None:
        value = instruments.categories[instrument.category].commission
        if value >= 1 and instrument.quote_currency != account_currency:
            raise SpecError(
                "ticker",
                f"{ticker} is quoted in {instrument.quote_currency} but category {instrument.category} "
                f"charges {value:g} {account_currency} per lot; set instruments.{ticker}.commission "
                f"in {instrument.quote_currency}",
            )
    lots = LotLimits.of(instrument)
    return Costs(
        leverage=instrument.leverage,
        spread=instrument.spread,
        commission=Commission(value, instrument.contract_size, lots.fractional_unit),
        lots=lots,
        currency=instrument.quote_currency,
    )
