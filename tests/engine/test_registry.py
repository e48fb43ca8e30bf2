"""The strategy registry: names, parameters, fingerprints, entry points."""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from btledger.engine import SpecError, registry
from btledger.engine.param_bounds import Format
from btledger.engine.registry import get_strategy, strategy_names
from btledger.engine.result import JsonScalar
from btledger.strategies.random_trader import parse_hold_bars


@pytest.fixture
def fresh_registry() -> Iterator[None]:
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
    bads: list[dict[str, JsonScalar]] = [{"n_fast": 10.5}, {"n_fast": True}, {"sl_atr": "2"}]
    for bad in bads:
        with pytest.raises(SpecError, match=r"^params: SmaCross\.\w+ must be"):
            entry.resolve_params(bad)


def test_fingerprint_hashes_the_sources_of_the_strategy_sizing_and_indicator_modules() -> None:
    entry = get_strategy("DonchianBreakout")
    digest = hashlib.sha256()
    for name in sorted(
        ["btledger.engine.sizing", "btledger.strategies.donchian_breakout", "btledger.strategies.indicators"]
    ):
        source = Path(inspect.getfile(sys.modules[name])).read_bytes()
        digest.update(name.encode() + b"\0" + source + b"\0")
    assert entry.fingerprint == digest.hexdigest()


def test_entry_points_register_installed_strategies(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
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


def register(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Register `tests.engine.user_strategies:<name>` as an installed package's entry point would."""
    point = EntryPoint(name, f"tests.engine.user_strategies:{name}", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])


def test_every_numeric_parameter_of_a_shipped_strategy_has_a_bound_and_every_text_a_format() -> None:
    for name in ("SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader"):
        entry = get_strategy(name)
        declared = {key for key, value in entry.params.items() if type(value) in (int, float, str)}
        assert set(entry.bounds) == declared, name
    sma = get_strategy("SmaCross")
    assert {name: str(bound) for name, bound in sma.bounds.items()} == {
        "atr_period": "atr_period >= 1",
        "n_fast": "n_fast >= 1",
        "n_slow": "n_slow >= 1",
        "sl_atr": "sl_atr > 0",
        "tp_ratio": "tp_ratio > 0",
    }
    assert [str(rule) for rule in sma.rules] == ["n_fast < n_slow"]
    assert str(get_strategy("RsiMeanReversion").bounds["oversold"]) == "0 <= oversold <= 100"
    assert str(get_strategy("RandomTrader").bounds["prob_trade"]) == "0 < prob_trade <= 1"


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        ("SmaCross", {"n_fast": -5}, "SmaCross.n_fast must satisfy n_fast >= 1, got -5"),
        ("SmaCross", {"n_slow": 0.0}, "SmaCross.n_slow must satisfy n_slow >= 1, got 0.0"),
        ("SmaCross", {"sl_atr": 0}, "SmaCross.sl_atr must satisfy sl_atr > 0, got 0"),
        ("SmaCross", {"n_fast": 50}, "SmaCross must satisfy n_fast < n_slow, got n_fast=50, n_slow=50"),
        ("RsiMeanReversion", {"overbought": 100.5}, "RsiMeanReversion.overbought must satisfy 0 <= overbought <= 100"),
        (
            "RsiMeanReversion",
            {"exit_level": 20},
            "RsiMeanReversion must satisfy oversold <= exit_level <= overbought, "
            "got oversold=30.0, exit_level=20.0, overbought=70.0",
        ),
        ("RandomTrader", {"prob_trade": 0}, "RandomTrader.prob_trade must satisfy 0 < prob_trade <= 1, got 0"),
        ("RandomTrader", {"std_position_hold": -1.5}, "RandomTrader.std_position_hold must satisfy"),
        ("DonchianBreakout", {"exit_period": 0}, "DonchianBreakout.exit_period must satisfy exit_period >= 1, got 0"),
        (
            "RandomTrader",
            {"hold_bars": "3,x"},
            "RandomTrader.hold_bars must be comma-separated whole numbers of bars ≥ 0, got '3,x'",
        ),
        ("RandomTrader", {"hold_bars": "1,,2"}, "RandomTrader.hold_bars must be comma-separated whole numbers"),
        ("RandomTrader", {"hold_bars": "²"}, "RandomTrader.hold_bars must be comma-separated whole numbers"),
    ],
)
def test_a_value_outside_the_declared_bounds_names_strategy_parameter_bound_and_value(
    strategy: str, params: dict[str, JsonScalar], message: str
) -> None:
    with pytest.raises(SpecError) as raised:
        get_strategy(strategy).key_params(params)
    assert raised.value.field == "params" and str(raised.value).startswith(f"params: {message}")


def test_values_on_the_edges_of_the_bounds_are_accepted() -> None:
    assert get_strategy("SmaCross").key_params({"n_fast": 1, "n_slow": 2}) == {"n_fast": 1, "n_slow": 2}
    assert get_strategy("SmaCross").key_params({"n_fast": 49}) == {"n_fast": 49}  # n_slow is 50
    edges: dict[str, JsonScalar] = {"oversold": 0, "overbought": 100, "exit_level": 100}
    assert get_strategy("RsiMeanReversion").key_params(edges) == {
        "oversold": 0.0,
        "overbought": 100.0,
        "exit_level": 100.0,
    }
    random_edges: dict[str, JsonScalar] = {
        "prob_trade": 1.0,
        "prob_long": 0.0,
        "avg_position_hold": 0.0,
        "std_position_hold": 0.0,
        "seed": 0,
    }
    assert get_strategy("RandomTrader").key_params(random_edges) == random_edges


