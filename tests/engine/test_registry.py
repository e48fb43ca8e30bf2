"""The strategy registry: names, parameters, fingerprints, entry points."""

from __future__ import annotations

import hashlib
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from btledger.engine import SpecError, registry
from btledger.engine.registry import get_strategy, strategy_names


@pytest.fixture
def fresh_registry():
    registry.registry.cache_clear()
    yield
    registry.registry.cache_clear()


def test_shipped_strategies_are_registered() -> None:
    assert {"SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader"} <= set(strategy_names())
    assert "RiskSizedStrategy" not in strategy_names()  # imported into the modules, not defined there


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as raised:
        get_strategy("btledger.strategies.sma_cross.SmaCross")  # a module path is not a name
    message = str(raised.value)
    assert message.startswith("strategy: unknown strategy 'btledger.strategies.sma_cross.SmaCross' (known: ")
    assert "DonchianBreakout, RandomTrader, RsiMeanReversion, SmaCross" in message


def test_parameters_and_overrides() -> None:
    entry = get_strategy("SmaCross")
    assert dict(entry.params) == {"n_fast": 12, "n_slow": 50, "atr_period": 14, "sl_atr": 2.0, "tp_ratio": 1.5}
    resolved = entry.resolve_params({"n_fast": 10.0, "sl_atr": 3})
    assert resolved["n_fast"] == 10 and type(resolved["n_fast"]) is int
    assert resolved["sl_atr"] == 3.0 and type(resolved["sl_atr"]) is float
    with pytest.raises(SpecError, match=r"^params: unknown parameter 'avg_trade_duration' for RandomTrader"):
        get_strategy("RandomTrader").resolve_params({"avg_trade_duration": 5})
    for bad in ({"n_fast": 10.5}, {"n_fast": True}, {"sl_atr": "2"}):
        with pytest.raises(SpecError, match=r"^params: SmaCross\.\w+ must be"):
            entry.resolve_params(bad)


def test_fingerprint_hashes_the_sources_of_the_strategy_sizing_and_indicator_modules() -> None:
    entry = get_strategy("DonchianBreakout")
    digest = hashlib.sha256()
    for name in sorted(
        ["btledger.engine.sizing", "btledger.strategies.donchian_breakout", "btledger.strategies.indicators"]
    ):
        source = Path(sys.modules[name].__file__).read_bytes()
        digest.update(name.encode() + b"\0" + source + b"\0")
    assert entry.fingerprint == digest.hexdigest()


def test_entry_points_register_installed_strategies(fresh_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("Crossing", "btledger.strategies.sma_cross:SmaCross", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    assert get_strategy("Crossing").origin == "entry point btledger.strategies.sma_cross:SmaCross"

    clash = EntryPoint("SmaCross", "btledger.strategies.sma_cross:SmaCross", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [clash])
    registry.registry.cache_clear()
    with pytest.raises(ValueError, match="strategy 'SmaCross' is defined twice"):
        strategy_names()


def test_the_fingerprint_covers_the_code_that_decides_the_trades() -> None:
    from btledger.engine.registry import _code_modules

    modules = {m.__name__ for m in _code_modules(get_strategy("SmaCross").cls)}
    # Its own module, the risk-sizing base class and the indicators it calls; not backtesting.py itself.
    assert modules == {"btledger.strategies.sma_cross", "btledger.engine.sizing", "btledger.strategies.indicators"}
