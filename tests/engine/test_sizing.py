"""Lot limits, the commission callable and the currency of costs."""

from __future__ import annotations

import math

import pytest

from btledger.config import Instrument, Instruments, load_instruments
from btledger.engine import SpecError
from btledger.engine.costs import Commission, costs_for
from btledger.engine.sizing import LotLimits


def instrument(name: str) -> Instrument:
    return load_instruments().instruments[name]


def test_whole_unit_instrument_clamps_to_lot_steps() -> None:
    lots = LotLimits.of(instrument("EURUSD"))
    assert (lots.min_units, lots.max_units, lots.unit_step, lots.fractional_unit) == (1000, 10_000_000, 1000, 1.0)
    assert lots.clamp(123_456.7) == 123_000
    assert lots.clamp(12.0) == 1000  # below the minimum lot: one minimum lot
    assert lots.clamp(1e12) == 10_000_000
    assert lots.clamp(3000.0) == 3000  # no float artefact floors an exact step away


def test_fractional_instrument_clamps_in_units_not_lots() -> None:
    lots = LotLimits.of(instrument("BTCUSD"))
    assert (lots.min_units, lots.unit_step, lots.fractional_unit) == (0.01, 0.01, 0.01)
    assert lots.clamp(0.0004) == 0.01  # the seed clamped this to 1 BTC
    assert lots.clamp(0.0299) == 0.02
    assert lots.clamp(1e6) == 100
    index = LotLimits.of(instrument("US500"))
    assert (index.min_units, index.fractional_unit) == (0.1, 0.1)


def test_commission_per_side() -> None:
    # 7 per lot round-turn: 3.5 per side for one 100000-unit lot.
    assert Commission(7.0, 100_000)(100_000, 1.1) == pytest.approx(3.5)
    assert Commission(7.0, 100_000)(-50_000, 1.1) == pytest.approx(1.75)
    # Fractional: backtesting.py passes 100 units of 0.01 BTC for one coin.
    assert Commission(7.0, 1.0, fractional_unit=0.01)(100, 400.0) == pytest.approx(3.5)
    # 0.1 % of notional round-turn: 0.05 % per side, the same in scaled and real terms.
    assert Commission(0.1, 1.0)(10, 100.0) == pytest.approx(0.5)
    assert Commission(0.1, 1.0, fractional_unit=0.01)(1000, 1.0) == pytest.approx(0.5)
    assert Commission(7.0, 1).model == "per_lot" and Commission(0.1, 1).model == "percent"


def test_costs_name_the_quote_currency() -> None:
    instruments = load_instruments()
    costs = costs_for("USDJPY", instrument("USDJPY"), instruments, "USD")
    assert costs.currency == "JPY" and costs.commission.value == 1050.0
    assert costs.margin == pytest.approx(1 / 30)
    assert costs_for("GER40", instrument("GER40"), instruments, "USD").currency == "EUR"
    assert costs_for("EURUSD", instrument("EURUSD"), instruments, "USD").to_json()["currency"] == "USD"


def test_money_per_lot_in_another_currency_is_refused() -> None:
    raw = load_instruments().model_dump()
    raw["instruments"]["EURGBP"]["commission"] = None
    instruments = Instruments.model_validate(raw)
    with pytest.raises(SpecError, match=r"^ticker: EURGBP is quoted in GBP but category Forex charges 7 USD per lot"):
        costs_for("EURGBP", instruments.instruments["EURGBP"], instruments, "USD")


def test_instrument_tick_value_must_match_contract_size() -> None:
    raw = load_instruments().model_dump()
    raw["instruments"]["XAUUSD"]["tick_value"] = 0.01
    with pytest.raises(ValueError, match=r"tick_value \(0\.01\) must equal tick_size × contract_size \(1\)"):
        Instruments.model_validate(raw)
    assert math.isclose(instrument("USDJPY").tick_value, 0.001 * 100_000)


def test_forex_leverage_follows_the_esma_rule_the_file_states() -> None:
    """30:1 for pairs of two major currencies, 20:1 for every other pair (instruments.yaml's header)."""
    majors = {"USD", "EUR", "JPY", "GBP", "CAD", "CHF"}
    forex = {name: i for name, i in load_instruments().instruments.items() if i.category == "Forex"}
    assert {"EURUSD", "EURGBP", "AUDUSD", "NZDUSD"} <= set(forex)
    for name, entry in forex.items():
        expected = 30 if {name[:3], name[3:]} <= majors else 20
        assert entry.leverage == expected, name