def test_a_key_holds_a_text_in_the_canonical_form_its_format_declares() -> None:
    """As a number is held in its default's type: the same holds spelt another way name one run."""
    random_trader = get_strategy("RandomTrader")
    for spelt in ("3,12", " 3, 12", "03 ,012 ", "3,\t12"):
        assert random_trader.key_params({"hold_bars": spelt}) == {"hold_bars": "3,12"}, spelt
    assert random_trader.key_params({"hold_bars": "12,3"}) == {"hold_bars": "12,3"}  # the order is drawn from
    assert random_trader.key_params({"hold_bars": " 0 , 12"}) == {"hold_bars": "0,12"}
    assert random_trader.key_params({"hold_bars": " "}) == {}  # no holds: the default, ""


def test_a_texts_format_is_checked_by_the_parser_the_strategy_reads_it_with() -> None:
    """One rule: the registry refuses what `RandomTrader.init` could not read, with the same function."""
    hold_bars = get_strategy("RandomTrader").bounds["hold_bars"]
    assert isinstance(hold_bars, Format) and hold_bars.text_format.parse is parse_hold_bars
    assert str(hold_bars) == "hold_bars (comma-separated whole numbers of bars ≥ 0)"
    for text in ("", "3,12,40", "x", "1.5", "٣"):
        try:
            parse_hold_bars(text)
        except ValueError:
            assert not hold_bars.admits(text), text
        else:
            assert hold_bars.admits(text), text


def test_unknown_parameter_lists_the_parameters_with_their_bounds_and_rules() -> None:
    with pytest.raises(SpecError) as raised:
        get_strategy("SmaCross").resolve_params({"fast": 5})
    assert str(raised.value) == (
        "params: unknown parameter 'fast' for SmaCross (known: atr_period >= 1, n_fast >= 1, n_slow >= 1, "
        "sl_atr > 0, tp_ratio > 0; n_fast < n_slow)"
    )


def test_a_strategy_without_declarations_takes_any_value_of_each_type(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, "Plain")
    entry = get_strategy("Plain")
    assert dict(entry.params) == {"window": 10, "threshold": 0.0} and not entry.bounds and not entry.rules
    assert entry.key_params({"window": -5, "threshold": -1}) == {"window": -5, "threshold": -1.0}
    with pytest.raises(SpecError, match=r"^params: Plain\.window must be int"):
        entry.resolve_params({"window": 2.5})


def test_documentation_in_the_metadata_is_not_a_declaration(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strings and `doc()` beside a bound, or alone on a number, a text or a flag, are skipped."""
    register(monkeypatch, "Documented")
    entry = get_strategy("Documented")
    assert {name: str(bound) for name, bound in entry.bounds.items()} == {"window": "window >= 1"}
    assert entry.key_params({"threshold": -1, "label": "", "long_only": False}) == {
        "threshold": -1.0,
        "label": "",
        "long_only": False,
    }
    with pytest.raises(SpecError, match=r"^params: Documented\.window must satisfy window >= 1, got 0$"):
        entry.resolve_params({"window": 0})


def test_a_user_strategy_declares_a_texts_format(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, "Coded")
    entry = get_strategy("Coded")
    assert entry.listing()["bounds"] == {"code": "code (two capital letters)"}
    assert entry.key_params({"code": "EQ"}) == {"code": "EQ"}
    with pytest.raises(SpecError, match=r"^params: Coded\.code must be two capital letters, got 'eq'$"):
        entry.resolve_params({"code": "eq"})


def test_a_format_that_does_not_read_its_own_text_back_is_refused_for_the_value_that_shows_it(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, "FormatDriftsOnLargeValues")
    entry = get_strategy("FormatDriftsOnLargeValues")
    assert entry.key_params({"window": " 7"}) == {"window": "7"}
    with pytest.raises(
        SpecError,
        match=r"^params: strategy FormatDriftsOnLargeValues: the format of window does not "
        r"read its own text back: '12' -> '24' -> '48'$",
    ):
        entry.key_params({"window": "12"})


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("DefaultOutOfBounds", "the default window = 0 is outside its bound window >= 1"),
        (
            "UnknownMetadata",
            "window is annotated with MultipleOf(multiple_of=2), which cannot be checked; a number's bounds are Gt, "
            "Ge, Lt, Le or Interval, a text's format a TextFormat, and documentation a str or doc()",
        ),
        ("UnknownTextMetadata", "label is annotated with MinLen(min_length=1), which cannot be checked"),
        ("BoundOnText", "label has bounds but is not a number (default 'x')"),
        ("FormatOnNumber", "window has a TextFormat but is not a text (default 4)"),
        ("FormatAndBound", "code takes one TextFormat and nothing more, got [TextFormat("),
        ("DefaultOutOfFormat", "the default code = 'fx' is outside its bound code (two capital letters)"),
        (
            "FormatNotReadBack",
            "the format of codes writes 'FX;EQ' for 'FX,EQ', which its parse refuses (expected two capital letters",
        ),
        ("TwoLowerBounds", "window has two lower bounds"),
        ("UnreadableRule", "cannot read the rule 'fast << slow'; write e.g. 'n_fast < n_slow'"),
        ("RuleOnUnknownName", "the rule 'fast < slow' names slow, which is not a numeric parameter"),
        ("DefaultsBreakTheRule", "the defaults break its rule fast < slow"),
        ("UnreadableAnnotation", "the annotation of window cannot be read (NameError: name 'NoSuchBound'"),
    ],
)
def test_declarations_that_cannot_apply_stop_the_registry_naming_the_strategy(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch, name: str, problem: str
) -> None:
    register(monkeypatch, name)
    with pytest.raises(ValueError) as raised:
        strategy_names()
    assert str(raised.value).startswith(f"strategy {name}: {problem}")
